import Hummingbird

/// Resolves the caller's credential from `Authorization: Bearer <x>` (or `x-api-key`), by shape.
/// A credential that is sent but not valid is refused with 401, never downgraded to anonymous.
/// Routes decide what they require (`context.requireAdmin()`).
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
            presented = parts[1].trimmingCharacters(in: .whitespaces)
        } else {
            presented = request.headers[.apiKey]
        }
        guard let token = presented, !token.isEmpty else { return .none }
        if token.hasPrefix("ik_") {
            guard Credential.isAdminKeyShape(token), keys.kind(of: token) == .admin else { throw APIError.invalidAPIKey }
            return .admin
        }
        if token.hasPrefix("anon_") {
            guard Credential.isAnonKeyShape(token), keys.kind(of: token) == .anon else { throw APIError.invalidAPIKey }
            return .anon
        }
        // Anything else is a JWT: valid, or refused (never treated as anonymous).
        guard let claims = await tokens.verify(token) else { throw APIError.invalidToken }
        return .token(TokenSubject(id: claims.sub.value, email: claims.email, role: claims.role))
    }
}
