import Crypto
import Foundation
import JWTKit
import Synchronization

/// The claims of our access tokens: `{sub, email, role, iat, exp}` (as InsForge's), HS256, 15 minutes.
public struct AccessClaims: JWTPayload, Equatable {
    public var sub: SubjectClaim
    public var email: String
    public var role: String
    public var iat: IssuedAtClaim
    public var exp: ExpirationClaim

    public func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
    }
}

/// Issues and checks HS256 access tokens with `JWT_SECRET`.
///
/// Verification is strict before any signature check: three base64url parts, a header that names
/// `HS256` (so `none`, RS/HS confusion and foreign algorithms are refused outright), a known role,
/// and an issue time not in the future.
public struct AccessTokens: Sendable {
    /// Roles a token may carry.
    public static let roles: Set<String> = ["anon", "authenticated", "project_admin"]

    let keys: JWTKeyCollection
    public let lifetime: TimeInterval
    /// Tokens that passed full verification, so a client's many requests with one token cost a
    /// dictionary lookup (plus the expiry check) instead of a signature check and a JSON decode.
    let verified = VerifiedTokens()

    public init(secret: String, lifetime: TimeInterval = 15 * 60) async {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(key: SymmetricKey(data: Data(secret.utf8))), digestAlgorithm: .sha256)
        self.keys = keys
        self.lifetime = lifetime
    }

    /// A signed token for `subject` (a user id, or the admin's id) with `role`.
    public func issue(subject: String, email: String, role: String, now: Date = Date()) async throws -> String {
        let now = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))  // NumericDate: whole seconds
        let claims = AccessClaims(sub: .init(value: subject), email: email, role: role,
                                  iat: .init(value: now), exp: .init(value: now.addingTimeInterval(lifetime)))
        return try await keys.sign(claims)
    }

    /// The claims of a valid, unexpired token; nil for anything else.
    public func verify(_ token: String) async -> AccessClaims? {
        if let claims = verified.get(token) {
            if claims.exp.value > Date() { return claims }
            verified.remove(token)
            return nil
        }
        guard Self.headerIsHS256(token) else { return nil }
        guard let claims = try? await keys.verify(token, as: AccessClaims.self) else { return nil }
        guard Self.roles.contains(claims.role), claims.iat.value.timeIntervalSinceNow < 60 else { return nil }
        verified.put(token, claims)
        return claims
    }

    /// True when `token` has three parts and its header is a JSON object with `alg` exactly `HS256`.
    static func headerIsHS256(_ token: String) -> Bool {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[2].isEmpty, let header = Base64URL.decode(parts[0]),
              let object = try? JSONSerialization.jsonObject(with: header) as? [String: Any],
              object["alg"] as? String == "HS256"
        else { return false }
        if let typ = object["typ"] { return (typ as? String)?.uppercased() == "JWT" }
        return true
    }
}

/// A bounded map of verified tokens to their claims (starts over when full).
final class VerifiedTokens: Sendable {
    private let entries = Mutex<[String: AccessClaims]>([:])
    static let capacity = 100_000

    func get(_ token: String) -> AccessClaims? { entries.withLock { $0[token] } }

    func put(_ token: String, _ claims: AccessClaims) {
        entries.withLock {
            if $0.count >= Self.capacity { $0.removeAll(keepingCapacity: true) }
            $0[token] = claims
        }
    }

    func remove(_ token: String) { _ = entries.withLock { $0.removeValue(forKey: token) } }
}

/// base64url without padding (RFC 4648 section 5), as JWTs and PKCE use it.
public enum Base64URL {
    /// Encodes bytes.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Decodes text; nil when it is not base64url.
    public static func decode(_ text: some StringProtocol) -> Data? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s)
    }
}
