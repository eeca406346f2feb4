import AsyncHTTPClient
import Crypto
import Foundation
import JWTKit
import NIOCore
import NIOHTTP1

/// A provider's client credentials (from the environment or the admin's stored configuration).
public struct OAuthCredentials: Sendable, Equatable {
    public var clientId: String
    /// For Apple: the JSON `{teamId, keyId, privateKey}` from which each client secret is signed.
    public var clientSecret: String
    public var scopes: [String]?
}

/// Why talking to a provider failed; reported to the app as `?error=` on its redirect.
public struct OAuthFailure: Error, Sendable, CustomStringConvertible {
    public var code: String
    public var message: String
    public var description: String { "\(code): \(message)" }
    init(_ code: String, _ message: String) { self.code = code; self.message = message }
}

/// The outgoing half of the authorization-code flow: code for tokens, tokens for the user.
public struct OAuthClient: Sendable {
    let http: HTTPClient
    let timeout: TimeAmount

    public init(http: HTTPClient = .shared, timeout: TimeAmount = .seconds(15)) {
        self.http = http
        self.timeout = timeout
    }

    /// Exchanges `code` (with our PKCE verifier) and reads the user.
    func profile(spec: OAuthProviderSpec, credentials: OAuthCredentials, code: String, redirectURI: String,
                 verifier: String, appleUser: [String: Any]?) async throws -> ProviderProfile {
        let secret = spec.name == "apple"
            ? try await AppleClientSecret.sign(credentials.clientSecret, clientId: credentials.clientId,
                                               audience: spec.issuer ?? "https://appleid.apple.com")
            : credentials.clientSecret
        var form: [(String, String)] = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI),
                                        ("code_verifier", verifier)]
        var request = HTTPClientRequest(url: spec.tokenURL)
        request.method = .POST
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        switch spec.clientAuthentication {
        case .basic:
            let basic = Data("\(Self.formEncode(credentials.clientId)):\(Self.formEncode(secret))".utf8).base64EncodedString()
            request.headers.add(name: "Authorization", value: "Basic \(basic)")
            form.append(("client_id", credentials.clientId))
        case .body:
            form.append(contentsOf: [("client_id", credentials.clientId), ("client_secret", secret)])
        }
        request.body = .bytes(ByteBuffer(string: form.map { "\(Self.formEncode($0.0))=\(Self.formEncode($0.1))" }.joined(separator: "&")))
        let tokens = try await json(request, what: "token")
        guard let tokenObject = tokens as? [String: Any] else { throw OAuthFailure("token_exchange_failed", "The provider's token answer is not JSON") }
        if spec.name == "apple" {
            guard let idToken = tokenObject["id_token"] as? String, let jwks = spec.jwksURL else {
                throw OAuthFailure("token_exchange_failed", "Apple sent no id_token")
            }
            var claims = try await IDTokenVerifier(http: http, timeout: timeout)
                .verify(idToken, jwksURL: jwks, issuer: spec.issuer ?? "https://appleid.apple.com", audience: credentials.clientId)
            if claims["name"] == nil, let name = appleUser?["name"] as? [String: Any] {
                let full = [name["firstName"] as? String, name["lastName"] as? String].compactMap { $0 }.joined(separator: " ")
                if !full.isEmpty { claims["name"] = full }
            }
            guard let profile = spec.profile(from: claims, emails: nil) else {
                throw OAuthFailure("invalid_profile", "Apple's id_token has no subject")
            }
            return profile
        }
        guard let accessToken = tokenObject["access_token"] as? String, let userinfo = spec.userinfoURL else {
            throw OAuthFailure("token_exchange_failed", "The provider sent no access token")
        }
        let user = try await json(bearer(userinfo, accessToken), what: "user")
        var emails: [[String: Any]]?
        if spec.name == "github", let emailsURL = spec.emailsURL {
            emails = (try? await json(bearer(emailsURL, accessToken), what: "emails")) as? [[String: Any]]
        }
        guard let object = user as? [String: Any], let profile = spec.profile(from: object, emails: emails) else {
            throw OAuthFailure("invalid_profile", "The provider's user answer has no id")
        }
        return profile
    }

    private func bearer(_ url: String, _ token: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "insforge-swift")
        return request
    }

    private func json(_ request: HTTPClientRequest, what: String) async throws -> Any {
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await http.execute(request, timeout: timeout)
            body = try await response.body.collect(upTo: 1 << 20)
        } catch {
            throw OAuthFailure("provider_unreachable", "The provider could not be reached for the \(what)")
        }
        guard (200..<300).contains(Int(response.status.code)) else {
            let detail = (try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any])?["error"] as? String
            throw OAuthFailure(what == "token" ? "token_exchange_failed" : "userinfo_failed",
                               "The provider refused the \(what) request (\(response.status.code)\(detail.map { ", \($0)" } ?? ""))")
        }
        guard let value = try? JSONSerialization.jsonObject(with: Data(buffer: body)) else {
            throw OAuthFailure("invalid_response", "The provider's \(what) answer is not JSON")
        }
        return value
    }

    /// `application/x-www-form-urlencoded` encoding of one value.
    static func formEncode(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }
}

/// Apple's client secret: an ES256 JWT signed with the team's key, made fresh for each exchange.
enum AppleClientSecret {
    struct Configuration: Decodable {
        var teamId: String
        var keyId: String
        var privateKey: String
    }

    struct Claims: JWTPayload {
        var iss: IssuerClaim
        var iat: IssuedAtClaim
        var exp: ExpirationClaim
        var aud: AudienceClaim
        var sub: SubjectClaim
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    /// Whether `secret` is usable JSON with a P-256 private key (checked when it is configured).
    static func problem(with secret: String) -> String? {
        guard let config = try? JSONDecoder().decode(Configuration.self, from: Data(secret.utf8)) else {
            return "The Apple client secret must be JSON {teamId, keyId, privateKey}"
        }
        guard (try? ES256PrivateKey(pem: config.privateKey)) != nil else { return "privateKey is not a PEM P-256 private key" }
        return nil
    }

    static func sign(_ secret: String, clientId: String, audience: String, now: Date = Date()) async throws -> String {
        guard let config = try? JSONDecoder().decode(Configuration.self, from: Data(secret.utf8)),
              let key = try? ES256PrivateKey(pem: config.privateKey)
        else { throw OAuthFailure("provider_misconfigured", "The Apple client secret is not {teamId, keyId, privateKey} with a P-256 key") }
        let keys = JWTKeyCollection()
        await keys.add(ecdsa: key, kid: JWKIdentifier(string: config.keyId))
        let claims = Claims(iss: .init(value: config.teamId), iat: .init(value: now), exp: .init(value: now.addingTimeInterval(300)),
                            aud: .init(value: [audience]), sub: .init(value: clientId))
        return try await keys.sign(claims, kid: JWKIdentifier(string: config.keyId))
    }
}

/// Verifies a provider's RS256 id_token against its JWKS: signature, issuer, audience, expiry.
struct IDTokenVerifier {
    let http: HTTPClient
    let timeout: TimeAmount

    struct Claims: JWTPayload {
        var iss: IssuerClaim
        var aud: AudienceClaim
        var sub: SubjectClaim
        var exp: ExpirationClaim
        func verify(using algorithm: some JWTAlgorithm) async throws { try exp.verifyNotExpired() }
    }

    /// The token's claims as JSON, once verified.
    func verify(_ token: String, jwksURL: String, issuer: String, audience: String) async throws -> [String: Any] {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerData = Base64URL.decode(parts[0]),
              let header = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any],
              header["alg"] as? String == "RS256", let payloadData = Base64URL.decode(parts[1]),
              let payload = try? JSONSerialization.jsonObject(with: payloadData) as? [String: Any]
        else { throw OAuthFailure("invalid_id_token", "The id_token is not an RS256 JWT") }
        var request = HTTPClientRequest(url: jwksURL)
        request.headers.add(name: "Accept", value: "application/json")
        let jwks: String
        do {
            let response = try await http.execute(request, timeout: timeout)
            guard response.status == .ok else { throw OAuthFailure("provider_unreachable", "JWKS answered \(response.status.code)") }
            jwks = String(buffer: try await response.body.collect(upTo: 1 << 20))
        } catch let failure as OAuthFailure {
            throw failure
        } catch {
            throw OAuthFailure("provider_unreachable", "The provider's keys could not be fetched")
        }
        let keys = JWTKeyCollection()
        do {
            try await keys.add(jwksJSON: jwks)
            let claims = try await keys.verify(token, as: Claims.self)
            guard claims.iss.value == issuer else { throw OAuthFailure("invalid_id_token", "The id_token's issuer is wrong") }
            guard claims.aud.value.contains(audience) else { throw OAuthFailure("invalid_id_token", "The id_token's audience is wrong") }
        } catch let failure as OAuthFailure {
            throw failure
        } catch {
            throw OAuthFailure("invalid_id_token", "The id_token's signature or expiry is invalid")
        }
        return payload
    }
}
