import NIOPosix
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Everything the auth routes share: the commands, the session issuer, e-mail, limits and settings.
public struct AuthService: Sendable {
    let store: EventStore
    let directory: AuthDirectory
    let accounts: AccountCommands
    let sessions: SessionIssuer
    let codes: AuthCodes
    let mailer: AuthMailer
    let admin: AdminAccount?
    let limits: AuthRateLimits
    /// `API_BASE_URL`, or `http://<host>:<port>`: where links in e-mails and OAuth callbacks point.
    let publicBaseURL: String
    let secureCookies: Bool
    let logger: Logger

    /// Refresh-token cookie for web clients.
    /// Where the auth flows may send a browser under `settings` (this server's own origin always).
    func redirectAllowList(_ settings: AuthSettings) -> RedirectAllowList {
        RedirectAllowList(patterns: settings.allowedRedirectUrls, ownOrigin: publicBaseURL)
    }

    /// `url` when it may be redirected to (400 naming `allowedRedirectUrls` when not); nil stays nil.
    func checkedRedirect(_ url: String?, _ settings: AuthSettings) throws -> String? {
        guard let url else { return nil }
        let allowed = redirectAllowList(settings)
        guard allowed.allows(url) else { throw allowed.refusal("redirectTo", url) }
        return url
    }

    static let refreshCookie = "insforge_refresh_token"

    /// The stored settings.
    func settings() async throws -> AuthSettings { try await directory.settings() }

    /// The response for a new or refreshed session: `{user, accessToken, refreshToken}` for mobile,
    /// desktop and server clients; `{user, accessToken, csrfToken}` plus the httpOnly cookie for web.
    func sessionResponse(userKey: String = "user", user: some Encodable, grant: SessionGrant, status: HTTPResponse.Status = .ok,
                         extra: [String: Bool] = [:]) throws -> Response {
        var body: [String: AnyEncodable] = [userKey: AnyEncodable(user), "accessToken": AnyEncodable(grant.accessToken)]
        if grant.clientType == .web {
            body["csrfToken"] = AnyEncodable(grant.csrfToken)
        } else {
            body["refreshToken"] = AnyEncodable(grant.refreshToken)
        }
        for (key, value) in extra { body[key] = AnyEncodable(value) }
        var response = try Response.json(encoding: body, status: status)
        if grant.clientType == .web {
            response.headers.append(HTTPField(name: .setCookie, value: cookie(grant.refreshToken, maxAge: Int(sessions.refresh.lifetime))))
        }
        return response
    }

    /// `Set-Cookie` for the refresh token (an empty value with `maxAge` 0 clears it).
    func cookie(_ value: String, maxAge: Int) -> String {
        var cookie = "\(Self.refreshCookie)=\(value); Path=/api/auth; HttpOnly; Max-Age=\(maxAge)"
        cookie += secureCookies ? "; Secure; SameSite=None" : "; SameSite=Lax"
        return cookie
    }

    /// The refresh token the request presents: `{refreshToken}` / `{refresh_token}` in the body, or
    /// the cookie (which then needs a matching `X-CSRF-Token`). nil when there is none.
    func presentedRefreshToken(_ request: Request, body: RefreshBody?, requireCSRF: Bool) throws -> (token: String, fromCookie: Bool)? {
        if let token = body?.refreshToken ?? body?.refresh_token, !token.isEmpty { return (token, false) }
        guard let token = request.cookies[Self.refreshCookie]?.value, !token.isEmpty else { return nil }
        if requireCSRF {
            guard let csrf = request.headers[.csrfToken], sessions.refresh.csrfMatches(csrf, token: token) else {
                throw APIError(.forbidden, "FORBIDDEN", "Missing or invalid CSRF token", nextActions: "Send the csrfToken of the session as X-CSRF-Token")
            }
        }
        return (token, true)
    }

    /// Counts a request against the per-IP auth limit (429 beyond it).
    func limitByIP(_ context: AppRequestContext, _ bucket: RateLimiter) throws {
        let decision = bucket.check(ClientAddress.limitKey(context.clientIP ?? "unknown"))
        if !decision.allowed { throw APIError.tooManyRequests(decision) }
    }

    /// Counts a password sign-in attempt against `email` (429 beyond the per-account limit), so that
    /// guesses spread over many addresses still meet a limit per account.
    func limitSignIns(to email: String) throws {
        let decision = limits.signInPerAccount.check(email.lowercased())
        if !decision.allowed { throw APIError.tooManyRequests(decision) }
    }

    /// Counts an e-mail send against the per-address and per-IP limits.
    func limitSends(to email: String, _ context: AppRequestContext) throws {
        try limitByIP(context, limits.emailPerIP)
        let decision = limits.emailPerAddress.check(email.lowercased())
        if !decision.allowed { throw APIError.tooManyRequests(decision) }
    }
}

/// The rate limits of the auth routes (`RATE_LIMIT_AUTH_PER_MINUTE`, `RATE_LIMIT_EMAIL_PER_HOUR`).
public struct AuthRateLimits: Sendable {
    /// Sign-in, sign-up, refresh and OTP attempts per IP and minute.
    let signInPerIP: RateLimiter
    /// E-mail sends per IP and hour.
    let emailPerIP: RateLimiter
    /// E-mail sends per address and hour.
    let emailPerAddress: RateLimiter
    /// Code checks (verify, OTP, reset exchange) per IP and minute.
    let codeChecksPerIP: RateLimiter
    /// Password sign-ins per account and minute (a fifth of the per-IP limit, at least 5).
    let signInPerAccount: RateLimiter

    public init(authPerMinute: Int, emailPerHour: Int) {
        signInPerIP = RateLimiter(limit: authPerMinute, per: 60)
        emailPerIP = RateLimiter(limit: emailPerHour * 5, per: 3600)
        emailPerAddress = RateLimiter(limit: emailPerHour, per: 3600)
        codeChecksPerIP = RateLimiter(limit: authPerMinute, per: 60)
        signInPerAccount = RateLimiter(limit: max(5, authPerMinute / 5), per: 60)
    }
}

/// `{refreshToken}` or `{refresh_token}`.
struct RefreshBody: Decodable {
    var refreshToken: String?
    var refresh_token: String?
}

/// Type erasure for heterogeneous JSON bodies.
struct AnyEncodable: Encodable {
    let value: any Encodable
    init(_ value: any Encodable) { self.value = value }
    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}

extension HTTPField.Name {
    /// `X-CSRF-Token`: proves a cookie refresh comes from the app that holds the session.
    static let csrfToken = Self("X-CSRF-Token")!
}

extension Request {
    /// The JSON body as `T`; an empty body decodes as `{}`. Malformed JSON or a wrong field is 400 naming it.
    func decodeJSON<T: Decodable>(_: T.Type, context: AppRequestContext) async throws -> T {
        let buffer = try await body.collect(upTo: context.maxUploadSize)
        let bytes = buffer.readableBytes == 0 ? Data("{}".utf8) : Data(buffer: buffer)
        return try JSONCoding.decoder.decode(T.self, from: bytes)
    }
}

extension AuthService {
    /// Wires the auth parts from the server's configuration (the admin's password is hashed once here).
    static func make(core: ServerCore, accessTokens: AccessTokens, logger: Logger) async throws -> AuthService {
        let configuration = core.configuration
        let store = core.store
        let directory = AuthDirectory(client: store.client)
        let hasher = PasswordHasher(cost: UInt8(configuration.bcryptCost), pool: .singleton)
        let sessions = SessionIssuer(store: store, directory: directory, access: accessTokens,
                                     refresh: RefreshTokens(secret: core.jwtSecret))
        var admin: AdminAccount?
        if let email = configuration.adminEmail, let password = configuration.adminPassword {
            admin = AdminAccount(email: email, passwordHash: try await hasher.hash(password))
        }
        let sender: any EmailSender = configuration.smtp.map { s in
            SMTPEmailSender(configuration: SMTPConfiguration(host: s.host, port: s.port, username: s.username, password: s.password,
                                                             from: s.from, fromName: s.fromName, caFile: s.caFile), logger: logger)
        } ?? DisabledEmailSender(logger: logger)
        let host = configuration.host == "0.0.0.0" || configuration.host == "::" ? "localhost" : configuration.host
        let base = configuration.apiBaseURL ?? "http://\(host):\(configuration.port)"
        return AuthService(
            store: store, directory: directory,
            accounts: AccountCommands(store: store, directory: directory, hasher: hasher, sessions: sessions),
            sessions: sessions, codes: AuthCodes(store: store, secret: core.jwtSecret), mailer: AuthMailer(sender: sender),
            admin: admin,
            limits: AuthRateLimits(authPerMinute: configuration.authRateLimitPerMinute, emailPerHour: configuration.emailRateLimitPerHour),
            publicBaseURL: base.hasSuffix("/") ? String(base.dropLast()) : base,
            secureCookies: base.lowercased().hasPrefix("https://"), logger: logger)
    }
}
