import EventStore
import Foundation
import PostgresNIO

/// A user as the read model holds it (`auth.users` and their identities).
public struct UserRecord: Sendable, Equatable {
    public var id: UUID
    public var email: String
    public var passwordHash: String?
    public var emailVerified: Bool
    public var providerType: String
    public var profile: JSONValue?
    public var metadata: JSONValue?
    public var createdAt: Date
    public var updatedAt: Date
    /// Providers linked to the account, oldest first (`email` when it has a password).
    public var providers: [String]

    /// The user as the API shows it (InsForge's User).
    public var view: UserView {
        UserView(id: id.uuidString.lowercased(), email: email, emailVerified: emailVerified,
                 identities: providers.map { .init(provider: $0) }, providerType: providerType, role: "authenticated",
                 createdAt: createdAt, updatedAt: updatedAt, profile: profile, metadata: metadata)
    }
}

/// InsForge's User: `{id, email, emailVerified, identities, providerType, role, createdAt, updatedAt, profile, metadata}`.
public struct UserView: Codable, Sendable, Equatable {
    public struct Identity: Codable, Sendable, Equatable { public var provider: String }
    public var id: String
    public var email: String
    public var emailVerified: Bool
    public var identities: [Identity]
    public var providerType: String
    public var role: String
    public var createdAt: Date
    public var updatedAt: Date
    public var profile: JSONValue?
    public var metadata: JSONValue?

    enum CodingKeys: String, CodingKey {
        case id, email, emailVerified, identities, providers, providerType, role, createdAt, updatedAt, profile, metadata
    }

    public init(id: String, email: String, emailVerified: Bool, identities: [Identity], providerType: String, role: String,
                createdAt: Date, updatedAt: Date, profile: JSONValue?, metadata: JSONValue?) {
        self.id = id
        self.email = email
        self.emailVerified = emailVerified
        self.identities = identities
        self.providerType = providerType
        self.role = role
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.profile = profile
        self.metadata = metadata
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(id: try c.decode(String.self, forKey: .id), email: try c.decode(String.self, forKey: .email),
                  emailVerified: try c.decode(Bool.self, forKey: .emailVerified),
                  identities: try c.decode([Identity].self, forKey: .identities),
                  providerType: try c.decode(String.self, forKey: .providerType), role: try c.decode(String.self, forKey: .role),
                  createdAt: try c.decode(Date.self, forKey: .createdAt), updatedAt: try c.decode(Date.self, forKey: .updatedAt),
                  profile: try c.decodeIfPresent(JSONValue.self, forKey: .profile),
                  metadata: try c.decodeIfPresent(JSONValue.self, forKey: .metadata))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(email, forKey: .email)
        try c.encode(emailVerified, forKey: .emailVerified)
        try c.encode(identities, forKey: .identities)
        try c.encode(identities.map(\.provider), forKey: .providers)  // InsForge's JS SDK reads `providers`
        try c.encode(providerType, forKey: .providerType)
        try c.encode(role, forKey: .role)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(updatedAt, forKey: .updatedAt)
        try c.encode(profile ?? .null, forKey: .profile)  // explicit null, as the SDKs expect the key
        try c.encode(metadata ?? .null, forKey: .metadata)
    }
}

/// Reads of the auth read models (the command side decides on these).
public struct AuthDirectory: Sendable {
    let client: PostgresClient
    /// Users recently read by id (see `cachedUser`).
    public let cache: UserCache

    public init(client: PostgresClient, cache: UserCache = UserCache()) {
        self.client = client
        self.cache = cache
    }

    /// The user with `id`, from the cache when present (the hot path of `sessions/current`).
    public func cachedUser(id: UUID) async throws -> UserRecord? {
        if let user = cache.get(id) { return user }
        let ticket = cache.ticket()
        guard let user = try await user(id: id) else { return nil }
        cache.put(user, ticket: ticket)
        return user
    }

    static let userColumns = """
        u.id, u.email, u.password_hash, u.email_verified, u.provider_type, u.profile::text, u.metadata::text,
        u.created_at, u.updated_at,
        coalesce((SELECT array_agg(i.provider ORDER BY i.created_at, i.provider) FROM auth.identities i WHERE i.user_id = u.id),
                 '{}'::text[])
        """

    /// The user with `id`.
    public func user(id: UUID) async throws -> UserRecord? {
        try await users(client.query("SELECT \(unescaped: Self.userColumns) FROM auth.users u WHERE u.id = \(id)")).first
    }

    /// The user with `email` (any case).
    public func user(email: String) async throws -> UserRecord? {
        try await users(client.query("SELECT \(unescaped: Self.userColumns) FROM auth.users u WHERE lower(u.email) = lower(\(email))")).first
    }

    /// The user linked to a provider identity.
    public func user(provider: String, providerUserId: String) async throws -> UserRecord? {
        try await users(client.query("""
            SELECT \(unescaped: Self.userColumns) FROM auth.users u
            JOIN auth.identities i ON i.user_id = u.id
            WHERE i.provider = \(provider) AND i.provider_user_id = \(providerUserId)
            """)).first
    }

    /// A page of users, newest first, optionally filtered by a case-insensitive search on e-mail and name.
    public func users(search: String?, limit: Int, offset: Int) async throws -> (users: [UserRecord], total: Int) {
        let pattern = search.map { "%" + Self.escapeLike($0) + "%" }
        let page = try await users(client.query("""
            SELECT \(unescaped: Self.userColumns) FROM auth.users u
            WHERE \(pattern)::text IS NULL OR u.email ILIKE \(pattern) OR u.profile->>'name' ILIKE \(pattern)
            ORDER BY u.created_at DESC, u.id LIMIT \(limit) OFFSET \(offset)
            """))
        var total = 0
        for try await n in try await client.query("""
            SELECT count(*) FROM auth.users u
            WHERE \(pattern)::text IS NULL OR u.email ILIKE \(pattern) OR u.profile->>'name' ILIKE \(pattern)
            """).decode(Int.self) { total = n }
        return (page, total)
    }

    /// `%`, `_` and `\` taken literally in a LIKE pattern.
    static func escapeLike(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_")
    }

    private func users(_ rows: PostgresRowSequence) async throws -> [UserRecord] {
        var out: [UserRecord] = []
        for try await (id, email, hash, verified, providerType, profile, metadata, created, updated, providers)
            in rows.decode((UUID, String, String?, Bool, String, String?, String?, Date, Date, [String]).self) {
            var all = providers
            if hash != nil, !all.contains("email") { all.insert("email", at: 0) }
            out.append(UserRecord(id: id, email: email, passwordHash: hash, emailVerified: verified, providerType: providerType,
                                  profile: profile.flatMap(Self.json), metadata: metadata.flatMap(Self.json),
                                  createdAt: created, updatedAt: updated, providers: all))
        }
        return out
    }

    static func json(_ text: String) -> JSONValue? {
        try? JSONCoding.decoder.decode(JSONValue.self, from: Data(text.utf8))
    }

    /// A session family's current state.
    public struct Session: Sendable {
        public var id: UUID
        public var subject: String
        public var clientType: String
        public var generation: Int
        public var tokenHash: String
        public var expiresAt: Date
        public var revoked: Bool
    }

    /// The session with `id`.
    public func session(id: UUID) async throws -> Session? {
        for try await (subject, clientType, generation, hash, expires, revoked) in try await client.query("""
            SELECT subject, client_type, generation, token_hash, expires_at, revoked_at IS NOT NULL FROM auth.sessions WHERE id = \(id)
            """).decode((String, String, Int, String, Date, Bool).self) {
            return Session(id: id, subject: subject, clientType: clientType, generation: generation, tokenHash: hash,
                           expiresAt: expires, revoked: revoked)
        }
        return nil
    }

    /// The stored auth settings (defaults when never set).
    public func settings() async throws -> AuthSettings {
        for try await text in try await client.query("SELECT settings::text FROM auth.config WHERE id = 1").decode(String.self) {
            return try JSONCoding.decoder.decode(AuthSettings.self, from: Data(text.utf8))
        }
        return AuthSettings()
    }
}
