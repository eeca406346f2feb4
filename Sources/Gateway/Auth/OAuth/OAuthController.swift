import HTTPTypes
import EventStore
import Foundation
import Hummingbird

/// `/api/auth/oauth/...`: start, callback (GET, or Apple's form POST), exchange, and the admin's provider configuration.
struct OAuthController {
    let auth: AuthService
    let flow: OAuthFlow

    static let configBody = JSONSchema.object(["provider": .string(oneOf: ["google", "github", "microsoft", "discord", "linkedin", "x", "apple",
                                                                            "facebook"]),
                                               "clientId": .string(minLength: 1), "clientSecret": .string(minLength: 1),
                                               "scopes": .array(.string(pattern: "^[^ ]+$"), maxItems: 50), "redirectUri": .string(format: "uri")])

    func register(_ routes: RouteTable) {
        routes.add(.get, "/api/auth/oauth/configs", "Every provider's configuration (secrets never shown)", access: .admin, listConfigs)
        routes.add(.post, "/api/auth/oauth/configs", "Configure a provider {provider, clientId, clientSecret, scopes?, redirectUri?}",
                   access: .admin, body: Self.configBody, createConfig)
        routes.add(.get, "/api/auth/oauth/:provider/config", "One provider's configuration", access: .admin, getConfig)
        routes.add(.put, "/api/auth/oauth/:provider/config", "Change a provider's configuration", access: .admin, body: Self.configBody, updateConfig)
        routes.add(.delete, "/api/auth/oauth/:provider/config", "Remove a provider's stored configuration", access: .admin, deleteConfig)
        routes.add(.post, "/api/auth/oauth/exchange", "Exchange insforge_code + code_verifier for a session", access: .public,
                   body: .object(["code": .text, "code_verifier": .string(pattern: "^[A-Za-z0-9._~-]{43,128}$")], required: ["code", "code_verifier"]),
                   exchange)
        routes.add(.get, "/api/auth/oauth/:provider", "Start OAuth sign-in: {authUrl}", access: .public, start)
        routes.add(.get, "/api/auth/oauth/:provider/callback", "The provider's redirect back", access: .public, callback)
        routes.add(.post, "/api/auth/oauth/:provider/callback", "Apple's form_post redirect back", access: .public, callback)
    }

    func provider(_ context: AppRequestContext) throws -> String {
        let name = (context.parameters.get("provider") ?? "").lowercased()
        _ = try flow.spec(name)
        return name
    }

    @Sendable func start(_ request: Request, context: AppRequestContext) async throws -> Response {
        try auth.limitByIP(context, auth.limits.signInPerIP)
        let provider = try provider(context)
        guard let redirect = request.queryString("redirect_uri") ?? request.queryString("redirectUri") else {
            throw APIError.invalidInput("redirect_uri is required")
        }
        guard let challenge = request.queryString("code_challenge") else {
            throw APIError.invalidInput("code_challenge is required (PKCE, S256)")
        }
        guard PKCE.isWellFormed(challenge) else { throw APIError.invalidInput("code_challenge must be 43 to 128 base64url characters") }
        if let method = request.queryString("code_challenge_method"), method != "S256" {
            throw APIError.invalidInput("code_challenge_method must be S256")
        }
        let url = try await flow.authorizeURL(provider: provider, redirectURI: redirect, codeChallenge: challenge)
        return try .json(encoding: ["authUrl": url])
    }

    struct CallbackForm: Decodable {
        var code: String?
        var state: String?
        var error: String?
        var user: String?
    }

    @Sendable func callback(_ request: Request, context: AppRequestContext) async throws -> Response {
        let provider = try provider(context)
        var fields = CallbackForm(code: request.queryString("code"), state: request.queryString("state"),
                                  error: request.queryString("error"), user: nil)
        if request.method == .post {
            let buffer = try await request.body.collect(upTo: 64 * 1024)
            let form = Request.formFields(String(buffer: buffer))
            fields.code = form["code"] ?? fields.code
            fields.state = form["state"] ?? fields.state
            fields.error = form["error"] ?? fields.error
            fields.user = form["user"]
        }
        let target = try await flow.complete(provider: provider, code: fields.code, state: fields.state, providerError: fields.error,
                                             appleUser: fields.user, metadata: context.eventMetadata)
        return .redirect(to: target, type: .found)
    }


    struct ExchangeBody: Decodable {
        var code: String
        var code_verifier: String?
        var codeVerifier: String?
    }

    @Sendable func exchange(_ request: Request, context: AppRequestContext) async throws -> Response {
        try auth.limitByIP(context, auth.limits.signInPerIP)
        let clientType = try ClientType.from(query: request.queryString("client_type"))
        let body = try await request.decodeJSON(ExchangeBody.self, context: context)
        guard let verifier = body.code_verifier ?? body.codeVerifier else { throw APIError.invalidInput("code_verifier is required") }
        let (user, provider) = try await flow.exchange(code: body.code, verifier: verifier, metadata: context.eventMetadata)
        let grant = try await auth.sessions.start(subject: user.id.uuidString.lowercased(), email: user.email, role: "authenticated",
                                                  clientType: clientType, method: "oauth:\(provider)", metadata: context.eventMetadata)
        return try auth.sessionResponse(user: user.view, grant: grant)
    }

    // MARK: admin configuration

    struct ConfigView: Encodable {
        var provider: String
        var clientId: String?
        var hasClientSecret: Bool
        var scopes: [String]?
        var redirectUri: String?
        /// `database` (set through the API), `environment`, or `none`.
        var source: String
        var updatedAt: Date?
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(provider, forKey: .provider)
            try c.encode(clientId, forKey: .clientId)
            try c.encode(hasClientSecret, forKey: .hasClientSecret)
            try c.encode(scopes, forKey: .scopes)
            try c.encode(redirectUri, forKey: .redirectUri)
            try c.encode(source, forKey: .source)
            try c.encode(updatedAt, forKey: .updatedAt)
        }
        enum CodingKeys: String, CodingKey { case provider, clientId, hasClientSecret, scopes, redirectUri, source, updatedAt }
    }

    func view(_ provider: String) async throws -> ConfigView {
        if let stored = try await flow.stored(provider) {
            return ConfigView(provider: provider, clientId: stored.clientId, hasClientSecret: stored.secretCiphertext != nil,
                              scopes: stored.scopes, redirectUri: stored.redirectURI, source: "database", updatedAt: stored.updatedAt)
        }
        if let env = flow.environmentCredentials[provider] {
            return ConfigView(provider: provider, clientId: env.clientId, hasClientSecret: true, scopes: nil, redirectUri: nil,
                              source: "environment", updatedAt: nil)
        }
        return ConfigView(provider: provider, clientId: nil, hasClientSecret: false, scopes: nil, redirectUri: nil, source: "none", updatedAt: nil)
    }

    @Sendable func listConfigs(_ request: Request, context: AppRequestContext) async throws -> Response {
        var views: [ConfigView] = []
        for name in OAuthFlow.providerNames { views.append(try await view(name)) }
        return try .json(encoding: ["data": views])
    }

    @Sendable func getConfig(_ request: Request, context: AppRequestContext) async throws -> Response {
        return try .json(encoding: try await view(try provider(context)))
    }

    struct ConfigBody: Decodable {
        var provider: String?
        var clientId: String?
        var clientSecret: String?
        var scopes: [String]?
        var redirectUri: String?
    }

    @Sendable func createConfig(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await request.decodeJSON(ConfigBody.self, context: context)
        guard let provider = body.provider?.lowercased() else { throw APIError.invalidInput("provider is required") }
        _ = try flow.spec(provider)
        return try await save(provider, body, existing: nil, context: context, status: .created)
    }

    @Sendable func updateConfig(_ request: Request, context: AppRequestContext) async throws -> Response {
        let provider = try provider(context)
        let body = try await request.decodeJSON(ConfigBody.self, context: context)
        return try await save(provider, body, existing: try await flow.stored(provider), context: context, status: .ok)
    }

    private func save(_ provider: String, _ body: ConfigBody, existing: OAuthFlow.Stored?, context: AppRequestContext,
                      status: HTTPResponse.Status) async throws -> Response {
        guard let clientId = body.clientId ?? existing?.clientId, !clientId.isEmpty, clientId.count <= 512 else {
            throw APIError.invalidInput("clientId is required")
        }
        var ciphertext = existing?.secretCiphertext
        if let secret = body.clientSecret {
            guard !secret.isEmpty, secret.utf8.count <= 8192 else { throw APIError.invalidInput("clientSecret must be 1 to 8192 bytes") }
            if provider == "apple", let problem = AppleClientSecret.problem(with: secret) { throw APIError.invalidInput(problem) }
            ciphertext = try flow.box.seal(secret)
        }
        guard ciphertext != nil else { throw APIError.invalidInput("clientSecret is required") }
        if let scopes = body.scopes, scopes.count > 50 || scopes.contains(where: { $0.isEmpty || $0.contains(" ") }) {
            throw APIError.invalidInput("scopes must be up to 50 non-empty words")
        }
        if let redirect = body.redirectUri, RedirectAllowList.origin(of: redirect).map({ $0.hasPrefix("http://") || $0.hasPrefix("https://") }) != true
            || body.redirectUri?.contains(where: \.isNewline) == true {
            throw APIError.invalidInput("redirectUri must be an absolute http(s) URL")
        }
        let event = OAuthProviderConfigured(provider: provider, clientId: clientId, secretCiphertext: ciphertext,
                                            scopes: body.scopes ?? existing?.scopes, redirectUri: body.redirectUri ?? existing?.redirectURI)
        try await AuthSettingsCommands(store: auth.store).configure(event, metadata: context.eventMetadata)
        return try .json(encoding: try await view(provider), status: status)
    }

    @Sendable func deleteConfig(_ request: Request, context: AppRequestContext) async throws -> Response {
        let provider = try provider(context)
        guard try await flow.stored(provider) != nil else { throw APIError.notFound("\(provider) has no stored configuration") }
        try await AuthSettingsCommands(store: auth.store).remove(provider: provider, metadata: context.eventMetadata)
        return try .json(encoding: ["success": true])
    }
}
