import Foundation

// Auth events. Streams: `user-<uuid>`, `session-<uuid>`, `authcode-<uuid>`, `authconfig-main`,
// `oauthprovider-<provider>`, `oauthcode-<id>`. Passwords appear only as bcrypt hashes, tokens and
// codes only as SHA-256/HMAC digests, provider secrets only as AES-GCM boxes.

/// A provider identity (`google`, `github`, ...) and the provider's id for the user.
public struct ProviderIdentity: Codable, Sendable, Hashable {
    public var provider: String
    public var providerUserId: String
    public var email: String?
    public init(provider: String, providerUserId: String, email: String?) {
        self.provider = provider
        self.providerUserId = providerUserId
        self.email = email
    }
}

/// A user account was created, by password sign-up, by an admin, or by a first provider sign-in.
public struct UserSignedUp: DomainEvent, Equatable {
    public static let type = "UserSignedUp"
    public var userId: UUID
    public var email: String
    /// bcrypt hash; nil for provider-only accounts.
    public var passwordHash: String?
    public var emailVerified: Bool
    /// `email` or the provider of the first sign-in.
    public var providerType: String
    public var profile: JSONValue?
    public var identity: ProviderIdentity?
    public init(userId: UUID, email: String, passwordHash: String?, emailVerified: Bool, providerType: String,
                profile: JSONValue?, identity: ProviderIdentity? = nil) {
        self.userId = userId
        self.email = email
        self.passwordHash = passwordHash
        self.emailVerified = emailVerified
        self.providerType = providerType
        self.profile = profile
        self.identity = identity
    }
}

/// The user proved they own their address (code, link, OTP sign-in or a provider's verified e-mail).
public struct EmailVerified: DomainEvent, Equatable {
    public static let type = "EmailVerified"
    public var userId: UUID
    public var method: String
    public init(userId: UUID, method: String) { self.userId = userId; self.method = method }
}

/// The password changed (reset flow); `passwordHash` is bcrypt.
public struct PasswordChanged: DomainEvent, Equatable {
    public static let type = "PasswordChanged"
    public var userId: UUID
    public var passwordHash: String
    public var reason: String
    public init(userId: UUID, passwordHash: String, reason: String) {
        self.userId = userId
        self.passwordHash = passwordHash
        self.reason = reason
    }
}

/// The profile was replaced by `profile` (the merged result, so a replay needs no earlier state).
public struct ProfileUpdated: DomainEvent, Equatable {
    public static let type = "ProfileUpdated"
    public var userId: UUID
    public var profile: JSONValue
    public init(userId: UUID, profile: JSONValue) { self.userId = userId; self.profile = profile }
}

/// A provider identity was linked to an existing user (same verified e-mail).
public struct IdentityLinked: DomainEvent, Equatable {
    public static let type = "IdentityLinked"
    public var userId: UUID
    public var identity: ProviderIdentity
    public init(userId: UUID, identity: ProviderIdentity) { self.userId = userId; self.identity = identity }
}

/// A provider identity was taken off an account: a password reset (which proves the address) detaches
/// the identities linked since the address was last proven.
public struct IdentityUnlinked: DomainEvent, Equatable {
    public static let type = "IdentityUnlinked"
    public var userId: UUID
    public var provider: String
    public var providerUserId: String
    public var reason: String
    public init(userId: UUID, provider: String, providerUserId: String, reason: String) {
        self.userId = userId
        self.provider = provider
        self.providerUserId = providerUserId
        self.reason = reason
    }
}

/// The user was deleted (by an admin); their sessions end with them.
public struct UserDeleted: DomainEvent, Equatable {
    public static let type = "UserDeleted"
    public var userId: UUID
    public init(userId: UUID) { self.userId = userId }
}

/// A session family began: its first refresh token (generation 0), as a SHA-256 digest.
public struct SessionStarted: DomainEvent, Equatable {
    public static let type = "SessionStarted"
    public var sessionId: UUID
    /// The user id, or `admin`.
    public var subject: String
    public var clientType: String
    /// `password`, `signup`, `otp`, `oauth:<provider>`, `admin`.
    public var method: String
    public var tokenHash: String
    public var expiresAt: Date
    public init(sessionId: UUID, subject: String, clientType: String, method: String, tokenHash: String, expiresAt: Date) {
        self.sessionId = sessionId
        self.subject = subject
        self.clientType = clientType
        self.method = method
        self.tokenHash = tokenHash
        self.expiresAt = expiresAt
    }
}

/// The refresh token rotated: `generation` is the new one; older tokens of the family are now reuse.
public struct SessionRefreshed: DomainEvent, Equatable {
    public static let type = "SessionRefreshed"
    public var sessionId: UUID
    public var generation: Int
    public var tokenHash: String
    public var expiresAt: Date
    public init(sessionId: UUID, generation: Int, tokenHash: String, expiresAt: Date) {
        self.sessionId = sessionId
        self.generation = generation
        self.tokenHash = tokenHash
        self.expiresAt = expiresAt
    }
}

/// The session family ended: `logout`, `reuse` (a rotated token came back), `password_changed`, `user_deleted`.
public struct SessionRevoked: DomainEvent, Equatable {
    public static let type = "SessionRevoked"
    public var sessionId: UUID
    public var reason: String
    public init(sessionId: UUID, reason: String) { self.sessionId = sessionId; self.reason = reason }
}

/// What an e-mail code or link is for.
public enum AuthCodePurpose: String, Codable, Sendable, CaseIterable {
    case verifyEmail = "verify_email"
    case resetPassword = "reset_password"
    /// The token `exchange-reset-password-token` hands out (and a reset link carries).
    case resetToken = "reset_token"
    case signIn = "sign_in"
}

/// A code (6 digits) and/or link token was sent; only their HMACs are kept.
public struct AuthCodeIssued: DomainEvent, Equatable {
    public static let type = "AuthCodeIssued"
    public var codeId: UUID
    public var userId: UUID
    public var email: String
    public var purpose: AuthCodePurpose
    public var codeHash: String?
    public var linkHash: String?
    public var expiresAt: Date
    public var maxAttempts: Int
    public init(codeId: UUID, userId: UUID, email: String, purpose: AuthCodePurpose, codeHash: String?, linkHash: String?,
                expiresAt: Date, maxAttempts: Int) {
        self.codeId = codeId
        self.userId = userId
        self.email = email
        self.purpose = purpose
        self.codeHash = codeHash
        self.linkHash = linkHash
        self.expiresAt = expiresAt
        self.maxAttempts = maxAttempts
    }
}

/// A wrong code was tried against `codeId` (attempts are limited).
public struct AuthCodeRejected: DomainEvent, Equatable {
    public static let type = "AuthCodeRejected"
    public var codeId: UUID
    public init(codeId: UUID) { self.codeId = codeId }
}

/// The code was used; it cannot be used again.
public struct AuthCodeConsumed: DomainEvent, Equatable {
    public static let type = "AuthCodeConsumed"
    public var codeId: UUID
    public init(codeId: UUID) { self.codeId = codeId }
}

/// The auth configuration was replaced by `settings` (the whole document).
public struct AuthConfigChanged: DomainEvent, Equatable {
    public static let type = "AuthConfigChanged"
    public var settings: JSONValue
    public init(settings: JSONValue) { self.settings = settings }
}

/// An OAuth provider's credentials were set by an admin; the secret only as an AES-GCM box.
public struct OAuthProviderConfigured: DomainEvent, Equatable {
    public static let type = "OAuthProviderConfigured"
    public var provider: String
    public var clientId: String
    public var secretCiphertext: String?
    public var scopes: [String]?
    public var redirectUri: String?
    public init(provider: String, clientId: String, secretCiphertext: String?, scopes: [String]?, redirectUri: String?) {
        self.provider = provider
        self.clientId = clientId
        self.secretCiphertext = secretCiphertext
        self.scopes = scopes
        self.redirectUri = redirectUri
    }
}

/// An OAuth provider's stored configuration was removed (environment credentials, if any, apply again).
public struct OAuthProviderRemoved: DomainEvent, Equatable {
    public static let type = "OAuthProviderRemoved"
    public var provider: String
    public init(provider: String) { self.provider = provider }
}

/// A one-time `insforge_code` was exchanged for a session: the stream exists once, so a second exchange conflicts.
public struct OAuthCodeExchanged: DomainEvent, Equatable {
    public static let type = "OAuthCodeExchanged"
    public var userId: UUID
    public var provider: String
    public init(userId: UUID, provider: String) { self.userId = userId; self.provider = provider }
}
