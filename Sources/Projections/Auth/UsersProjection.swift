import EventStore
import Foundation
import PostgresNIO

/// Inline read model of accounts: `auth.users` and `auth.identities`.
/// The unique index on `lower(email)` is what makes concurrent sign-ups with one address yield one user.
public struct UsersProjection: Projection {
    public static let users = ReadModelTable(schema: "auth", name: "users", keyColumns: ["id"])
    public static let identities = ReadModelTable(schema: "auth", name: "identities", keyColumns: ["provider", "provider_user_id"])

    public init() {}

    public var name: String { "auth_users" }
    public var tables: [ReadModelTable] { [Self.users, Self.identities] }
    public var eventTypes: Set<String>? {
        [UserSignedUp.type, EmailVerified.type, PasswordChanged.type, ProfileUpdated.type, IdentityLinked.type, IdentityUnlinked.type,
         UserDeleted.type]
    }

    public func apply(_ events: [RecordedEvent], in context: ProjectionContext) async throws {
        let users = context.name(of: Self.users)
        let identities = context.name(of: Self.identities)
        let db = context.connection
        for event in events {
            let at = event.recordedAt
            switch event.type {
            case UserSignedUp.type:
                let e = try event.decode(UserSignedUp.self)
                try await db.query("""
                    INSERT INTO \(unescaped: users) (id, email, password_hash, email_verified, provider_type, profile,
                                                     metadata, created_at, updated_at, position)
                    VALUES (\(e.userId), \(e.email), \(e.passwordHash), \(e.emailVerified), \(e.providerType),
                            \(e.profile?.jsonText)::jsonb, NULL, \(at), \(at), \(event.position))
                    """, logger: context.logger)
                if let identity = e.identity {
                    try await insert(identity, of: e.userId, at: at, into: identities, context)
                }
            case EmailVerified.type:
                let e = try event.decode(EmailVerified.self)
                try await touch(users, e.userId, "email_verified = true", event, context)
            case PasswordChanged.type:
                let e = try event.decode(PasswordChanged.self)
                try await db.query("""
                    UPDATE \(unescaped: users) SET password_hash = \(e.passwordHash), updated_at = \(at), position = \(event.position)
                    WHERE id = \(e.userId)
                    """, logger: context.logger)
            case ProfileUpdated.type:
                let e = try event.decode(ProfileUpdated.self)
                try await db.query("""
                    UPDATE \(unescaped: users) SET profile = \(e.profile.jsonText)::jsonb, updated_at = \(at), position = \(event.position)
                    WHERE id = \(e.userId)
                    """, logger: context.logger)
            case IdentityLinked.type:
                let e = try event.decode(IdentityLinked.self)
                try await insert(e.identity, of: e.userId, at: at, into: identities, context)
                try await touch(users, e.userId, "email_verified = true", event, context)
            case IdentityUnlinked.type:
                let e = try event.decode(IdentityUnlinked.self)
                try await db.query("""
                    DELETE FROM \(unescaped: identities)
                    WHERE user_id = \(e.userId) AND provider = \(e.provider) AND provider_user_id = \(e.providerUserId)
                    """, logger: context.logger)
            case UserDeleted.type:
                let e = try event.decode(UserDeleted.self)
                try await db.query("DELETE FROM \(unescaped: identities) WHERE user_id = \(e.userId)", logger: context.logger)
                try await db.query("DELETE FROM \(unescaped: users) WHERE id = \(e.userId)", logger: context.logger)
            default:
                continue
            }
        }
    }

    private func insert(_ identity: ProviderIdentity, of userId: UUID, at: Date, into table: String,
                        _ context: ProjectionContext) async throws {
        try await context.connection.query("""
            INSERT INTO \(unescaped: table) (provider, provider_user_id, user_id, email, created_at)
            VALUES (\(identity.provider), \(identity.providerUserId), \(userId), \(identity.email), \(at))
            """, logger: context.logger)
    }

    /// `SET <assignment>` plus the bookkeeping columns; `assignment` is a constant of ours, never input.
    private func touch(_ table: String, _ userId: UUID, _ assignment: StaticString, _ event: RecordedEvent,
                       _ context: ProjectionContext) async throws {
        try await context.connection.query("""
            UPDATE \(unescaped: table) SET \(unescaped: "\(assignment)"), updated_at = \(event.recordedAt), position = \(event.position)
            WHERE id = \(userId)
            """, logger: context.logger)
    }
}
