import EventStore
import Foundation
import PostgresNIO

/// Inline read model of session families: `auth.sessions` (current refresh-token digest and generation).
/// A deleted user's or a changed password's sessions end here too.
public struct SessionsProjection: Projection {
    public static let sessions = ReadModelTable(schema: "auth", name: "sessions", keyColumns: ["id"])

    public init() {}

    public var name: String { "auth_sessions" }
    public var tables: [ReadModelTable] { [Self.sessions] }
    public var eventTypes: Set<String>? {
        [SessionStarted.type, SessionRefreshed.type, SessionRevoked.type, UserDeleted.type, PasswordChanged.type]
    }

    public func apply(_ events: [RecordedEvent], in context: ProjectionContext) async throws {
        let table = context.name(of: Self.sessions)
        let db = context.connection
        for event in events {
            let at = event.recordedAt
            switch event.type {
            case SessionStarted.type:
                let e = try event.decode(SessionStarted.self)
                try await db.query("""
                    INSERT INTO \(unescaped: table) (id, subject, client_type, generation, token_hash, expires_at, created_at, refreshed_at)
                    VALUES (\(e.sessionId), \(e.subject), \(e.clientType), 0, \(e.tokenHash), \(e.expiresAt), \(at), \(at))
                    """, logger: context.logger)
            case SessionRefreshed.type:
                let e = try event.decode(SessionRefreshed.self)
                try await db.query("""
                    UPDATE \(unescaped: table) SET generation = \(e.generation), token_hash = \(e.tokenHash),
                        expires_at = \(e.expiresAt), refreshed_at = \(at)
                    WHERE id = \(e.sessionId)
                    """, logger: context.logger)
            case SessionRevoked.type:
                let e = try event.decode(SessionRevoked.self)
                try await db.query("""
                    UPDATE \(unescaped: table) SET revoked_at = \(at), revoked_reason = \(e.reason)
                    WHERE id = \(e.sessionId) AND revoked_at IS NULL
                    """, logger: context.logger)
            case UserDeleted.type:
                let e = try event.decode(UserDeleted.self)
                try await revokeAll(of: e.userId, reason: "user_deleted", at: at, table, context)
            case PasswordChanged.type:
                let e = try event.decode(PasswordChanged.self)
                try await revokeAll(of: e.userId, reason: "password_changed", at: at, table, context)
            default:
                continue
            }
        }
    }

    private func revokeAll(of userId: UUID, reason: String, at: Date, _ table: String, _ context: ProjectionContext) async throws {
        try await context.connection.query("""
            UPDATE \(unescaped: table) SET revoked_at = \(at), revoked_reason = \(reason)
            WHERE subject = \(userId.uuidString.lowercased()) AND revoked_at IS NULL
            """, logger: context.logger)
    }
}
