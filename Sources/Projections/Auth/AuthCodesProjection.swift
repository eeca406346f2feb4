import EventStore
import Foundation
import PostgresNIO

/// Inline read model of e-mail codes and links: `auth.codes`. A new code for an address and purpose
/// retires the earlier ones, so only the latest mail works.
public struct AuthCodesProjection: Projection {
    public static let codes = ReadModelTable(schema: "auth", name: "codes", keyColumns: ["id"])

    public init() {}

    public var name: String { "auth_codes" }
    public var tables: [ReadModelTable] { [Self.codes] }
    public var eventTypes: Set<String>? { [AuthCodeIssued.type, AuthCodeRejected.type, AuthCodeConsumed.type] }

    public func apply(_ events: [RecordedEvent], in context: ProjectionContext) async throws {
        let table = context.name(of: Self.codes)
        let db = context.connection
        for event in events {
            let at = event.recordedAt
            switch event.type {
            case AuthCodeIssued.type:
                let e = try event.decode(AuthCodeIssued.self)
                try await db.query("""
                    UPDATE \(unescaped: table) SET consumed_at = \(at)
                    WHERE lower(email) = lower(\(e.email)) AND purpose = \(e.purpose.rawValue) AND consumed_at IS NULL
                    """, logger: context.logger)
                try await db.query("""
                    INSERT INTO \(unescaped: table) (id, email, purpose, user_id, code_hash, link_hash, expires_at, attempts,
                                                     max_attempts, created_at)
                    VALUES (\(e.codeId), \(e.email), \(e.purpose.rawValue), \(e.userId), \(e.codeHash), \(e.linkHash),
                            \(e.expiresAt), 0, \(e.maxAttempts), \(at))
                    """, logger: context.logger)
            case AuthCodeRejected.type:
                let e = try event.decode(AuthCodeRejected.self)
                try await db.query("UPDATE \(unescaped: table) SET attempts = attempts + 1 WHERE id = \(e.codeId)",
                                   logger: context.logger)
            case AuthCodeConsumed.type:
                let e = try event.decode(AuthCodeConsumed.self)
                try await db.query("UPDATE \(unescaped: table) SET consumed_at = \(at) WHERE id = \(e.codeId) AND consumed_at IS NULL",
                                   logger: context.logger)
            default:
                continue
            }
        }
    }
}
