import Crypto
import EventStore
import Foundation
import Logging
import PostgresNIO

/// The project's secrets: what functions read as `Deno.env`, kept sealed (AES-256-GCM under a key
/// id) in the log and the read model. The only code that appends `secret-<KEY>` events.
///
/// Three reserved secrets are not stored but answered from the server itself: `API_KEY` and
/// `ANON_KEY` (the current keys) and `INSFORGE_BASE_URL`. They are readable, never writable. The JWT
/// secret is deliberately not among them: function code that could read it could mint any token.
struct SecretCommands: Sendable {
    let store: EventStore
    let box: SecretBox
    /// The value of a reserved secret, from the server.
    let reserved: @Sendable (String) async throws -> String?
    let logger: Logger

    static let reservedKeys = ["API_KEY", "ANON_KEY", "INSFORGE_BASE_URL"]

    /// What an admin sees of a secret (never its value).
    struct Metadata: Encodable, Sendable {
        var id: UUID
        var key: String
        var isActive: Bool
        var isReserved: Bool
        var lastUsedAt: String?
        var expiresAt: String?
        var createdAt: String
        var updatedAt: String
    }

    /// A stored secret's row.
    struct Row: Sendable {
        var id: UUID
        var key: String
        var ciphertext: String
        var isActive: Bool
        var isReserved: Bool
        var expiresAt: Date?
    }

    static func stream(_ key: String) -> String { "secret-\(key)" }

    /// `^[A-Z0-9_]+$`, at most 256 characters.
    static func checkKey(_ key: String) throws {
        guard !key.isEmpty, key.utf8.count <= 256, key.utf8.allSatisfy({ (0x41...0x5A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F })
        else {
            throw DomainError.invalidInput("Invalid key format. Use uppercase letters, numbers, and underscores only (e.g., STRIPE_API_KEY)")
        }
    }

    static func checkValue(_ value: String) throws {
        guard value.utf8.count <= 64 * 1024 else { throw DomainError.invalidInput("value must be at most 64 KiB") }
    }

    func row(_ key: String) async throws -> Row? {
        try await Self.rows(store.client.query("SELECT \(unescaped: Self.columns) FROM system.secrets WHERE key = \(key)", logger: logger)).first
    }

    static let columns = "id, key, ciphertext, is_active, is_reserved, expires_at"

    static func rows(_ sequence: PostgresRowSequence) async throws -> [Row] {
        var out: [Row] = []
        for try await (id, key, ciphertext, active, reserved, expires) in sequence.decode((UUID, String, String, Bool, Bool, Date?).self) {
            out.append(Row(id: id, key: key, ciphertext: ciphertext, isActive: active, isReserved: reserved, expiresAt: expires))
        }
        return out
    }

    /// Stores a new secret, or revives a deleted one (same id, new value). Returns its id.
    func create(key: String, value: String, isReserved: Bool, expiresAt: Date?, metadata: EventMetadata) async throws -> UUID {
        try Self.checkKey(key)
        try Self.checkValue(value)
        if Self.reservedKeys.contains(key) { throw DomainError(.secretAlreadyExists, "Secret already exists: \(key)") }
        let existing = try await row(key)
        if let existing, existing.isActive { throw DomainError(.secretAlreadyExists, "Secret already exists: \(key)") }
        let id = existing?.id ?? UUID()
        let event = SecretStored(secretId: id, key: key, ciphertext: try box.seal(value), isReserved: isReserved, expiresAt: expiresAt,
                                 revived: existing != nil)
        do {
            try await store.append([try EventData(event, metadata: metadata)], to: Self.stream(key),
                                   expected: existing == nil ? .noStream : .streamExists)
        } catch let error as EventStoreError where error.code == .wrongExpectedVersion {
            throw DomainError(.secretAlreadyExists, "Secret already exists: \(key)")  // a concurrent create won
        }
        return id
    }

    /// Changes what is sent; `expiresAt: .some(nil)` clears the expiry.
    func update(key: String, value: String?, isActive: Bool?, isReserved: Bool?, expiresAt: Date??, metadata: EventMetadata) async throws {
        if Self.reservedKeys.contains(key) { throw DomainError(.forbidden, "Cannot update reserved secret: \(key)") }
        guard let existing = try await row(key) else { throw DomainError(.secretNotFound, "Secret not found: \(key)") }
        if existing.isReserved { throw DomainError(.forbidden, "Cannot update reserved secret: \(key)") }
        guard value != nil || isActive != nil || isReserved != nil || expiresAt != nil else {
            throw DomainError.invalidInput("Nothing to update: send value, isActive, isReserved or expiresAt")
        }
        if let value { try Self.checkValue(value) }
        let event = SecretUpdated(key: key, ciphertext: try value.map(box.seal), isActive: isActive, isReserved: isReserved,
                                  expiresAt: expiresAt ?? nil, clearsExpiry: expiresAt.map { $0 == nil } ?? false)
        try await store.append([try EventData(event, metadata: metadata)], to: Self.stream(key), expected: .streamExists)
    }

    /// Deletes softly (storing the key again revives it).
    func delete(key: String, metadata: EventMetadata) async throws {
        if Self.reservedKeys.contains(key) { throw DomainError(.forbidden, "Cannot delete reserved secret: \(key)") }
        guard let existing = try await row(key) else { throw DomainError(.secretNotFound, "Secret not found: \(key)") }
        if existing.isReserved { throw DomainError(.forbidden, "Cannot delete reserved secret: \(key)") }
        try await store.append([try EventData(SecretDeleted(key: key), metadata: metadata)], to: Self.stream(key), expected: .streamExists)
    }

    /// The value of an active, unexpired secret (nil otherwise); records when it was last read.
    func value(of key: String, now: Date = Date()) async throws -> String? {
        if Self.reservedKeys.contains(key) { return try await reserved(key) }
        guard let row = try await row(key), row.isActive, row.expiresAt.map({ $0 > now }) ?? true else { return nil }
        try await store.client.query("""
            INSERT INTO system.secret_reads (key, last_used_at) VALUES (\(key), now())
            ON CONFLICT (key) DO UPDATE SET last_used_at = excluded.last_used_at
            """, logger: logger)
        return try box.open(row.ciphertext)
    }

    /// Every secret, inactive ones included, newest first; the reserved ones after them.
    func list() async throws -> [Metadata] {
        var out: [Metadata] = []
        let rows = try await store.client.query("""
            SELECT s.id, s.key, s.is_active, s.is_reserved, r.last_used_at, s.expires_at, s.created_at, s.updated_at
              FROM system.secrets s LEFT JOIN system.secret_reads r ON r.key = s.key
             ORDER BY s.created_at DESC, s.key
            """, logger: logger)
        for try await (id, key, active, reserved, used, expires, created, updated)
            in rows.decode((UUID, String, Bool, Bool, Date?, Date?, Date, Date).self) {
            out.append(Metadata(id: id, key: key, isActive: active, isReserved: reserved, lastUsedAt: used.map(JSONCoding.timestamp),
                                expiresAt: expires.map(JSONCoding.timestamp), createdAt: JSONCoding.timestamp(created),
                                updatedAt: JSONCoding.timestamp(updated)))
        }
        let started = JSONCoding.timestamp(Date(timeIntervalSince1970: 0))
        for key in Self.reservedKeys {
            out.append(Metadata(id: Self.reservedId(key), key: key, isActive: true, isReserved: true, lastUsedAt: nil, expiresAt: nil,
                                createdAt: started, updatedAt: started))
        }
        return out
    }

    /// A stable id for a reserved secret (they have no row).
    static func reservedId(_ key: String) -> UUID {
        let digest = Array(SHA256.hash(data: Data("reserved secret \(key)".utf8)))
        return UUID(uuid: (digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], (digest[6] & 0x0F) | 0x40, digest[7],
                           (digest[8] & 0x3F) | 0x80, digest[9], digest[10], digest[11], digest[12], digest[13], digest[14], digest[15]))
    }

    /// Seals again, as events, every value not sealed under the current key (after `ENCRYPTION_KEY`
    /// changed and the old one went to `ENCRYPTION_KEYS_PREVIOUS`). Returns how many.
    @discardableResult
    func reseal(metadata: EventMetadata = .init()) async throws -> Int {
        let stale = try await Self.rows(store.client.query("""
            SELECT \(unescaped: Self.columns) FROM system.secrets WHERE ciphertext NOT LIKE \("k1." + box.keyId + ".%")
            """, logger: logger))
        var resealed = 0, unreadable: [String] = []
        for row in stale {
            // A value sealed under a key this server was not given stays as it is (reading it fails
            // until the key is back in ENCRYPTION_KEYS_PREVIOUS): the server still starts.
            guard let plaintext = try? box.open(row.ciphertext) else {
                unreadable.append(row.key)
                continue
            }
            let event = SecretResealed(key: row.key, ciphertext: try box.seal(plaintext), keyId: box.keyId)
            try await store.append([try EventData(event, metadata: metadata)], to: Self.stream(row.key), expected: .streamExists)
            resealed += 1
        }
        if resealed > 0 { logger.notice("sealed \(resealed) secret(s) again under the current ENCRYPTION_KEY") }
        if !unreadable.isEmpty {
            logger.warning("\(unreadable.count) secret(s) were sealed under a key this server does not have; add it to ENCRYPTION_KEYS_PREVIOUS",
                           metadata: ["keys": "\(unreadable.prefix(10).joined(separator: ","))"])
        }
        return resealed
    }
}
