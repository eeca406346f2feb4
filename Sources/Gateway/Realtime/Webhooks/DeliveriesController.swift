import EventStore
import Foundation
import Hummingbird
import PostgresNIO

/// `/api/realtime/deliveries` (admin): webhook deliveries, their attempts, and re-sending.
struct DeliveriesController {
    let client: PostgresClient

    func register(_ routes: RouteTable) {
        routes.add(.get, "/api/realtime/deliveries", "Webhook deliveries (status, channelId, messageId, limit, offset)",
                   access: .admin) { request, context in
            let status = request.queryString("status")
            if let status, !["pending", "delivered", "exhausted", "disabled"].contains(status) {
                throw APIError.invalidInput("status must be pending, delivered, exhausted or disabled")
            }
            let messageId = try request.queryUUID("messageId")
            let limit = Int(try request.queryInt("limit", default: 100, range: 1...1000))
            let offset = Int(try request.queryInt("offset", default: 0, range: 0...10_000_000))
            return try .json(encoding: try await deliveries(status: status, channelId: try request.queryUUID("channelId"),
                                                            messageId: messageId, limit: limit, offset: offset))
        }
        routes.add(.get, "/api/realtime/deliveries/:id", "One webhook delivery with its attempts", access: .admin) { _, context in
            let id = try RealtimeController.id(context)
            guard var delivery = try await deliveries(id: id).first else { throw APIError.notFound("Delivery not found") }
            delivery.attemptLog = try await attempts(of: id)
            return try .json(encoding: delivery)
        }
        routes.add(.get, "/api/realtime/deliveries/:id/attempts", "The attempts of a webhook delivery", access: .admin) { _, context in
            let id = try RealtimeController.id(context)
            guard try await deliveries(id: id).first != nil else { throw APIError.notFound("Delivery not found") }
            return try .json(encoding: try await attempts(of: id))
        }
        routes.add(.post, "/api/realtime/deliveries/:id/retry", "Send a webhook delivery again (one more attempt, now)",
                   access: .admin) { _, context in
            let id = try RealtimeController.id(context)
            guard let delivery = try await deliveries(id: id).first else { throw APIError.notFound("Delivery not found") }
            guard delivery.status != "delivered" else { throw APIError(.conflict, "CONFLICT", "The delivery was already delivered") }
            try await client.query("""
                INSERT INTO realtime.webhook_deliveries (id, status, next_attempt_at) VALUES (\(id), 'pending', now())
                ON CONFLICT (id) DO UPDATE SET status = 'pending', next_attempt_at = now(), updated_at = now()
                 WHERE realtime.webhook_deliveries.status <> 'delivered'
                """)
            guard let updated = try await deliveries(id: id).first else { throw APIError.notFound("Delivery not found") }
            return try .json(encoding: updated, status: .accepted)
        }
    }

    struct Delivery: Encodable {
        var id: String
        var messageId: String
        var channelId: String?
        var channel: String
        var event: String
        var url: String
        var status: String
        var attempts: Int
        var nextAttemptAt: Date?
        var lastStatus: Int?
        var lastError: String?
        var deliveredAt: Date?
        var createdAt: Date
        var attemptLog: [Attempt]?
    }

    struct Attempt: Encodable {
        var attempt: Int
        var startedAt: Date
        var durationMs: Double
        var statusCode: Int?
        var error: String?
    }

    /// Outbox rows with their delivery state (rows the dispatcher has not taken yet are pending).
    func deliveries(id: UUID? = nil, status: String? = nil, channelId: UUID? = nil, messageId: UUID? = nil, limit: Int = 1,
                    offset: Int = 0) async throws -> [Delivery] {
        let rows = try await client.query("""
            SELECT o.id, o.message_id, o.channel_id, o.channel, o.event, o.url, coalesce(d.status, 'pending'),
                   coalesce(d.attempts, 0), CASE WHEN d.id IS NULL THEN o.created_at ELSE d.next_attempt_at END,
                   d.last_status, d.last_error, d.delivered_at, o.created_at
              FROM realtime.webhook_outbox o LEFT JOIN realtime.webhook_deliveries d ON d.id = o.id
             WHERE (\(id)::uuid IS NULL OR o.id = \(id)) AND (\(channelId)::uuid IS NULL OR o.channel_id = \(channelId))
               AND (\(messageId)::uuid IS NULL OR o.message_id = \(messageId))
               AND (\(status)::text IS NULL OR coalesce(d.status, 'pending') = \(status))
             ORDER BY o.position DESC, o.url LIMIT \(limit) OFFSET \(offset)
            """)
        var out: [Delivery] = []
        for try await (id, messageId, channelId, channel, event, url, status, attempts, next, lastStatus, lastError, deliveredAt, created)
            in rows.decode((UUID, UUID, UUID?, String, String, String, String, Int32, Date?, Int32?, String?, Date?, Date).self) {
            out.append(Delivery(id: id.uuidString.lowercased(), messageId: messageId.uuidString.lowercased(),
                                channelId: channelId?.uuidString.lowercased(), channel: channel, event: event, url: url, status: status,
                                attempts: Int(attempts), nextAttemptAt: status == "pending" ? next : nil, lastStatus: lastStatus.map(Int.init),
                                lastError: lastError, deliveredAt: deliveredAt, createdAt: created))
        }
        return out
    }

    func attempts(of id: UUID) async throws -> [Attempt] {
        var out: [Attempt] = []
        for try await (attempt, started, duration, code, error) in try await client.query("""
            SELECT attempt, started_at, duration_ms, status_code, error FROM realtime.webhook_attempts
             WHERE delivery_id = \(id) ORDER BY id
            """).decode((Int32, Date, Double, Int32?, String?).self) {
            out.append(Attempt(attempt: Int(attempt), startedAt: started, durationMs: duration, statusCode: code.map(Int.init), error: error))
        }
        return out
    }
}
