import EventStore
import Foundation
import PostgresNIO

/// Inline read model of the issued API keys: `system.api_keys`, one row per kind.
/// A rotation keeps the previous key (its fingerprint and ciphertext) until its grace period ends.
public struct ApiKeysProjection: Projection {
    public static let table = ReadModelTable(schema: "system", name: "api_keys", keyColumns: ["kind"])

    public init() {}

    public var name: String { "api_keys" }
    public var tables: [ReadModelTable] { [Self.table] }
    public var eventTypes: Set<String>? { [ApiKeyIssued.type] }

    public func apply(_ events: [RecordedEvent], in context: ProjectionContext) async throws {
        let table = context.name(of: Self.table)
        for event in events {
            let issued = try event.decode(ApiKeyIssued.self)
            try await context.connection.query("""
                INSERT INTO \(unescaped: table) AS k (kind, key_id, ciphertext, fingerprint, issued_at, position)
                VALUES (\(issued.kind.rawValue), \(issued.keyId), \(issued.ciphertext), \(issued.fingerprint),
                        \(event.recordedAt), \(event.position))
                ON CONFLICT (kind) DO UPDATE SET
                    previous_fingerprint = CASE WHEN \(issued.previousValidUntil)::timestamptz IS NULL THEN NULL ELSE k.fingerprint END,
                    previous_ciphertext  = CASE WHEN \(issued.previousValidUntil)::timestamptz IS NULL THEN NULL ELSE k.ciphertext END,
                    grace_until = \(issued.previousValidUntil)::timestamptz,
                    key_id = excluded.key_id, ciphertext = excluded.ciphertext, fingerprint = excluded.fingerprint,
                    issued_at = excluded.issued_at, position = excluded.position
                """, logger: context.logger)
        }
    }
}
