import Crypto
import Foundation

/// Refresh tokens and their CSRF companions, derived from the server secret.
///
/// A token is `<session id>.<generation>.<MAC>`: the MAC proves we issued it, so a presented token
/// whose generation is older than its session's current one is certainly a reuse of a rotated
/// token (and ends the family), not a forgery. Tokens for one (session, generation) are always
/// the same, which makes two concurrent refreshes with one token agree instead of racing.
public struct RefreshTokens: Sendable {
    private let tokenKey: SymmetricKey
    private let csrfKey: SymmetricKey
    public let lifetime: TimeInterval

    public init(secret: String, lifetime: TimeInterval = 7 * 24 * 3600) {
        let root = SymmetricKey(data: Data(secret.utf8))
        self.tokenKey = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data("insforge refresh token".utf8), using: root)))
        self.csrfKey = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data("insforge csrf token".utf8), using: root)))
        self.lifetime = lifetime
    }

    /// The token of `session` at `generation`.
    public func token(session: UUID, generation: Int) -> String {
        let body = "\(session.uuidString.lowercased()).\(generation)"
        return body + "." + Base64URL.encode(HMAC<SHA256>.authenticationCode(for: Data(body.utf8), using: tokenKey))
    }

    /// The session and generation of a token we issued; nil for anything else (checked in constant time).
    public func parse(_ token: String) -> (session: UUID, generation: Int)? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let session = UUID(uuidString: String(parts[0])), let generation = Int(parts[1]),
              generation >= 0, let mac = Base64URL.decode(parts[2])
        else { return nil }
        let body = "\(parts[0]).\(parts[1])"
        guard HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Data(body.utf8), using: tokenKey) else { return nil }
        return (session, generation)
    }

    /// The CSRF token that goes with a cookie refresh token.
    public func csrf(for token: String) -> String {
        Base64URL.encode(HMAC<SHA256>.authenticationCode(for: Data(token.utf8), using: csrfKey))
    }

    /// Whether `csrf` belongs to `token` (constant time).
    public func csrfMatches(_ csrf: String, token: String) -> Bool {
        guard let mac = Base64URL.decode(csrf) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Data(token.utf8), using: csrfKey)
    }

    /// SHA-256 hex: what the log keeps of a token.
    public static func digest(_ token: String) -> String { SecretBox.fingerprint(token) }
}
