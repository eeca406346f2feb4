import EventStore
import Foundation
import Logging

/// The admin sign-in from `ADMIN_EMAIL`/`ADMIN_PASSWORD` (or `ROOT_ADMIN_USERNAME`/`ROOT_ADMIN_PASSWORD`).
public struct AdminAccount: Sendable {
    public var email: String
    /// bcrypt hash of the configured password, made once at start-up (the password itself is not kept).
    var passwordHash: String
    /// The admin's stable id in tokens and events.
    public static let subject = "00000000-0000-0000-0000-000000000001"
}

/// Decides account commands (sign-up, sign-in, profiles, deletion) and appends their events.
/// Hashing happens before the append; the read models are written by the inline projections.
public struct AccountCommands: Sendable {
    let store: EventStore
    let directory: AuthDirectory
    let hasher: PasswordHasher
    let sessions: SessionIssuer

    static func stream(_ user: UUID) -> String { "user-\(user.uuidString.lowercased())" }

    /// The events of a user's stream that prove its owner has the address (a condition on `type` and `data`).
    static let proves = """
        type = 'EmailVerified' OR (type = 'PasswordChanged' AND data->>'reason' = 'reset')
        OR (type = 'UserSignedUp' AND jsonb_typeof(data->'identity') = 'object' AND (data->>'emailVerified')::boolean)
        """

    /// Whether the account's owner has proven the address, by the account's own history: a code or a
    /// link (`EmailVerified`), a password reset by e-mail, or an account created by a provider that
    /// verified the address. A password sign-up on a project that does not require verification is
    /// shown as verified but proves nothing, so it does not count.
    func addressProven(_ user: UUID) async throws -> Bool {
        let rows = try await store.client.query("""
            SELECT EXISTS (SELECT 1 FROM system.events WHERE stream_id = \(Self.stream(user)) AND (\(unescaped: Self.proves)))
            """)
        for try await proven in rows.decode(Bool.self) { return proven }
        return false
    }

    /// Appends events to a user's stream and forgets the cached user, so this node reads its own write.
    func append(_ events: [EventData], to user: UUID, expected: ExpectedVersion = .any) async throws {
        defer { directory.cache.invalidate(user) }
        try await store.append(events, to: Self.stream(user), expected: expected)
    }

    /// Validates and normalises an e-mail address (trimmed; INVALID_INPUT when it is not one).
    static func normalizedEmail(_ raw: String?) throws -> String {
        guard let raw else { throw DomainError.invalidInput("email is required") }
        let email = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard email.utf8.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[1].contains("."),
              !parts[1].hasPrefix("."), !parts[1].hasSuffix("."),
              email.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7F && $0 != "<" && $0 != ">" && $0 != "," })
        else { throw DomainError.invalidInput("email must be a valid e-mail address") }
        return email
    }

    /// Creates a password account. `AUTH_EMAIL_EXISTS` when the address is taken (also when
    /// another sign-up with it commits first: the unique index decides).
    func signUp(email: String, password: String, name: String?, settings: AuthSettings, verified: Bool,
                metadata: EventMetadata) async throws -> UserRecord {
        if let problem = settings.passwordPolicy.problem(with: password) { throw DomainError.invalidInput(problem) }
        if try await directory.user(email: email) != nil { throw Self.emailExists }
        let hash = try await hasher.hash(password)
        let id = UUID()
        let profile: JSONValue? = name.map { .object(["name": .string($0)]) }
        let event = UserSignedUp(userId: id, email: email, passwordHash: hash, emailVerified: verified, providerType: "email",
                                 profile: profile)
        try await create(event, metadata: metadata)
        guard let user = try await directory.user(id: id) else { throw DomainError.notFound("User not found") }
        return user
    }

    /// Appends a `UserSignedUp`; a lost race on the address is `AUTH_EMAIL_EXISTS`.
    func create(_ event: UserSignedUp, metadata: EventMetadata) async throws {
        do {
            try await append([try EventData(event, metadata: metadata)], to: event.userId, expected: .noStream)
        } catch where DomainError.isUniqueViolation(error) {
            throw Self.emailExists
        }
    }

    static let emailExists = DomainError(.authEmailExists, "User already exists", nextActions: "Sign in instead, or reset the password")
    static let invalidCredentials = DomainError(.authInvalidCredentials, "Invalid credentials")

    /// The account for `email` and `password`, or `AUTH_INVALID_CREDENTIALS` (same time either way).
    func authenticate(email: String, password: String) async throws -> UserRecord {
        let user = try await directory.user(email: email)
        guard try await hasher.verify(password, against: user?.passwordHash), let user else { throw Self.invalidCredentials }
        return user
    }

    /// Marks the address verified (once).
    func markVerified(_ user: UserRecord, method: String, metadata: EventMetadata) async throws {
        guard !user.emailVerified else { return }
        try await append([try EventData(EmailVerified(userId: user.id, method: method), metadata: metadata)], to: user.id)
    }

    /// Sets a new password (hash made here), which also ends the user's sessions.
    func changePassword(_ user: UUID, to password: String, settings: AuthSettings, reason: String,
                        metadata: EventMetadata) async throws {
        if let problem = settings.passwordPolicy.problem(with: password) { throw DomainError.invalidInput(problem) }
        let hash = try await hasher.hash(password)
        var events = [try EventData(PasswordChanged(userId: user, passwordHash: hash, reason: reason), metadata: metadata)]
        if reason == "reset" {
            // The reset proves the address: identities linked since it was last proven were linked by
            // whoever had the account then, and are taken off with it.
            for (provider, providerUserId) in try await identitiesLinkedSinceLastProof(user) {
                events.append(try EventData(IdentityUnlinked(userId: user, provider: provider, providerUserId: providerUserId,
                                                             reason: "password reset"), metadata: metadata))
            }
        }
        try await append(events, to: user, expected: .streamExists)
    }

    /// Identities linked to `user` after the last event that proved its address, and still linked.
    func identitiesLinkedSinceLastProof(_ user: UUID) async throws -> [(String, String)] {
        let rows = try await store.client.query("""
            WITH history AS (SELECT position, type, data FROM system.events WHERE stream_id = \(Self.stream(user))),
                 proof AS (SELECT coalesce(max(position), 0) AS at FROM history WHERE \(unescaped: Self.proves))
            SELECT DISTINCT l.data->'identity'->>'provider', l.data->'identity'->>'providerUserId'
            FROM history l, proof
            WHERE l.type = 'IdentityLinked' AND l.position > proof.at
              AND NOT EXISTS (SELECT 1 FROM history u WHERE u.type = 'IdentityUnlinked' AND u.position > l.position
                                AND u.data->>'provider' = l.data->'identity'->>'provider'
                                AND u.data->>'providerUserId' = l.data->'identity'->>'providerUserId')
            """)
        var out: [(String, String)] = []
        for try await (provider, id) in rows.decode((String, String).self) { out.append((provider, id)) }
        return out
    }

    /// Merges `patch` into the profile (a key set to null removes it) and returns the user.
    func updateProfile(_ id: UUID, patch: [String: JSONValue], metadata: EventMetadata) async throws -> UserRecord {
        guard let user = try await directory.user(id: id) else { throw DomainError.notFound("User not found") }
        var profile = user.profile?.objectValue ?? [:]
        for (key, value) in patch {
            if value == .null { profile.removeValue(forKey: key) } else { profile[key] = value }
        }
        try await append([try EventData(ProfileUpdated(userId: id, profile: .object(profile)), metadata: metadata)],
                         to: id, expected: .streamExists)
        guard let updated = try await directory.user(id: id) else { throw DomainError.notFound("User not found") }
        return updated
    }

    /// Deletes users (unknown ids are skipped); returns how many were deleted.
    func delete(_ ids: [UUID], metadata: EventMetadata) async throws -> Int {
        var deleted = 0
        for id in Set(ids) {
            guard try await directory.user(id: id) != nil else { continue }
            do {
                try await append([try EventData(UserDeleted(userId: id), metadata: metadata)], to: id, expected: .streamExists)
                deleted += 1
            } catch let error as EventStoreError where error.code == .wrongExpectedVersion {
                continue
            }
        }
        return deleted
    }
}
