import Hummingbird

/// Resolves the caller's credential from `Authorization: Bearer <x>` (or `x-api-key`), by shape.
/// A credential that is sent but not valid is refused with 401, never downgraded to anonymous.
/// What a route requires is its declared access, checked by `RouteTable`'s `AccessMiddleware`.
public struct CredentialsMiddleware: RouterMiddleware {
    public typealias Context = AppRequestContext
    let keys: KeyRing
    let tokens: AccessTokens

    public init(keys: KeyRing, tokens: AccessTokens) {
        self.keys = keys
        self.tokens = tokens
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.credential = try await resolve(request)
        return try await next(request, context)
    }

    func resolve(_ request: Request) async throws -> Credential {
        let presented: String?
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else { throw APIError.invalidToken }
            presented = String(parts[1].trimmingASCIIWhitespace())
        } else {
            presented = request.headers[.apiKey]
        }
        guard let token = presented, !token.isEmpty else { return .none }
        // Anything that is not a key is a JWT: valid, or refused (never treated as anonymous), except
        // on the routes that authenticate by other means, where it is not used at all.
        if let credential = try await credential(for: token) { return credential }
        if Self.authenticatesOtherwise(request) { return .none }
        throw APIError.invalidToken
    }

    /// The credential `token` stands for (an admin key, the anon key, or a valid JWT): nil for a JWT
    /// that is not valid, `invalidAPIKey` thrown for a key-shaped token that is not ours.
    func credential(for token: String) async throws -> Credential? {
        if token.hasPrefix("ik_") {
            guard Credential.isAdminKeyShape(token), keys.kind(of: token) == .admin else { throw APIError.invalidAPIKey }
            return .admin
        }
        if token.hasPrefix("anon_") {
            guard Credential.isAnonKeyShape(token), keys.kind(of: token) == .anon else { throw APIError.invalidAPIKey }
            return .anon
        }
        guard let claims = await tokens.verify(token) else { return nil }
        return .token(TokenSubject(id: claims.sub.value, email: claims.email, role: claims.role))
    }

    /// Sign-in, sign-up, refresh, logout, code and OAuth-exchange routes authenticate with a password,
    /// a refresh token or a code. The SDKs send their (possibly expired) access token along with every
    /// request; refusing it there would block the very request that renews it.
    static func authenticatesOtherwise(_ request: Request) -> Bool {
        let path = request.uri.path
        guard path.hasPrefix("/api/auth/") else { return false }
        if path.hasPrefix("/api/auth/email/") { return true }
        guard request.method == .post else { return false }
        return ["/api/auth/refresh", "/api/auth/logout", "/api/auth/admin/refresh", "/api/auth/admin/logout",
                "/api/auth/sessions", "/api/auth/admin/sessions", "/api/auth/users", "/api/auth/oauth/exchange"].contains(path)
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (Foundation's trimming bridges to NSString: too slow
    /// for every request).
    func trimmingASCIIWhitespace() -> Substring {
        let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isBlank($0) }), let last = lastIndex(where: { !isBlank($0) }) else { return "" }
        return self[first...last]
    }
}
