import EventStore
import Foundation
import Logging
import PostgresNIO

/// The OAuth 2.0 authorization-code flow with PKCE on both legs:
/// app -> us (`code_challenge` at the start, `code_verifier` at the exchange) and
/// us -> provider (our own verifier, sealed inside `state`, so the browser never holds it).
///
/// 1. `authorizeURL`: the provider's consent URL, with a sealed, 1-hour `state`.
/// 2. `complete` (the callback): code -> tokens -> user; find, link or create the account;
///    redirect to the app with a one-time, 5-minute `insforge_code`.
/// 3. `exchange`: `insforge_code` + `code_verifier` -> a session. Single use is enforced by the log
///    (`OAuthCodeExchanged` on `oauthcode-<nonce>` appended with expected version `noStream`).
public struct OAuthFlow: Sendable {
    let auth: AuthService
    let specs: [String: OAuthProviderSpec]
    let environmentCredentials: [String: OAuthCredentials]
    let client: OAuthClient
    let box: SecretBox
    let states: SealedToken
    let codes: SealedToken

    static let stateLifetime: TimeInterval = 3600
    static let codeLifetime: TimeInterval = 300

    public init(auth: AuthService, environment: [String: String], client: OAuthClient, box: SecretBox, secret: String) {
        self.auth = auth
        self.specs = OAuthProviderSpec.all(environment: environment)
        var credentials: [String: OAuthCredentials] = [:]
        for name in specs.keys {
            let prefix = name.uppercased()
            if let id = environment["\(prefix)_CLIENT_ID"], !id.isEmpty, let secret = environment["\(prefix)_CLIENT_SECRET"], !secret.isEmpty {
                credentials[name] = OAuthCredentials(clientId: id, clientSecret: secret, scopes: nil)
            }
        }
        self.environmentCredentials = credentials
        self.client = client
        self.box = box
        self.states = SealedToken(secret: secret, purpose: "oauth state")
        self.codes = SealedToken(secret: secret, purpose: "insforge code")
    }

    /// The providers we know, in a stable order.
    public static let providerNames = ["google", "github", "microsoft", "discord", "linkedin", "x", "apple", "facebook"]

    struct State: Codable {
        var p: String
        var r: String
        var c: String
        var v: String
    }

    struct Code: Codable {
        var u: UUID
        var p: String
        var c: String
        var n: UUID
    }

    /// A stored configuration row.
    struct Stored: Sendable {
        var clientId: String
        var secretCiphertext: String?
        var scopes: [String]?
        var redirectURI: String?
        var updatedAt: Date
    }

    func stored(_ provider: String) async throws -> Stored? {
        for try await (id, secret, scopes, redirect, updated) in try await auth.store.client.query("""
            SELECT client_id, secret_ciphertext, scopes, redirect_uri, updated_at FROM auth.oauth_configs WHERE provider = \(provider)
            """).decode((String, String?, [String]?, String?, Date).self) {
            return Stored(clientId: id, secretCiphertext: secret, scopes: scopes, redirectURI: redirect, updatedAt: updated)
        }
        return nil
    }

    /// The credentials to use: the admin's stored configuration, else the environment's.
    func credentials(_ provider: String) async throws -> (OAuthCredentials, redirectURI: String?)? {
        if let stored = try await stored(provider), let ciphertext = stored.secretCiphertext {
            let secret = try box.open(ciphertext)
            return (OAuthCredentials(clientId: stored.clientId, clientSecret: secret, scopes: stored.scopes), stored.redirectURI)
        }
        return environmentCredentials[provider].map { ($0, nil) }
    }

    /// Providers with credentials.
    func enabledProviders() async throws -> [String] {
        var out: [String] = []
        for name in Self.providerNames where try await credentials(name) != nil { out.append(name) }
        return out
    }

    func spec(_ provider: String) throws -> OAuthProviderSpec {
        guard let spec = specs[provider] else {
            throw DomainError.invalidInput("Unsupported OAuth provider \(provider); supported: \(Self.providerNames.joined(separator: ", "))")
        }
        return spec
    }

    func callbackURL(_ provider: String, configured: String?) -> String {
        configured ?? "\(auth.publicBaseURL)/api/auth/oauth/\(provider)/callback"
    }

    /// Step 1: the provider URL to send the browser to.
    func authorizeURL(provider: String, redirectURI: String, codeChallenge: String) async throws -> String {
        let spec = try spec(provider)
        guard let (credentials, configuredCallback) = try await credentials(provider) else {
            throw DomainError(.authOAuthNotConfigured, "\(provider) sign-in is not configured",
                           nextActions: "Set \(provider.uppercased())_CLIENT_ID and \(provider.uppercased())_CLIENT_SECRET, or POST /api/auth/oauth/configs")
        }
        let settings = try await auth.settings()
        let allowed = auth.redirectAllowList(settings)
        guard allowed.allows(redirectURI) else { throw allowed.refusal("redirect_uri", redirectURI) }
        let verifier = PKCE.verifier()
        let state = try states.seal(State(p: provider, r: redirectURI, c: codeChallenge, v: verifier), lifetime: Self.stateLifetime)
        var items: [(String, String)] = [
            ("client_id", credentials.clientId), ("redirect_uri", callbackURL(provider, configured: configuredCallback)),
            ("response_type", "code"), ("scope", (credentials.scopes ?? spec.scopes).joined(separator: " ")), ("state", state),
            ("code_challenge", PKCE.challenge(verifier)), ("code_challenge_method", "S256"),
        ]
        items.append(contentsOf: spec.extraAuthorizeParameters)
        return EmailFlows.appending(spec.authorizeURL, items)
    }

    /// What the callback decided: where to send the browser.
    enum Outcome {
        case redirect(String)
    }

    /// The app's redirect URI carried by a valid `state`, if the state is valid.
    func redirectTarget(state: String?) -> String? {
        state.flatMap { states.open($0, as: State.self) }?.r
    }

    /// Step 2: the provider called back. Returns the app URL with `insforge_code`, or with `error`.
    func complete(provider: String, code: String?, state rawState: String?, providerError: String?, appleUser: String?,
                  metadata: EventMetadata) async throws -> String {
        guard let rawState, let state = states.open(rawState, as: State.self), state.p == provider else {
            throw DomainError.invalidInput("The OAuth state is missing, invalid or expired")
        }
        func failure(_ code: String, _ message: String) -> String {
            EmailFlows.appending(state.r, [("error", code), ("error_description", message)])
        }
        if let providerError { return failure("access_denied", "The provider refused: \(providerError)") }
        guard let code, !code.isEmpty else { return failure("invalid_request", "The provider sent no code") }
        do {
            let spec = try spec(provider)
            guard let (credentials, configuredCallback) = try await credentials(provider) else {
                return failure("provider_not_configured", "\(provider) sign-in is not configured")
            }
            let apple = appleUser.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            let profile = try await client.profile(spec: spec, credentials: credentials, code: code,
                                                   redirectURI: callbackURL(provider, configured: configuredCallback),
                                                   verifier: state.v, appleUser: apple)
            let user = try await account(for: profile, provider: provider, metadata: metadata)
            let sealed = try codes.seal(Code(u: user.id, p: provider, c: state.c, n: UUID()), lifetime: Self.codeLifetime)
            return EmailFlows.appending(state.r, [("insforge_code", sealed)])
        } catch let error as OAuthFailure {
            auth.logger.warning("OAuth sign-in failed", metadata: ["provider": "\(provider)", "error": "\(error)"])
            return failure(error.code, error.message)
        } catch {
            guard let refusal = APIError.refusal(error) else { throw error }
            return failure(refusal.code.lowercased(), refusal.message)
        }
    }

    /// The account for a provider identity: already linked; else linked now to the account with the
    /// same address when both the provider and the account have verified it; else a new account
    /// (unless sign-up is disabled).
    func account(for profile: ProviderProfile, provider: String, metadata: EventMetadata) async throws -> UserRecord {
        if let user = try await auth.directory.user(provider: provider, providerUserId: profile.id) { return user }
        let email = profile.email.map { $0.trimmingCharacters(in: .whitespaces) }
        let identity = ProviderIdentity(provider: provider, providerUserId: profile.id, email: email)
        if let email, let existing = try await auth.directory.user(email: email) {
            guard profile.emailVerified else {
                throw OAuthFailure("email_not_verified",
                                   "An account with this e-mail exists, and \(provider) does not confirm the address is verified")
            }
            // The account must have proven the address too (a code or a link, or a provider that verified
            // it). Else whoever signed up with it, perhaps not its owner, would share the owner's sign-in
            // (pre-account takeover): the owner is told to prove the address first.
            guard try await auth.accounts.addressProven(existing.id) else {
                throw OAuthFailure("account_email_not_verified",
                                   "An account with this e-mail exists but has not verified it; verify the address (or reset the password) first, then sign in with \(provider)")
            }
            try await auth.accounts.append([try EventData(IdentityLinked(userId: existing.id, identity: identity), metadata: metadata)],
                                           to: existing.id, expected: .streamExists)
            return try await auth.directory.user(id: existing.id) ?? existing
        }
        guard !(try await auth.settings()).disableSignup else {
            throw OAuthFailure("signup_disabled", "Sign-up is disabled for this project")
        }
        var profileObject: [String: JSONValue] = [:]
        if let name = profile.name { profileObject["name"] = .string(name) }
        if let avatar = profile.avatarURL { profileObject["avatar_url"] = .string(avatar) }
        let id = UUID()
        // Some providers (X without the e-mail permission) give no address: the account gets a
        // placeholder that cannot receive mail and is never treated as verified.
        let address = email ?? "\(provider)-\(profile.id)@users.noreply.insforge.invalid"
        let event = UserSignedUp(userId: id, email: address, passwordHash: nil, emailVerified: email != nil && profile.emailVerified,
                                 providerType: provider, profile: profileObject.isEmpty ? nil : .object(profileObject),
                                 identity: identity)
        do {
            try await auth.accounts.create(event, metadata: metadata)
        } catch let error as DomainError where error.code == .authEmailExists {
            // Another sign-in with the same identity committed first.
            if let user = try await auth.directory.user(provider: provider, providerUserId: profile.id) { return user }
            throw error
        }
        guard let user = try await auth.directory.user(id: id) else { throw DomainError.notFound("User not found") }
        return user
    }

    /// Step 3: `insforge_code` + `code_verifier` -> the user (the code works once).
    func exchange(code: String, verifier: String, metadata: EventMetadata) async throws -> (user: UserRecord, provider: String) {
        guard let sealed = codes.open(code, as: Code.self) else {
            throw DomainError.invalidInput("Invalid or expired code")
        }
        guard PKCE.isWellFormed(verifier), AuthCodes.constantTimeEqual(PKCE.challenge(verifier), sealed.c) else {
            throw DomainError(.authPKCEFailed, "PKCE verification failed")
        }
        do {
            try await auth.store.append([try EventData(OAuthCodeExchanged(userId: sealed.u, provider: sealed.p), metadata: metadata)],
                                        to: "oauthcode-\(sealed.n.uuidString.lowercased())", expected: .noStream)
        } catch let error as EventStoreError where error.code == .wrongExpectedVersion {
            throw DomainError.invalidInput("Invalid or expired code")
        }
        guard let user = try await auth.directory.user(id: sealed.u) else { throw DomainError.notFound("User not found") }
        return (user, sealed.p)
    }
}
