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
        switch credential {
        case .admin: return
        case .none: throw APIError.missingCredentials
        default: throw APIError.forbidden
        }
    }
}
