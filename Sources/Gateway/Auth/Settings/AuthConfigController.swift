import HTTPTypes
import EventStore
import Foundation
import Hummingbird

/// `GET /api/auth/public-config` (anyone) and `GET|PUT /api/auth/config` (admin).
struct AuthConfigController {
    let auth: AuthService
    let oauth: OAuthFlow

    func register(_ routes: RouteTable) {
        routes.add(.get, "/api/auth/public-config", "What sign-in screens need: enabled providers and password rules",
                   access: .public, publicConfig)
        routes.add(.get, "/api/auth/config", "The auth settings", access: .admin) { _, context in
            return try .json(encoding: try await auth.settings())
        }
        routes.add(.put, "/api/auth/config", "Change the auth settings (fields not sent keep their value)", access: .admin,
                   body: .object(["requireEmailVerification": .boolean, "passwordMinLength": .integer(minimum: 4, maximum: 128),
                                  "requireNumber": .boolean, "requireLowercase": .boolean, "requireUppercase": .boolean,
                                  "requireSpecialChar": .boolean, "verifyEmailMethod": .string(oneOf: ["code", "link"]),
                                  "resetPasswordMethod": .string(oneOf: ["code", "link"]), "signInRedirectTo": .text,
                                  "disableSignup": .boolean, "allowedRedirectUrls": .array(.string(pattern: "^[a-z][a-z0-9+.-]*://"), maxItems: 100)]),
                   update)
    }

    @Sendable func publicConfig(_ request: Request, context: AppRequestContext) async throws -> Response {
        let settings = try await auth.settings()
        let providers = try await oauth.enabledProviders()
        return try .json(encoding: PublicConfig(oAuthProviders: providers, settings: settings))
    }

    struct PublicConfig: Encodable {
        var oAuthProviders: [String]
        var settings: AuthSettings
        /// The settings a sign-in screen needs; the redirect allow-list stays private.
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: AuthSettings.CodingKeys.self)
            try c.encode(settings.requireEmailVerification, forKey: .requireEmailVerification)
            try c.encode(settings.passwordMinLength, forKey: .passwordMinLength)
            try c.encode(settings.requireNumber, forKey: .requireNumber)
            try c.encode(settings.requireLowercase, forKey: .requireLowercase)
            try c.encode(settings.requireUppercase, forKey: .requireUppercase)
            try c.encode(settings.requireSpecialChar, forKey: .requireSpecialChar)
            try c.encode(settings.verifyEmailMethod, forKey: .verifyEmailMethod)
            try c.encode(settings.resetPasswordMethod, forKey: .resetPasswordMethod)
            try c.encode(settings.disableSignup, forKey: .disableSignup)
            var p = encoder.container(keyedBy: Keys.self)
            try p.encode(oAuthProviders, forKey: .oAuthProviders)
            try p.encode([String](), forKey: .customOAuthProviders)
        }
        enum Keys: String, CodingKey { case oAuthProviders, customOAuthProviders }
    }

    @Sendable func update(_ request: Request, context: AppRequestContext) async throws -> Response {
        let buffer = try await request.body.collect(upTo: context.maxUploadSize)
        guard case .object(let patch) = try JSONCoding.decoder.decode(JSONValue.self, from: Data(buffer: buffer)) else {
            throw APIError.invalidInput("body must be a JSON object")
        }
        let settings = try await AuthSettingsCommands(store: auth.store)
            .change(try await auth.settings(), patch: patch, metadata: context.eventMetadata)
        return try .json(encoding: settings)
    }
}
