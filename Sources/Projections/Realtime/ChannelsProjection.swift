import EventStore
import Foundation
import PostgresNIO

/// Inline read model of realtime channels: `realtime.channels` (what policies and subscribers see)
/// and `realtime.channel_secrets` (the sealed webhook secrets, for the server only).
public struct ChannelsProjection: Projection {
    public static let channels = ReadModelTable(schema: "realtime", name: "channels", keyColumns: ["id"])
    public static let secrets = ReadModelTable(schema: "realtime", name: "channel_secrets", keyColumns: ["channel_id"])

    public init() {}

    public var name: String { "realtime_channels" }
    public var tables: [ReadModelTable] { [Self.channels, Self.secrets] }
    public var eventTypes: Set<String>? {
        [ChannelCreated.type, ChannelUpdated.type, ChannelDeleted.type, ChannelSecretRotated.type, ChannelWebhookDisabled.type]
    }

    public func apply(_ events: [RecordedEvent], in context: ProjectionContext) async throws {
        let channels = context.name(of: Self.channels)
        let secrets = context.name(of: Self.secrets)
        let db = context.connection
        for event in events {
            let at = event.recordedAt
            switch event.type {
            case ChannelCreated.type:
                let e = try event.decode(ChannelCreated.self)
                let s = e.settings
                try await db.query("""
                    INSERT INTO \(unescaped: channels) (id, pattern, description, webhook_urls, enabled, created_at, updated_at)
                    VALUES (\(e.channelId), \(s.pattern), \(s.description), \(s.webhookUrls), \(s.enabled), \(at), \(at))
                    """, logger: context.logger)
                try await db.query("""
                    INSERT INTO \(unescaped: secrets) (channel_id, secret_ciphertext, rotated_at) VALUES (\(e.channelId), \(e.secretCiphertext), \(at))
                    """, logger: context.logger)
            case ChannelUpdated.type:
                let e = try event.decode(ChannelUpdated.self)
                let s = e.settings
                try await db.query("""
                    UPDATE \(unescaped: channels) SET pattern = \(s.pattern), description = \(s.description),
                        webhook_urls = \(s.webhookUrls), enabled = \(s.enabled), updated_at = \(at)
                    WHERE id = \(e.channelId)
                    """, logger: context.logger)
            case ChannelDeleted.type:
                let e = try event.decode(ChannelDeleted.self)
                try await db.query("DELETE FROM \(unescaped: channels) WHERE id = \(e.channelId)", logger: context.logger)
                try await db.query("DELETE FROM \(unescaped: secrets) WHERE channel_id = \(e.channelId)", logger: context.logger)
            case ChannelSecretRotated.type:
                let e = try event.decode(ChannelSecretRotated.self)
                try await db.query("""
                    UPDATE \(unescaped: secrets) SET secret_ciphertext = \(e.secretCiphertext), rotated_at = \(at)
                    WHERE channel_id = \(e.channelId)
                    """, logger: context.logger)
            case ChannelWebhookDisabled.type:
                let e = try event.decode(ChannelWebhookDisabled.self)
                try await db.query("""
                    UPDATE \(unescaped: channels) SET webhook_urls = array_remove(webhook_urls, \(e.url)), updated_at = \(at)
                    WHERE id = \(e.channelId)
                    """, logger: context.logger)
            default:
                continue
            }
        }
    }
}

/// The webhook outbox: one row per message and webhook URL, written by a runner in the same
/// transaction as its checkpoint. Row ids derive from the message id and the URL, so a replay
/// rebuilds the same rows; the dispatcher keeps its delivery state in tables of its own.
public struct WebhookOutboxProjection: Projection {
    public static let outbox = ReadModelTable(schema: "realtime", name: "webhook_outbox", keyColumns: ["id"])

    public init() {}

    public var name: String { "webhook_outbox" }
    public var tables: [ReadModelTable] { [Self.outbox] }
    public var eventTypes: Set<String>? { [MessagePublished.type] }
    /// `apply` reads the events' URLs and payloads from the log itself, in one statement.
    public var needsPayload: Bool { false }

    public func apply(_ events: [RecordedEvent], in context: ProjectionContext) async throws {
        // One statement per batch: the URLs and bodies are unpacked by Postgres from the events themselves.
        try await context.write(AddDeliveries(positions: events.map(\.position)))
    }

    struct AddDeliveries: ReadModelWrite {
        static let table = WebhookOutboxProjection.outbox
        static func sql(writingTo table: String) -> String {
            """
            INSERT INTO \(table) (id, position, message_id, channel_id, channel, event, url, body, created_at)
            SELECT md5(e.event_id::text || '/' || u.url)::uuid, e.position, e.event_id, (e.data->>'channelId')::uuid,
                   e.data->>'channel', e.data->>'event', u.url, (e.data->'payload')::text, e.recorded_at
              FROM system.events e
             CROSS JOIN LATERAL (SELECT DISTINCT x AS url FROM jsonb_array_elements_text(coalesce(e.data->'webhookUrls', '[]')) x) u
             WHERE e.position = ANY($1::int8[]) AND e.type = 'MessagePublished'
            ON CONFLICT (id) DO NOTHING
            """
        }
        var positions: [Int64]

        func makeBindings() throws -> PostgresBindings { .of(positions) }
    }
}
