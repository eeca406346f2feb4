import Crypto
import Foundation

/// Small, authenticated and encrypted tokens (AES-256-GCM, base64url) that carry state through a
/// browser without storing it: the OAuth `state` (with our provider-side PKCE verifier inside, so
/// the browser never sees it) and the one-time `insforge_code`. Each kind has its own key, so one
/// kind can never be replayed as another.
public struct SealedToken: Sendable {
    private let key: SymmetricKey

    public init(secret: String, purpose: String) {
        let root = SymmetricKey(data: Data(secret.utf8))
        key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data("insforge sealed \(purpose)".utf8), using: root)))
    }

    /// Seals `value` with an expiry.
    public func seal<T: Codable>(_ value: T, lifetime: TimeInterval, now: Date = Date()) throws -> String {
        let envelope = Envelope(value: value, exp: Int64(now.addingTimeInterval(lifetime).timeIntervalSince1970))
        let box = try AES.GCM.seal(try JSONEncoder().encode(envelope), using: key)
        return Base64URL.encode(box.combined!)
    }

    /// The sealed value, when the token is ours, intact and unexpired.
    public func open<T: Codable>(_ token: String, as: T.Type, now: Date = Date()) -> T? {
        guard token.utf8.count < 8192, let data = Base64URL.decode(token),
              let box = try? AES.GCM.SealedBox(combined: data),
              let plain = try? AES.GCM.open(box, using: key),
              let envelope = try? JSONDecoder().decode(Envelope<T>.self, from: plain),
              Double(envelope.exp) > now.timeIntervalSince1970
        else { return nil }
        return envelope.value
    }

    struct Envelope<T: Codable>: Codable {
        var value: T
        var exp: Int64
    }
}

/// PKCE (RFC 7636) helpers.
public enum PKCE {
    /// A fresh verifier: 32 random bytes, base64url (43 characters).
    public static func verifier() -> String {
        Base64URL.encode(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
    }

    /// The S256 challenge of `verifier`.
    public static func challenge(_ verifier: String) -> String {
        Base64URL.encode(SHA256.hash(data: Data(verifier.utf8)))
    }

    /// Whether `text` is a syntactically valid verifier or challenge: 43...128 of `[A-Za-z0-9-._~]`.
    public static func isWellFormed(_ text: String) -> Bool {
        (43...128).contains(text.utf8.count) && text.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x2E || $0 == 0x5F || $0 == 0x7E
        }
    }
}
