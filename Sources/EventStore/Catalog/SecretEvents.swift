import Foundation

// Secrets of a project (`/api/secrets`), on `secret-<KEY>`. Values appear only as AES-256-GCM boxes
// under a key id (`k1.<id>.<box>`), never in clear.

/// A secret was stored: created, or revived after a delete (same id, new value).
public struct SecretStored: DomainEvent, Equatable {
    public static let type = "SecretStored"
    public var secretId: UUID
    public var key: String
    public var ciphertext: String
    public var isReserved: Bool
    public var expiresAt: Date?
    /// Whether a deleted secret of that key came back.
    public var revived: Bool

    public init(secretId: UUID, key: String, ciphertext: String, isReserved: Bool, expiresAt: Date?, revived: Bool) {
        self.secretId = secretId
        self.key = key
        self.ciphertext = ciphertext
        self.isReserved = isReserved
        self.expiresAt = expiresAt
        self.revived = revived
    }
}

/// A secret changed; fields not sent are nil. `clearsExpiry`: `expiresAt: null` was sent.
public struct SecretUpdated: DomainEvent, Equatable {
    public static let type = "SecretUpdated"
    public var key: String
    public var ciphertext: String?
    public var isActive: Bool?
    public var isReserved: Bool?
    public var expiresAt: Date?
    public var clearsExpiry: Bool

    public init(key: String, ciphertext: String?, isActive: Bool?, isReserved: Bool?, expiresAt: Date?, clearsExpiry: Bool) {
        self.key = key
        self.ciphertext = ciphertext
        self.isActive = isActive
        self.isReserved = isReserved
        self.expiresAt = expiresAt
        self.clearsExpiry = clearsExpiry
    }
}

/// A secret was deleted (softly: it can be revived by storing its key again).
public struct SecretDeleted: DomainEvent, Equatable {
    public static let type = "SecretDeleted"
    public var key: String

    public init(key: String) { self.key = key }
}

/// `ENCRYPTION_KEY` changed: the value sealed again under the current key (`keyId`), same plaintext.
public struct SecretResealed: DomainEvent, Equatable {
    public static let type = "SecretResealed"
    public var key: String
    public var ciphertext: String
    public var keyId: String

    public init(key: String, ciphertext: String, keyId: String) {
        self.key = key
        self.ciphertext = ciphertext
        self.keyId = keyId
    }
}
