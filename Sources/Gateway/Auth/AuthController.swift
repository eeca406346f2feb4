import HTTPTypes
import EventStore
import Foundation
import Hummingbird

/// `/api/auth`: sign-up, sign-in (password or e-mail OTP), refresh, logout, the current session and profiles.
struct AuthController {
    let auth: AuthService

    func register(_ routes: RouteTable) {
        routes.add(.post, "/api/auth/users", "Sign up with e-mail and password", access: .public,
                   body: .object(["email": .email, "password": .string(minLength: 1, maxLength: 72), "name": .string(maxLength: 200),
                                  "redirectTo": .text], required: ["email", "password"]), signUp)
        routes.add(.post, "/api/auth/sessions", "Sign in with a password, or with an e-mailed OTP (method: otp)", access: .public,
                   body: .object(["email": .email, "password": .text, "method": .string(oneOf: ["password", "otp"]), "otp": .string(pattern: "^[0-9]{6}$")],
                                 required: ["email"]), signIn)
        routes.add(.post, "/api/auth/refresh", "Rotate the refresh token (cookie + X-CSRF-Token, or {refreshToken})", access: .public,
                   body: .object(["refreshToken": .text, "refresh_token": .text]), refresh)
        routes.add(.post, "/api/auth/logout", "End the session of the presented refresh token", access: .public,
                   body: .object(["refreshToken": .text, "refresh_token": .text]), logout)
        routes.add(.get, "/api/auth/sessions/current", "The signed-in user", access: .user, current)
        routes.add(.patch, "/api/auth/profiles/current", "Update the signed-in user's profile", access: .user,
                   body: .object(["profile": .object(["name": .text, "avatar_url": .text])], required: ["profile"]), updateProfile)
        routes.add(.get, "/api/auth/profiles/:id", "A user's public profile", access: .public, profile)
    }

    struct SignUpBody: Decodable {
        var email: String
        var password: String
        var name: String?
        var redirectTo: String?
    }

    @Sendable func signUp(_ request: Request, context: AppRequestContext) async throws -> Response {
        try auth.limitByIP(context, auth.limits.signInPerIP)
        let clientType = try ClientType.from(query: request.queryString("client_type"))
        let body = try await request.decodeJSON(SignUpBody.self, context: context)
        let email = try AccountCommands.normalizedEmail(body.email)
        let settings = try await auth.settings()
        guard !settings.disableSignup else {
            throw APIError(.forbidden, "AUTH_SIGNUP_DISABLED", "Sign-up is disabled for this project")
        }
        if let name = body.name, name.count > 200 { throw APIError.invalidInput("name must be at most 200 characters") }
        _ = try auth.checkedRedirect(body.redirectTo, settings)
        let user = try await auth.accounts.signUp(email: email, password: body.password, name: body.name, settings: settings,
                                                  verified: !settings.requireEmailVerification, metadata: context.eventMetadata)
        if settings.requireEmailVerification {
            try await EmailFlows(auth: auth).sendVerification(to: user, settings: settings, redirectTo: body.redirectTo,
                                                               context: context, countAgainstLimits: false)
            return try Response.json(encoding: SignUpPending(user: user.view, accessToken: nil, requireEmailVerification: true))
        }
        let grant = try await auth.sessions.start(subject: user.id.uuidString.lowercased(), email: user.email, role: "authenticated",
                                                  clientType: clientType, method: "signup", metadata: context.eventMetadata)
        return try auth.sessionResponse(user: user.view, grant: grant, extra: ["requireEmailVerification": false])
    }

    struct SignUpPending: Encodable {
        var user: UserView
        var accessToken: String?
        var requireEmailVerification: Bool
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(user, forKey: .user)
            try c.encodeNil(forKey: .accessToken)
            try c.encode(requireEmailVerification, forKey: .requireEmailVerification)
        }
        enum CodingKeys: String, CodingKey { case user, accessToken, requireEmailVerification }
    }

    struct SignInBody: Decodable {
        var email: String
        var password: String?
        var method: String?
        var otp: String?
    }

    @Sendable func signIn(_ request: Request, context: AppRequestContext) async throws -> Response {
        try auth.limitByIP(context, auth.limits.signInPerIP)
        let clientType = try ClientType.from(query: request.queryString("client_type"))
        let body = try await request.decodeJSON(SignInBody.self, context: context)
        let email = try AccountCommands.normalizedEmail(body.email)
        let user: UserRecord
        let method: String
        switch body.method ?? "password" {
        case "password":
            guard let password = body.password, !password.isEmpty else { throw APIError.invalidInput("password is required") }
            try auth.limitSignIns(to: email)
            user = try await auth.accounts.authenticate(email: email, password: password)
            method = "password"
        case "otp":
            guard let otp = body.otp, !otp.isEmpty else { throw APIError.invalidInput("otp is required") }
            user = try await EmailFlows(auth: auth).signInWithCode(email: email, otp: otp, context: context)
            method = "otp"
        default:
            throw APIError.invalidInput("method must be password or otp")
        }
        let settings = try await auth.settings()
        if settings.requireEmailVerification, !user.emailVerified {
            throw APIError(.forbidden, "FORBIDDEN", "Email verification required",
                           nextActions: "Please verify your email address before logging in")
        }
        let grant = try await auth.sessions.start(subject: user.id.uuidString.lowercased(), email: user.email, role: "authenticated",
                                                  clientType: clientType, method: method, metadata: context.eventMetadata)
        return try auth.sessionResponse(user: user.view, grant: grant)
    }

    @Sendable func refresh(_ request: Request, context: AppRequestContext) async throws -> Response {
        try auth.limitByIP(context, auth.limits.signInPerIP)
        let body = try await request.decodeJSON(RefreshBody.self, context: context)
        guard let presented = try auth.presentedRefreshToken(request, body: body, requireCSRF: true) else {
            throw APIError(.unauthorized, "AUTH_UNAUTHORIZED", "No refresh token was presented")
        }
        do {
            var user: UserRecord?
            let (subject, grant) = try await auth.sessions.rotate(presented.token, metadata: context.eventMetadata) { subject in
                if subject == AdminAccount.subject, let admin = auth.admin { return (admin.email, "project_admin") }
                guard let id = UUID(uuidString: subject), let found = try await auth.directory.user(id: id) else { return nil }
                user = found
                return (found.email, "authenticated")
            }
            if subject == AdminAccount.subject, let admin = auth.admin {
                return try auth.sessionResponse(userKey: "admin", user: AdminView(email: admin.email), grant: grant)
            }
            guard let user else { throw RefreshRefusal.invalid }
            return try auth.sessionResponse(user: user.view, grant: grant)
        } catch let refusal as RefreshRefusal {
            var error = APIError(.unauthorized, "AUTH_UNAUTHORIZED",
                                 refusal == .reused ? "The refresh token was already used; the session was revoked"
                                                    : "The refresh token is invalid or expired")
            if presented.fromCookie { error.headers.append(HTTPField(name: .setCookie, value: auth.cookie("", maxAge: 0))) }
            throw error
        }
    }

    @Sendable func logout(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await request.decodeJSON(RefreshBody.self, context: context)
        // A cookie is sent by the browser to any site's request: without the session's CSRF token, a
        // cross-site page could end the session (forced logout), so the cookie needs it as refresh does.
        if let presented = try auth.presentedRefreshToken(request, body: body, requireCSRF: true) {
            try await auth.sessions.end(presented.token, metadata: context.eventMetadata)
        }
        var response = try Response.json(encoding: Logout(success: true, message: "Logged out successfully"))
        response.headers.append(HTTPField(name: .setCookie, value: auth.cookie("", maxAge: 0)))
        return response
    }

    struct Logout: Encodable { var success: Bool; var message: String }

    @Sendable func current(_ request: Request, context: AppRequestContext) async throws -> Response {
        if case .token(let subject) = context.credential, subject.role == "project_admin" {
            return try .json(encoding: ["user": AdminView(email: subject.email)])
        }
        let subject = try context.requireUser()
        guard let id = UUID(uuidString: subject.id), let user = try await auth.directory.cachedUser(id: id) else {
            throw APIError(.unauthorized, "AUTH_UNAUTHORIZED", "The user of this token no longer exists")
        }
        return try .json(encoding: ["user": user.view])
    }

    struct ProfileBody: Decodable {
        var profile: [String: JSONValue]
    }

    @Sendable func updateProfile(_ request: Request, context: AppRequestContext) async throws -> Response {
        let subject = try context.requireUser()
        let body = try await request.decodeJSON(ProfileBody.self, context: context)
        guard body.profile.count <= 100, body.profile.keys.allSatisfy({ !$0.isEmpty && $0.count <= 100 }) else {
            throw APIError.invalidInput("profile must have at most 100 keys of 1 to 100 characters")
        }
        guard let id = UUID(uuidString: subject.id) else { throw APIError.invalidToken }
        let user = try await auth.accounts.updateProfile(id, patch: body.profile, metadata: context.eventMetadata)
        return try .json(encoding: ProfileView(id: user.view.id, profile: user.profile))
    }

    @Sendable func profile(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard let raw = context.parameters.get("id"), let id = UUID(uuidString: raw) else {
            throw APIError.invalidInput("id must be a UUID")
        }
        guard let user = try await auth.directory.user(id: id) else { throw APIError.notFound("User not found") }
        return try .json(encoding: ProfileView(id: user.view.id, profile: user.profile))
    }

    /// `{id, profile}`.
    struct ProfileView: Encodable {
        var id: String
        var profile: JSONValue?
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id)
            try c.encode(profile ?? .null, forKey: .profile)
        }
        enum CodingKeys: String, CodingKey { case id, profile }
    }
}

/// The admin as the API shows it.
struct AdminView: Encodable {
    var id = AdminAccount.subject
    var email: String
    var role = "project_admin"
    var emailVerified = true
}
