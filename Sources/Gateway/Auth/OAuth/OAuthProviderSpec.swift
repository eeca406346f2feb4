import EventStore
import Foundation

/// Who the provider says signed in.
public struct ProviderProfile: Sendable, Equatable {
    public var id: String
    public var email: String?
    /// Whether the provider vouches for the address (only then is it linked to an existing account).
    public var emailVerified: Bool
    public var name: String?
    public var avatarURL: String?
}

/// One OAuth 2.0 provider: its endpoints (each overridable from the environment, so tests run the
/// whole flow against a local provider), scopes, and how to read its user.
public struct OAuthProviderSpec: Sendable {
    /// How the client authenticates at the token endpoint.
    public enum ClientAuthentication: Sendable { case body, basic }

    public var name: String
    public var authorizeURL: String
    public var tokenURL: String
    /// nil for Apple, whose user comes from the verified id_token.
    public var userinfoURL: String?
    public var jwksURL: String?
    /// GitHub's `/user/emails`, when the profile has no public address.
    public var emailsURL: String?
    public var scopes: [String]
    public var clientAuthentication: ClientAuthentication
    /// Extra authorize parameters (`response_mode=form_post` for Apple, `access_type` for Google ...).
    public var extraAuthorizeParameters: [(String, String)]
    /// Apple's id_token issuer (and the audience of its client secret).
    public var issuer: String?

    /// The eight providers with their public endpoints; `environment` may override any URL with
    /// `<P>_AUTHORIZE_URL`, `<P>_TOKEN_URL`, `<P>_USERINFO_URL`, `<P>_JWKS_URL`, `GITHUB_EMAILS_URL`, `APPLE_ISSUER`.
    public static func all(environment: [String: String]) -> [String: OAuthProviderSpec] {
        let defaults: [OAuthProviderSpec] = [
            .init(name: "google", authorizeURL: "https://accounts.google.com/o/oauth2/v2/auth",
                  tokenURL: "https://oauth2.googleapis.com/token", userinfoURL: "https://openidconnect.googleapis.com/v1/userinfo",
                  jwksURL: "https://www.googleapis.com/oauth2/v3/certs", emailsURL: nil, scopes: ["openid", "email", "profile"],
                  clientAuthentication: .body, extraAuthorizeParameters: [("access_type", "offline"), ("prompt", "consent")], issuer: nil),
            .init(name: "github", authorizeURL: "https://github.com/login/oauth/authorize",
                  tokenURL: "https://github.com/login/oauth/access_token", userinfoURL: "https://api.github.com/user",
                  jwksURL: nil, emailsURL: "https://api.github.com/user/emails", scopes: ["read:user", "user:email"],
                  clientAuthentication: .body, extraAuthorizeParameters: [], issuer: nil),
            .init(name: "microsoft", authorizeURL: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
                  tokenURL: "https://login.microsoftonline.com/common/oauth2/v2.0/token", userinfoURL: "https://graph.microsoft.com/v1.0/me",
                  jwksURL: "https://login.microsoftonline.com/common/discovery/v2.0/keys", emailsURL: nil,
                  scopes: ["openid", "email", "profile", "offline_access", "User.Read"],
                  clientAuthentication: .body, extraAuthorizeParameters: [], issuer: nil),
            .init(name: "discord", authorizeURL: "https://discord.com/oauth2/authorize",
                  tokenURL: "https://discord.com/api/oauth2/token", userinfoURL: "https://discord.com/api/users/@me",
                  jwksURL: nil, emailsURL: nil, scopes: ["identify", "email"],
                  clientAuthentication: .body, extraAuthorizeParameters: [], issuer: nil),
            .init(name: "linkedin", authorizeURL: "https://www.linkedin.com/oauth/v2/authorization",
                  tokenURL: "https://www.linkedin.com/oauth/v2/accessToken", userinfoURL: "https://api.linkedin.com/v2/userinfo",
                  jwksURL: "https://www.linkedin.com/oauth/openid/jwks", emailsURL: nil, scopes: ["openid", "profile", "email"],
                  clientAuthentication: .body, extraAuthorizeParameters: [], issuer: nil),
            .init(name: "x", authorizeURL: "https://x.com/i/oauth2/authorize",
                  tokenURL: "https://api.x.com/2/oauth2/token",
                  userinfoURL: "https://api.x.com/2/users/me?user.fields=profile_image_url,confirmed_email",
                  jwksURL: nil, emailsURL: nil, scopes: ["users.read", "tweet.read", "users.email", "offline.access"],
                  clientAuthentication: .basic, extraAuthorizeParameters: [], issuer: nil),
            .init(name: "apple", authorizeURL: "https://appleid.apple.com/auth/authorize",
                  tokenURL: "https://appleid.apple.com/auth/token", userinfoURL: nil,
                  jwksURL: "https://appleid.apple.com/auth/keys", emailsURL: nil, scopes: ["name", "email"],
                  clientAuthentication: .body, extraAuthorizeParameters: [("response_mode", "form_post")],
                  issuer: "https://appleid.apple.com"),
            .init(name: "facebook", authorizeURL: "https://www.facebook.com/v21.0/dialog/oauth",
                  tokenURL: "https://graph.facebook.com/v21.0/oauth/access_token",
                  userinfoURL: "https://graph.facebook.com/v21.0/me?fields=id,name,email,picture.type(large)",
                  jwksURL: nil, emailsURL: nil, scopes: ["email", "public_profile"],
                  clientAuthentication: .body, extraAuthorizeParameters: [], issuer: nil),
        ]
        var out: [String: OAuthProviderSpec] = [:]
        for var spec in defaults {
            let prefix = spec.name.uppercased()
            func override(_ suffix: String) -> String? {
                guard let v = environment["\(prefix)_\(suffix)"]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
                return v
            }
            spec.authorizeURL = override("AUTHORIZE_URL") ?? spec.authorizeURL
            spec.tokenURL = override("TOKEN_URL") ?? spec.tokenURL
            if let userinfo = override("USERINFO_URL") {
                // Keep the query the provider needs (fields to return) when only the base is overridden.
                let query = spec.userinfoURL.flatMap { URLComponents(string: $0)?.percentEncodedQuery }
                spec.userinfoURL = userinfo.contains("?") || query == nil ? userinfo : "\(userinfo)?\(query!)"
            }
            spec.jwksURL = override("JWKS_URL") ?? spec.jwksURL
            spec.emailsURL = override("EMAILS_URL") ?? spec.emailsURL
            spec.issuer = override("ISSUER") ?? spec.issuer
            out[spec.name] = spec
        }
        return out
    }

    /// Reads the provider's user JSON (and GitHub's e-mail list) into a profile.
    func profile(from user: [String: Any], emails: [[String: Any]]?) -> ProviderProfile? {
        func string(_ v: Any?) -> String? {
            switch v {
            case let s as String where !s.isEmpty: return s
            case let n as NSNumber: return n.stringValue
            default: return nil
            }
        }
        func bool(_ v: Any?) -> Bool {
            switch v {
            case let b as Bool: return b
            case let s as String: return s == "true"
            case let n as NSNumber: return n.boolValue
            default: return false
            }
        }
        switch name {
        case "google", "linkedin":
            guard let id = string(user["sub"]) else { return nil }
            return ProviderProfile(id: id, email: string(user["email"]), emailVerified: bool(user["email_verified"]),
                                   name: string(user["name"]), avatarURL: string(user["picture"]))
        case "github":
            guard let id = string(user["id"]) else { return nil }
            let primary = emails?.first { bool($0["primary"]) && bool($0["verified"]) }
                ?? emails?.first { bool($0["verified"]) }
            let email = string(primary?["email"]) ?? string(user["email"])
            let verified = primary != nil
            return ProviderProfile(id: id, email: email, emailVerified: verified,
                                   name: string(user["name"]) ?? string(user["login"]), avatarURL: string(user["avatar_url"]))
        case "microsoft":
            guard let id = string(user["id"]) else { return nil }
            // Graph does not say whether `mail` was verified: such addresses are never linked to existing accounts.
            return ProviderProfile(id: id, email: string(user["mail"]) ?? string(user["userPrincipalName"]), emailVerified: false,
                                   name: string(user["displayName"]), avatarURL: nil)
        case "discord":
            guard let id = string(user["id"]) else { return nil }
            let avatar = string(user["avatar"]).map { "https://cdn.discordapp.com/avatars/\(id)/\($0).png" }
            return ProviderProfile(id: id, email: string(user["email"]), emailVerified: bool(user["verified"]),
                                   name: string(user["global_name"]) ?? string(user["username"]), avatarURL: avatar)
        case "x":
            guard let data = user["data"] as? [String: Any], let id = string(data["id"]) else { return nil }
            let email = string(data["confirmed_email"])
            return ProviderProfile(id: id, email: email, emailVerified: email != nil,
                                   name: string(data["name"]) ?? string(data["username"]), avatarURL: string(data["profile_image_url"]))
        case "facebook":
            guard let id = string(user["id"]) else { return nil }
            let picture = ((user["picture"] as? [String: Any])?["data"] as? [String: Any])?["url"]
            // Facebook returns only confirmed addresses.
            let email = string(user["email"])
            return ProviderProfile(id: id, email: email, emailVerified: email != nil, name: string(user["name"]),
                                   avatarURL: string(picture))
        case "apple":
            guard let id = string(user["sub"]) else { return nil }
            return ProviderProfile(id: id, email: string(user["email"]), emailVerified: bool(user["email_verified"]),
                                   name: string(user["name"]), avatarURL: nil)
        default:
            return nil
        }
    }
}
