import Foundation

/// An event as stored in the log: the envelope of docs/architecture.md.
public struct RecordedEvent: Sendable, Hashable {
    /// Global position: dense, in commit order.
    public var position: Int64
    public var streamId: String
    /// 1, 2, 3 ... within the stream.
    public var streamVersion: Int64
    public var eventId: UUID
    public var type: String
    /// Payload JSON text.
    public var data: String
    /// Metadata JSON text.
    public var metadata: String
    public var recordedAt: Date
    /// The payload in its typed form, when the event was appended by this process a moment ago.
    public var typed: TypedPayload

    public init(position: Int64, streamId: String, streamVersion: Int64, eventId: UUID, type: String,
                data: String, metadata: String, recordedAt: Date, typed: TypedPayload = TypedPayload()) {
        self.position = position
        self.streamId = streamId
        self.streamVersion = streamVersion
        self.eventId = eventId
        self.type = type
        self.data = data
        self.metadata = metadata
        self.recordedAt = recordedAt
        self.typed = typed
    }

    /// The part of the stream id before the first `-`: `user` for `user-42`.
    public var category: String { StreamID.category(of: streamId) }

    /// Decodes the payload as a catalog event.
    public func decode<E: DomainEvent>(_: E.Type) throws -> E {
        if let value = typed.value as? E { return value }
        return try JSONCoding.decoder.decode(E.self, from: Data(data.utf8))
    }

    /// The envelope as one JSON object (API responses, NDJSON exports): data and metadata inlined as JSON.
    public func envelopeJSON() -> String {
        var out = "{\"position\":\(position),\"streamId\":"
        out += JSONCoding.quoted(streamId)
        out += ",\"streamVersion\":\(streamVersion),\"eventId\":\"\(eventId.uuidString.lowercased())\",\"type\":"
        out += JSONCoding.quoted(type)
        out += ",\"data\":\(data),\"metadata\":\(metadata),\"recordedAt\":\""
        out += JSONCoding.timestamp(recordedAt)
        out += "\"}"
        return out
    }
}
