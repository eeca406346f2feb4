import Foundation

/// An event about to be appended: what happened, to be given a position by the log.
public struct EventData: Sendable, Hashable {
    /// Unique id; appending the same id again is a no-op (idempotent retries).
    public var eventId: UUID
    /// Past tense, PascalCase: `UserSignedUp`, `ApiKeyIssued`.
    public var type: String
    /// The payload as JSON text (an object).
    public var data: String
    /// Who and why: actor, request id, correlation/causation ids, client IP.
    public var metadata: EventMetadata
    /// The payload before encoding, when it was made from a catalog event that decodes exactly.
    public var typed = TypedPayload()

    /// Makes an event from raw JSON text.
    public init(eventId: UUID = EventID.next(), type: String, data: String, metadata: EventMetadata = .init()) {
        self.eventId = eventId
        self.type = type
        self.data = data
        self.metadata = metadata
    }

    /// Makes an event from a catalog payload, encoded once here.
    public init<E: DomainEvent>(eventId: UUID = EventID.next(), _ payload: E, metadata: EventMetadata = .init()) throws {
        self.init(eventId: eventId, type: E.type, data: try payload.logJSON(), metadata: metadata)
        if E.typedPayloadIsExact { typed = TypedPayload(payload) }
    }
}

/// Who did it, in which request, because of what: stored beside every event.
public struct EventMetadata: Codable, Sendable, Hashable {
    /// The kind of caller behind an event.
    public enum ActorType: String, Codable, Sendable { case admin, user, anon, system }

    /// The caller: its kind and, when known, its id.
    public struct Actor: Codable, Sendable, Hashable {
        public var type: ActorType
        public var id: String?
        public init(type: ActorType, id: String? = nil) { self.type = type; self.id = id }
        /// The server itself (start-up, background work).
        public static let system = Actor(type: .system)
    }

    public var actor: Actor
    public var requestId: String?
    public var correlationId: String?
    public var causationId: String?
    public var clientIp: String?

    public init(actor: Actor = .system, requestId: String? = nil, correlationId: String? = nil,
                causationId: String? = nil, clientIp: String? = nil) {
        self.actor = actor
        self.requestId = requestId
        self.correlationId = correlationId
        self.causationId = causationId
        self.clientIp = clientIp
    }

    /// JSON text as stored in the log (written by hand: it is on the append hot path).
    public var json: String {
        var out = "{\"actor\":{"
        if let id = actor.id { out += "\"id\":\(JSONCoding.quoted(id)),"}
        out += "\"type\":\"\(actor.type.rawValue)\"}"
        if let causationId { out += ",\"causationId\":\(JSONCoding.quoted(causationId))" }
        if let clientIp { out += ",\"clientIp\":\(JSONCoding.quoted(clientIp))" }
        if let correlationId { out += ",\"correlationId\":\(JSONCoding.quoted(correlationId))" }
        if let requestId { out += ",\"requestId\":\(JSONCoding.quoted(requestId))" }
        return out + "}"
    }
}
