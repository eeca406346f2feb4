import HTTPTypes
import EventStore
import Foundation
import Hummingbird

/// The e-mail flows: verification, password reset and OTP sign-in, by 6-digit code or by link.
/// Every send answers the same whether or not the address has an account.
struct EmailFlows {
    let auth: AuthService

    static let codeLifetime: TimeInterval = 15 * 60
    static let resetTokenLifetime: TimeInterval = 15 * 60

    /// The same answer for every send request: 202, whether or not the address has an account.
    static func sentResponse(_ what: String) throws -> Response {
        try .json(encoding: Sent(success: true, message: "If your email is registered, we have sent you \(what). Please check your inbox."),
                  status: .accepted)
    }

    struct Sent: Encodable { var success: Bool; var message: String }

    /// Sends a verification code or link (per the settings) to `user`.
    func sendVerification(to user: UserRecord, settings: AuthSettings, redirectTo: String?, context: AppRequestContext,
                          countAgainstLimits: Bool = true) async throws {
        if countAgainstLimits { try auth.limitSends(to: user.email, context) }
        let byLink = settings.verifyEmailMethod == "link"
        let issued = try await auth.codes.issue(for: user.id, email: user.email, purpose: .verifyEmail, code: !byLink, link: byLink,
                                                lifetime: Self.codeLifetime, metadata: context.eventMetadata)
        var link: String?
        if let token = issued.linkToken {
            var url = "\(auth.publicBaseURL)/api/auth/email/verify-link?token=\(token)"
            if let redirectTo = try checkedRedirect(redirectTo, settings) {
                url += "&redirectTo=\(OAuthClient.formEncode(redirectTo))"
            }
            link = url
        }
        try await deliver(.verifyEmail, to: user.email, code: issued.code, link: link)
    }

    /// Mail failures are logged, not reported: the answer must not tell whether an account exists.
    private func deliver(_ kind: AuthMailer.Kind, to email: String, code: String?, link: String?) async throws {
        do {
            try await auth.mailer.send(kind, to: email, code: code, link: link, minutes: Int(Self.codeLifetime / 60))
        } catch {
            auth.logger.error("sending an auth e-mail failed", metadata: ["error": "\(error)"])
        }
    }

    /// `url` when it may be redirected to (400 when it is not allowed); nil stays nil.
    func checkedRedirect(_ url: String?, _ settings: AuthSettings) throws -> String? {
        try auth.checkedRedirect(url, settings)
    }

    struct EmailBody: Decodable {
        var email: String
        var redirectTo: String?
    }

    struct VerifyBody: Decodable {
        var email: String?
        var otp: String
    }

    struct ExchangeBody: Decodable {
        var email: String
        var code: String
    }

    struct ResetBody: Decodable {
        var newPassword: String
        var otp: String
    }

    /// `POST /email/send-verification`.
    func sendVerification(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await request.decodeJSON(EmailBody.self, context: context)
        let email = try AccountCommands.normalizedEmail(body.email)
        let settings = try await auth.settings()
        _ = try checkedRedirect(body.redirectTo, settings)
        try auth.limitSends(to: email, context)
        if let user = try await auth.directory.user(email: email), !user.emailVerified {
            try await sendVerification(to: user, settings: settings, redirectTo: body.redirectTo, context: context,
                                             countAgainstLimits: false)
        }
        return try Self.sentResponse(settings.verifyEmailMethod == "link" ? "a verification link" : "a verification code")
    }

    /// `POST /email/verify {email, otp}`: verifies by code (or by a link token in `otp`) and signs in.
    func verify(_ request: Request, context: AppRequestContext) async throws -> Response {
        try auth.limitByIP(context, auth.limits.codeChecksPerIP)
        let clientType = try ClientType.from(query: request.queryString("client_type"))
        let body = try await request.decodeJSON(VerifyBody.self, context: context)
        let match: AuthCodes.Match
        if let raw = body.email {
            let email = try AccountCommands.normalizedEmail(raw)
            match = try await auth.codes.check(code: body.otp, email: email, purpose: .verifyEmail, metadata: context.eventMetadata)
        } else {
            match = try await auth.codes.check(link: body.otp, purpose: .verifyEmail)
        }
        let user = try await completeVerification(match, context: context)
        let grant = try await auth.sessions.start(subject: user.id.uuidString.lowercased(), email: user.email, role: "authenticated",
                                                  clientType: clientType, method: "verify_email", metadata: context.eventMetadata)
        return try auth.sessionResponse(user: user.view, grant: grant)
    }

    private func completeVerification(_ match: AuthCodes.Match, context: AppRequestContext) async throws -> UserRecord {
        try await auth.codes.consume(match, metadata: context.eventMetadata)
        guard let user = try await auth.directory.user(id: match.userId) else { throw AuthCodes.refusal }
        try await auth.accounts.markVerified(user, method: "email", metadata: context.eventMetadata)
        return try await auth.directory.user(id: match.userId) ?? user
    }

    /// `GET /email/verify-link?token=`: verifies, then redirects to `redirectTo` (or answers JSON).
    func verifyLink(_ request: Request, context: AppRequestContext) async throws -> Response {
        try auth.limitByIP(context, auth.limits.codeChecksPerIP)
        guard let token = request.queryString("token") else { throw APIError.invalidInput("token is required") }
        let settings = try await auth.settings()
        let redirectTo = request.queryString("redirectTo")
            .flatMap { auth.redirectAllowList(settings).allows($0) ? $0 : nil }
        do {
            let user = try await completeVerification(try await auth.codes.check(link: token, purpose: .verifyEmail), context: context)
            if let redirectTo { return .redirect(to: Self.appending(redirectTo, [("insforge_status", "success"), ("insforge_type", "verify_email")]), type: .found) }
            return try .json(encoding: Verified(success: true, message: "Email verified successfully", user: user.view))
        } catch {
            guard let redirectTo, let refusal = APIError.refusal(error) else { throw error }
            return .redirect(to: Self.appending(redirectTo, [("insforge_status", "error"), ("insforge_type", "verify_email"),
                                                             ("insforge_error", refusal.message)]), type: .found)
        }
    }

    struct Verified: Encodable { var success: Bool; var message: String; var user: UserView }

    /// `POST /email/send-reset-password`.
    func sendReset(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await request.decodeJSON(EmailBody.self, context: context)
        let email = try AccountCommands.normalizedEmail(body.email)
        let settings = try await auth.settings()
        let redirect = try checkedRedirect(body.redirectTo, settings)
        if settings.resetPasswordMethod == "link", redirect == nil {
            throw APIError.invalidInput("redirectTo is required when resetPasswordMethod is link")
        }
        try auth.limitSends(to: email, context)
        if let user = try await auth.directory.user(email: email) {
            if settings.resetPasswordMethod == "link" {
                let issued = try await auth.codes.issue(for: user.id, email: user.email, purpose: .resetToken, code: false, link: true,
                                                        lifetime: Self.resetTokenLifetime, metadata: context.eventMetadata)
                let link = Self.appending("\(auth.publicBaseURL)/api/auth/email/reset-password-link",
                                          [("token", issued.linkToken!), ("redirectTo", redirect!)])
                try await deliver(.resetPassword, to: user.email, code: nil, link: link)
            } else {
                let issued = try await auth.codes.issue(for: user.id, email: user.email, purpose: .resetPassword, code: true, link: false,
                                                        lifetime: Self.codeLifetime, metadata: context.eventMetadata)
                try await deliver(.resetPassword, to: user.email, code: issued.code, link: nil)
            }
        }
        return try Self.sentResponse(settings.resetPasswordMethod == "link" ? "a password reset link" : "a password reset code")
    }

    /// `GET /email/reset-password-link?token=&redirectTo=`: the link in a reset mail. Sends the browser to the
    /// app's reset page with the token (still unused: `reset-password` consumes it), or with an error.
    func resetLink(_ request: Request, context: AppRequestContext) async throws -> Response {
        try auth.limitByIP(context, auth.limits.codeChecksPerIP)
        let settings = try await auth.settings()
        guard let redirectTo = try checkedRedirect(request.queryString("redirectTo"), settings) else {
            throw APIError.invalidInput("redirectTo is required")
        }
        guard let token = request.queryString("token") else { throw APIError.invalidInput("token is required") }
        do {
            _ = try await auth.codes.check(link: token, purpose: .resetToken)
            return .redirect(to: Self.appending(redirectTo, [("token", token), ("insforge_status", "ready"),
                                                             ("insforge_type", "reset_password")]), type: .found)
        } catch {
            guard let refusal = APIError.refusal(error) else { throw error }
            return .redirect(to: Self.appending(redirectTo, [("insforge_status", "error"), ("insforge_type", "reset_password"),
                                                             ("insforge_error", refusal.message)]), type: .found)
        }
    }

    /// `POST /email/exchange-reset-password-token {email, code}` -> `{token, expiresAt}`.
    func exchangeReset(_ request: Request, context: AppRequestContext) async throws -> Response {
        try auth.limitByIP(context, auth.limits.codeChecksPerIP)
        let body = try await request.decodeJSON(ExchangeBody.self, context: context)
        let email = try AccountCommands.normalizedEmail(body.email)
        let match = try await auth.codes.check(code: body.code, email: email, purpose: .resetPassword, metadata: context.eventMetadata)
        try await auth.codes.consume(match, metadata: context.eventMetadata)
        let issued = try await auth.codes.issue(for: match.userId, email: match.email, purpose: .resetToken, code: false, link: true,
                                                lifetime: Self.resetTokenLifetime, metadata: context.eventMetadata)
        return try .json(encoding: ResetToken(token: issued.linkToken!, expiresAt: issued.expiresAt))
    }

    struct ResetToken: Encodable { var token: String; var expiresAt: Date }

    /// `POST /email/reset-password {newPassword, otp}`: `otp` is the reset token (from the exchange or the link).
    func resetPassword(_ request: Request, context: AppRequestContext) async throws -> Response {
        try auth.limitByIP(context, auth.limits.codeChecksPerIP)
        let body = try await request.decodeJSON(ResetBody.self, context: context)
        let settings = try await auth.settings()
        if let problem = settings.passwordPolicy.problem(with: body.newPassword) { throw APIError.invalidInput(problem) }
        let match = try await auth.codes.check(link: body.otp, purpose: .resetToken)
        try await auth.codes.consume(match, metadata: context.eventMetadata)
        try await auth.accounts.changePassword(match.userId, to: body.newPassword, settings: settings, reason: "reset",
                                               metadata: context.eventMetadata)
        if let user = try await auth.directory.user(id: match.userId) {
            // Whoever could read the reset mail owns the address.
            try await auth.accounts.markVerified(user, method: "password_reset", metadata: context.eventMetadata)
        }
        return try .json(encoding: Sent(success: true, message: "Password reset successfully. Please login with your new password."))
    }

    /// `POST /email/send-otp {email}`: a sign-in code.
    func sendOTP(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await request.decodeJSON(EmailBody.self, context: context)
        let email = try AccountCommands.normalizedEmail(body.email)
        try auth.limitSends(to: email, context)
        if let user = try await auth.directory.user(email: email) {
            let issued = try await auth.codes.issue(for: user.id, email: user.email, purpose: .signIn, code: true, link: false,
                                                    lifetime: Self.codeLifetime, metadata: context.eventMetadata)
            try await deliver(.signIn, to: user.email, code: issued.code, link: nil)
        }
        return try Self.sentResponse("a sign-in code")
    }

    /// Checks and consumes a sign-in OTP; a successful one also proves the address.
    func signInWithCode(email: String, otp: String, context: AppRequestContext) async throws -> UserRecord {
        try auth.limitByIP(context, auth.limits.codeChecksPerIP)
        let match: AuthCodes.Match
        do {
            match = try await auth.codes.check(code: otp, email: email, purpose: .signIn, metadata: context.eventMetadata)
            try await auth.codes.consume(match, metadata: context.eventMetadata)
        } catch {
            throw AccountCommands.invalidCredentials
        }
        guard let user = try await auth.directory.user(id: match.userId) else { throw AccountCommands.invalidCredentials }
        try await auth.accounts.markVerified(user, method: "otp", metadata: context.eventMetadata)
        return try await auth.directory.user(id: match.userId) ?? user
    }

    /// `url` with query items appended.
    static func appending(_ url: String, _ items: [(String, String)]) -> String {
        let query = items.map { "\(OAuthClient.formEncode($0.0))=\(OAuthClient.formEncode($0.1))" }.joined(separator: "&")
        let (base, fragment) = url.firstIndex(of: "#").map { (String(url[..<$0]), String(url[$0...])) } ?? (url, "")
        return base + (base.contains("?") ? "&" : "?") + query + fragment
    }
}

/// `/api/auth/email/...`.
struct EmailAuthController {
    let auth: AuthService

    static let emailBody = JSONSchema.object(["email": .email, "redirectTo": .text], required: ["email"])

    func register(_ routes: RouteTable) {
        let flows = EmailFlows(auth: auth)
        routes.add(.post, "/api/auth/email/send-verification", "Send an e-mail verification code or link", access: .public,
                   body: Self.emailBody) {
            try await flows.sendVerification($0, context: $1)
        }
        routes.add(.post, "/api/auth/email/verify", "Verify an e-mail address with its code, and sign in", access: .public,
                   body: .object(["email": .email, "otp": .string(pattern: "^[0-9]{6}$")], required: ["email", "otp"])) {
            try await flows.verify($0, context: $1)
        }
        routes.add(.get, "/api/auth/email/verify-link", "Verify an e-mail address from its link", access: .public) {
            try await flows.verifyLink($0, context: $1)
        }
        routes.add(.post, "/api/auth/email/send-reset-password", "Send a password-reset code or link", access: .public, body: Self.emailBody) {
            try await flows.sendReset($0, context: $1)
        }
        routes.add(.get, "/api/auth/email/reset-password-link", "Follow a password-reset link to the app", access: .public) {
            try await flows.resetLink($0, context: $1)
        }
        routes.add(.post, "/api/auth/email/exchange-reset-password-token", "Exchange a reset code for a reset token", access: .public,
                   body: .object(["email": .email, "code": .string(pattern: "^[0-9]{6}$")], required: ["email", "code"])) {
            try await flows.exchangeReset($0, context: $1)
        }
        routes.add(.post, "/api/auth/email/reset-password", "Set a new password with a reset token", access: .public,
                   body: .object(["newPassword": .string(minLength: 1, maxLength: 72), "otp": .text], required: ["newPassword", "otp"])) {
            try await flows.resetPassword($0, context: $1)
        }
        routes.add(.post, "/api/auth/email/send-otp", "Send a sign-in code", access: .public, body: Self.emailBody) {
            try await flows.sendOTP($0, context: $1)
        }
    }
}
