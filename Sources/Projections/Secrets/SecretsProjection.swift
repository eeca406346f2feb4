import EventStore
import Foundation
import PostgresNIO

/// Inline read model of the project's secrets: `system.secrets`, one row per key, values sealed.
public struct SecretsProjection: Projection {
    public static let table = ReadModelTable(schema: "system", name: "secrets", keyColumns: ["id"])

    public init() {}

    public var name: String { "secrets" }
    public var tables: [ReadModelTable] { [Self.table] }
    public var eventTypes: Set<String>? { [SecretStored.type, SecretUpdated.type, SecretDeleted.type, SecretResealed.type] }

    public func apply(_ events: [RecordedEvent], in context: ProjectionContext) async throws {
        let table = context.name(of: Self.table)
        let db = context.connection
        for event in events {
            let at = event.recordedAt
            switch event.type {
            case SecretStored.type:
                let e = try event.decode(SecretStored.self)
                try await db.query("""
                    INSERT INTO \(unescaped: table) AS s (id, key, ciphertext, is_active, is_reserved, expires_at, created_at, updated_at)
                    VALUES (\(e.secretId), \(e.key), \(e.ciphertext), true, \(e.isReserved), \(e.expiresAt), \(at), \(at))
                    ON CONFLICT (key) DO UPDATE SET ciphertext = excluded.ciphertext, is_active = true,
                        is_reserved = excluded.is_reserved, expires_at = excluded.expires_at, updated_at = excluded.updated_at
                    """, logger: context.logger)
            case SecretUpdated.type:
                let e = try event.decode(SecretUpdated.self)
                try await db.query("""
                    UPDATE \(unescaped: table) SET
                        ciphertext = coalesce(\(e.ciphertext), ciphertext), is_active = coalesce(\(e.isActive), is_active),
                        is_reserved = coalesce(\(e.isReserved), is_reserved),
                        expires_at = CASE WHEN \(e.clearsExpiry) THEN NULL ELSE coalesce(\(e.expiresAt)::timestamptz, expires_at) END,
                        updated_at = \(at)
                     WHERE key = \(e.key)
                    """, logger: context.logger)
            case SecretDeleted.type:
                let e = try event.decode(SecretDeleted.self)
                try await db.query("UPDATE \(unescaped: table) SET is_active = false, updated_at = \(at) WHERE key = \(e.key)",
                                   logger: context.logger)
            case SecretResealed.type:
                let e = try event.decode(SecretResealed.self)
                try await db.query("UPDATE \(unescaped: table) SET ciphertext = \(e.ciphertext) WHERE key = \(e.key)", logger: context.logger)
            default:
                continue
            }
        }
    }
}
