import Actors
import EventStore
import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// `/api/realtime/...` (admin): channel CRUD, message history and stats, server-side publish.
struct RealtimeController {
    let channels: RealtimeChannels

    static let channelBody = JSONSchema.object(["pattern": .string(minLength: 1, maxLength: 255), "description": .text,
                                                "webhookUrls": .array(.string(format: "uri"), maxItems: 20), "enabled": .boolean])

    func register(_ routes: RouteTable) {
        routes.add(.get, "/api/realtime/channels", "List realtime channels", access: .admin) { _, context in
            return try .json(encoding: try await channels.list())
        }
        routes.add(.post, "/api/realtime/channels", "Create a channel (the webhook secret is returned once)", access: .admin,
                   body: Self.channelBody) { request, context in
            let input = try await request.decodeJSON(RealtimeChannels.Input.self, context: context)
            return try .json(encoding: try await channels.create(input, metadata: context.eventMetadata), status: .created)
        }
        routes.add(.get, "/api/realtime/channels/:id", "One channel", access: .admin) { _, context in
            guard let channel = try await channels.find(try Self.id(context)) else { throw APIError.notFound("Channel not found") }
            return try .json(encoding: channel)
        }
        for method in [HTTPRequest.Method.put, .patch] {
            routes.add(method, "/api/realtime/channels/:id", "Update a channel (fields left out keep their value)", access: .admin,
                       body: Self.channelBody) { request, context in
                let input = try await request.decodeJSON(RealtimeChannels.Input.self, context: context)
                return try .json(encoding: try await channels.update(try Self.id(context), input, metadata: context.eventMetadata))
            }
        }
        routes.add(.delete, "/api/realtime/channels/:id", "Delete a channel (its messages are kept)", access: .admin) { _, context in
            try await channels.delete(try Self.id(context), metadata: context.eventMetadata)
            return .json(#"{"message":"Channel deleted"}"#)
        }
        routes.add(.post, "/api/realtime/channels/:id/rotate-secret", "Replace a channel's webhook signing secret (returned once)",
                   access: .admin) { _, context in
            return try .json(encoding: try await channels.rotateSecret(try Self.id(context), metadata: context.eventMetadata))
        }
        routes.add(.get, "/api/realtime/messages", "Message history (channelId, eventName, limit, offset)", access: .admin) { request, context in
            return try await messages(request)
        }
        routes.add(.get, "/api/realtime/messages/stats", "Message counts and webhook delivery figures", access: .admin) { request, context in
            return try await stats(request)
        }
        routes.add(.post, "/api/realtime/messages", "Publish a message from the server (senderType system)", access: .admin,
                   body: .object(["channel": .string(minLength: 1), "event": .string(minLength: 1), "payload": .object([:])],
                                 required: ["channel", "event"])) { request, context in
            return try await publish(request, context)
        }
    }

    static func id(_ context: AppRequestContext) throws -> UUID {
        guard let raw = context.parameters.get("id"), let id = UUID(uuidString: raw) else { throw APIError.invalidInput("id must be a UUID") }
        return id
    }

    struct PublishInput: Decodable {
        var channel: String
        var event: String
        var payload: JSONValue?
    }

    private func publish(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let input = try await request.decodeJSON(PublishInput.self, context: context)
        if let problem = RealtimeChannels.nameProblem(input.channel) { throw APIError.invalidInput(problem) }
        if let problem = RealtimeChannels.eventNameProblem(input.event) { throw APIError.invalidInput(problem) }
        let payload = input.payload ?? .object([:])
        guard case .object = payload else { throw APIError.invalidInput("payload must be a JSON object") }
        let identity = DatabaseIdentity(context.credential)
        guard let channel = try await channels.subscribable(input.channel, as: identity) else {
            throw APIError.notFound("No enabled channel matches \(input.channel)")
        }
        let id = UUID()
        try await channels.publish(id: id, channelId: channel.id, channel: input.channel, event: input.event,
                                   payload: try JSONCoding.encodeString(payload), senderType: "system", as: identity)
        await channels.store.sequencer.flush()
        guard let message = try await channels.messages(id: id).first else { throw APIError.notFound("Message not found") }
        return try .json(encoding: message, status: .created)
    }

    private func messages(_ request: Request) async throws -> Response {
        let channelId = try request.queryUUID("channelId")
        let limit = Int(try request.queryInt("limit", default: 100, range: 1...1000))
        let offset = Int(try request.queryInt("offset", default: 0, range: 0...10_000_000))
        await channels.store.sequencer.flush()
        return try .json(encoding: try await channels.messages(channelId: channelId, eventName: request.queryString("eventName"),
                                                               limit: limit, offset: offset))
    }

    private func stats(_ request: Request) async throws -> Response {
        let channelId = try request.queryUUID("channelId")
        return try .json(encoding: try await channels.stats(channelId: channelId))
    }
}

extension RealtimeChannels {
    /// A message of the history, with its log position and webhook figures.
    struct Message: Encodable {
        var id: String
        var eventName: String
        var channelId: String?
        var channelName: String
        var payload: JSONValue
        var senderType: String
        var senderId: String?
        var position: Int64?
        var whAudienceCount: Int64
        var whDeliveredCount: Int64
        var createdAt: Date
    }

    func messages(id: UUID? = nil, channelId: UUID? = nil, eventName: String? = nil, limit: Int = 1, offset: Int = 0) async throws -> [Message] {
        let rows = try await client.query("""
            SELECT m.id, m.event_name, m.channel_id, m.channel_name, m.payload::text, m.sender_type, m.sender_id,
                   (SELECT e.position FROM system.events e WHERE e.event_id = m.id),
                   (SELECT count(*) FROM realtime.webhook_outbox o WHERE o.message_id = m.id),
                   (SELECT count(*) FROM realtime.webhook_outbox o JOIN realtime.webhook_deliveries d ON d.id = o.id
                     WHERE o.message_id = m.id AND d.status = 'delivered'),
                   m.created_at
              FROM realtime.messages m
             WHERE (\(id)::uuid IS NULL OR m.id = \(id)) AND (\(channelId)::uuid IS NULL OR m.channel_id = \(channelId))
               AND (\(eventName)::text IS NULL OR m.event_name = \(eventName))
             ORDER BY m.created_at DESC, m.id LIMIT \(limit) OFFSET \(offset)
            """)
        var out: [Message] = []
        for try await (id, event, channelId, channel, payload, senderType, senderId, position, audience, delivered, created)
            in rows.decode((UUID, String, UUID?, String, String, String, UUID?, Int64?, Int64, Int64, Date).self) {
            out.append(Message(id: id.uuidString.lowercased(), eventName: event, channelId: channelId?.uuidString.lowercased(), channelName: channel,
                               payload: (try? JSONCoding.decoder.decode(JSONValue.self, from: Data(payload.utf8))) ?? .object([:]),
                               senderType: senderType, senderId: senderId?.uuidString.lowercased(), position: position, whAudienceCount: audience,
                               whDeliveredCount: delivered, createdAt: created))
        }
        return out
    }

    struct Stats: Encodable {
        struct EventCount: Encodable { var eventName: String; var count: Int64 }
        var totalMessages: Int64
        var systemMessages: Int64
        var userMessages: Int64
        var whAudienceCount: Int64
        var whDeliveredCount: Int64
        var whPendingCount: Int64
        var whExhaustedCount: Int64
        /// Delivered over audience (1 when there was none).
        var whDeliveryRate: Double
        var topEvents: [EventCount]
    }

    func stats(channelId: UUID?) async throws -> Stats {
        var stats = Stats(totalMessages: 0, systemMessages: 0, userMessages: 0, whAudienceCount: 0, whDeliveredCount: 0,
                          whPendingCount: 0, whExhaustedCount: 0, whDeliveryRate: 1, topEvents: [])
        for try await (total, system, user) in try await client.query("""
            SELECT count(*), count(*) FILTER (WHERE sender_type = 'system'), count(*) FILTER (WHERE sender_type = 'user')
              FROM realtime.messages WHERE \(channelId)::uuid IS NULL OR channel_id = \(channelId)
            """).decode((Int64, Int64, Int64).self) {
            (stats.totalMessages, stats.systemMessages, stats.userMessages) = (total, system, user)
        }
        for try await (audience, delivered, pending, exhausted) in try await client.query("""
            SELECT count(*), count(*) FILTER (WHERE d.status = 'delivered'),
                   count(*) FILTER (WHERE d.status IS NULL OR d.status = 'pending'), count(*) FILTER (WHERE d.status = 'exhausted')
              FROM realtime.webhook_outbox o LEFT JOIN realtime.webhook_deliveries d ON d.id = o.id
             WHERE \(channelId)::uuid IS NULL OR o.channel_id = \(channelId)
            """).decode((Int64, Int64, Int64, Int64).self) {
            (stats.whAudienceCount, stats.whDeliveredCount, stats.whPendingCount, stats.whExhaustedCount) = (audience, delivered, pending, exhausted)
        }
        if stats.whAudienceCount > 0 { stats.whDeliveryRate = Double(stats.whDeliveredCount) / Double(stats.whAudienceCount) }
        for try await (event, count) in try await client.query("""
            SELECT event_name, count(*) FROM realtime.messages WHERE \(channelId)::uuid IS NULL OR channel_id = \(channelId)
             GROUP BY event_name ORDER BY count(*) DESC, event_name LIMIT 10
            """).decode((String, Int64).self) {
            stats.topEvents.append(.init(eventName: event, count: count))
        }
        return stats
    }
}
