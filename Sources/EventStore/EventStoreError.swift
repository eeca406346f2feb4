/// Why the store refused an append; mapped once, at the edge, to the API's error shape.
public struct EventStoreError: Error, Sendable, CustomStringConvertible {
    /// What kind of refusal.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let raw: String
        /// The stream's version is not what the command expected (HTTP 409).
        public static let wrongExpectedVersion = Code(raw: "wrongExpectedVersion")
        /// An event id is already stored as part of another append (HTTP 409).
        public static let eventIdReused = Code(raw: "eventIdReused")
        /// The events or stream id are malformed (HTTP 400).
        public static let invalidEvent = Code(raw: "invalidEvent")
        /// An inline projection refused the events (its own error is kept in `underlying`).
        public static let projectionFailed = Code(raw: "projectionFailed")
        /// The store is shutting down.
        public static let shutdown = Code(raw: "shutdown")
        public var description: String { raw }
    }

    public var code: Code
    public var message: String
    /// The stream's version at the time of the refusal, when known.
    public var currentVersion: Int64?
    /// The inline projection's own error.
    public var underlying: (any Error)?

    public init(_ code: Code, _ message: String, currentVersion: Int64? = nil, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.currentVersion = currentVersion
        self.underlying = underlying
    }

    public var description: String { "\(code): \(message)" }
}
