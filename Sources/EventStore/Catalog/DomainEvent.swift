/// A payload in the event catalog: a Codable value with its stable type name.
///
/// A changed shape gets a new type name (or an upcaster reading the old one); stored events are never rewritten.
public protocol DomainEvent: Codable, Sendable {
    /// Past tense, PascalCase: the `type` column of the log.
    static var type: String { get }
    /// The payload as the log stores it. The default is `JSONCoding.encodeString`; events on a hot
    /// path write the same text by hand (a test holds the two equal).
    func logJSON() throws -> String
    /// Whether decoding `logJSON()` gives this very value back (no date finer than the log's
    /// millisecond, say). Only then do inline projections get the typed value instead of the JSON,
    /// so that live read models and replayed ones stay identical.
    static var typedPayloadIsExact: Bool { get }
}

extension DomainEvent {
    public func logJSON() throws -> String { try JSONCoding.encodeString(self) }
    public static var typedPayloadIsExact: Bool { false }
}

/// A payload still in its typed form, carried next to its JSON from the append to the inline
/// projections so that they need not decode what was just encoded. It is a cache, not part of
/// the value: every two are equal.
public struct TypedPayload: Sendable, Hashable {
    public let value: (any DomainEvent)?

    public init(_ value: (any DomainEvent)? = nil) { self.value = value }

    public static func == (lhs: TypedPayload, rhs: TypedPayload) -> Bool { true }
    public func hash(into hasher: inout Hasher) {}
}
