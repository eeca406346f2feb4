/// A payload in the event catalog: a Codable value with its stable type name.
///
/// A changed shape gets a new type name (or an upcaster reading the old one); stored events are never rewritten.
public protocol DomainEvent: Codable, Sendable {
    /// Past tense, PascalCase: the `type` column of the log.
    static var type: String { get }
}
