import Foundation

/// Which credential a key event is about.
public enum ApiKeyKind: String, Codable, Sendable, CaseIterable {
    /// `ik_...`: full admin, bypasses RLS.
    case admin
    /// `anon_...`: the public anon role.
    case anon

    /// The key's stream: `apikey-admin`, `apikey-anon`.
    public var streamId: String { "apikey-\(rawValue)" }
}

/// A key was issued (first start, `ACCESS_API_KEY` changed, or a rotation). The key itself only as ciphertext.
public struct ApiKeyIssued: DomainEvent, Equatable {
    public static let type = "ApiKeyIssued"
    public var kind: ApiKeyKind
    public var keyId: UUID
    /// AES-256-GCM combined box (nonce, ciphertext, tag), base64.
    public var ciphertext: String
    /// SHA-256 hex of the key.
    public var fingerprint: String
    /// Why it was issued: `generated`, `configured`, `rotated`.
    public var reason: String
    /// On rotation: until when the previous key stays valid.
    public var previousValidUntil: Date?

    public init(kind: ApiKeyKind, keyId: UUID, ciphertext: String, fingerprint: String, reason: String, previousValidUntil: Date? = nil) {
        self.kind = kind
        self.keyId = keyId
        self.ciphertext = ciphertext
        self.fingerprint = fingerprint
        self.reason = reason
        self.previousValidUntil = previousValidUntil
    }
}
