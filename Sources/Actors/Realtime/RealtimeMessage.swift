import EventStore
import PostgresNIO

/// What a realtime message's frame is made of, besides its payload.
public struct FrameParts: Sendable {
    public var event: String
    public var channel: String
    public var messageId: String
    public var position: Int64
    public var senderType: String
    public var senderId: String?
    public var timestamp: String

    public init(event: String, channel: String, messageId: String, position: Int64, senderType: String, senderId: String?,
                timestamp: String) {
        self.event = event
        self.channel = channel
        self.messageId = messageId
        self.position = position
        self.senderType = senderType
        self.senderId = senderId
        self.timestamp = timestamp
    }

    /// The Socket.IO EVENT packet of the message with `payload`: `["<event>", {...payload, "meta": {...}}]`.
    public func frame(payload: String) -> String {
        var meta = #"{"channel":\#(JSONCoding.quoted(channel)),"messageId":\#(JSONCoding.quoted(messageId)),"position":\#(position),"senderType":\#(JSONCoding.quoted(senderType))"#
        if let senderId { meta += #","senderId":\#(JSONCoding.quoted(senderId))"# }
        meta += #","timestamp":\#(JSONCoding.quoted(timestamp))}"#
        // `payload` is a JSON object as Postgres prints it: open it and add `meta` as its last member.
        var body = payload
        if let close = body.lastIndex(of: "}") { body.removeSubrange(close...) }
        let isEmpty = body.drop(while: { $0 == "{" || $0 == " " }).isEmpty
        body += (isEmpty ? "" : ",") + #""meta":\#(meta)}"#
        return "2[" + JSONCoding.quoted(event) + "," + body + "]"
    }

    /// The table whose change this message is, if it is one: the database's INSERT, UPDATE or
    /// DELETE on the table's channel (`table:<name>`). Only these are filtered by row-level security.
    public var changedTable: String? {
        guard channel.hasPrefix("table:"), senderType == "system", ["INSERT", "UPDATE", "DELETE"].contains(event) else { return nil }
        return String(channel.dropFirst("table:".count))
    }
}

/// One message as read from the log.
public struct RealtimeMessage: Sendable {
    public var parts: FrameParts
    public var payload: String
    public var frame: OutboundFrame
    public var position: Int64 { parts.position }
    public var channel: String { parts.channel }
    public var changedTable: String? { parts.changedTable }

    public init(_ parts: FrameParts, payload: String) {
        (self.parts, self.payload) = (parts, payload)
        frame = OutboundFrame(parts.frame(payload: payload))
    }
}

// MARK: reading messages from the log

extension RealtimeMessage {
    static let messageColumns = """
        e.position, e.data->>'channel', e.data->>'event', ((e.data->'payload') - 'meta')::text, e.data->>'messageId',
        e.data->>'senderType', e.data->>'senderId', e.data->>'createdAt'
        """

    /// Messages after `position` (at most `limit`), and the log's head when read. A replay reads one
    /// channel up to a position; the live read every channel up to the head.
    static func read(on client: PostgresClient, after position: Int64, replaying: (channel: String, through: Int64)? = nil,
                             limit: Int) async throws -> ([RealtimeMessage], Int64) {
        let rows = if let replaying {
            try await client.execute(ReplayedMessages(after: position, limit: limit, through: replaying.through,
                                                      stream: "realtime-" + replaying.channel))
        } else {
            try await client.execute(LiveMessages(after: position, limit: limit))
        }
        var head: Int64 = position
        var out: [RealtimeMessage] = []
        for try await (h, position, channel, event, payload, messageId, senderType, senderId, createdAt) in rows {
            head = h
            guard let position, let channel, let event, let payload, let messageId, let senderType else { continue }
            out.append(RealtimeMessage(FrameParts(event: event, channel: channel, messageId: messageId, position: position, senderType: senderType,
                                          senderId: senderId, timestamp: createdAt ?? ""),
                               payload: payload))
        }
        return (out, head)
    }

    /// A page of messages beside the log's head; `$1` after, `$2` limit.
    static func messagesSQL(upTo bound: String, _ condition: String = "") -> String {
        """
        WITH h AS (SELECT coalesce(max(position), 0) AS head FROM system.events)
        SELECT h.head, \(messageColumns)
          FROM h LEFT JOIN LATERAL (
            SELECT * FROM system.events x
             WHERE x.position > $1 AND x.position <= \(bound) AND x.type = 'MessagePublished' \(condition)
             ORDER BY x.position LIMIT $2) e ON true
        ORDER BY e.position
        """
    }

    typealias MessageRow = (Int64, Int64?, String?, String?, String?, String?, String?, String?, String?)

    // Both reads are prepared once per connection: the live one runs at every wake-up of the log.

    struct LiveMessages: PostgresPreparedStatement {
        static let sql = messagesSQL(upTo: "h.head")
        typealias Row = MessageRow
        var after: Int64
        var limit: Int

        func makeBindings() throws -> PostgresBindings { .of(after, Int64(limit)) }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    struct ReplayedMessages: PostgresPreparedStatement {
        static let sql = messagesSQL(upTo: "least(h.head, $3)", "AND x.stream_id = $4")
        typealias Row = MessageRow
        var after: Int64
        var limit: Int
        var through: Int64
        var stream: String

        func makeBindings() throws -> PostgresBindings { .of(after, Int64(limit), through, stream) }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }
}
