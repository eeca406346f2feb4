import Hummingbird
import Logging
import NIOCore

/// Per-request state: who is calling (resolved once by `CredentialsMiddleware`) and the request id.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The caller; `.none` until the credentials middleware has run, or when no credential was sent.
    public var credential: Credential = .none
    /// `X-Request-Id`: echoed back and stored in event metadata.
    public var requestId: String = ""
    /// The peer's IP address.
    public var clientIP: String?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.clientIP = source.channel.remoteAddress?.ipAddress
    }

    /// JSON bodies up to 1 MiB by default (uploads stream and do not use this).
    public var maxUploadSize: Int { 1 << 20 }

    /// Throws unless the caller holds the admin role.
    public func requireAdmin() throws {
        if credential.isAdmin { return }
        if credential == .none { throw APIError.missingAdminCredentials }
        throw APIError.forbidden
    }

    /// Throws 401 unless some credential was sent (the anon key at least).
    public func requireCredential() throws {
        if credential == .none { throw APIError.missingCredentials }
    }

    /// Throws unless an access token was sent (a user's or an admin's): 401 without a credential, 403 for keys.
    public func requireSignedIn() throws {
        switch credential {
        case .token: return
        case .none: throw APIError.missingCredentials
        default: throw APIError.forbidden
        }
    }

    /// The signed-in user (an access token with role `authenticated`); 401 without a credential,
    /// 403 for keys and admin tokens.
    public func requireUser() throws -> TokenSubject {
        switch credential {
        case .token(let subject) where subject.role == "authenticated": return subject
        case .none: throw APIError.missingCredentials
        default: throw APIError.forbidden
        }
    }
}
