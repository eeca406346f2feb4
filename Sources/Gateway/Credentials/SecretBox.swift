import Crypto
import Foundation

/// AES-256-GCM for secrets at rest (keys, provider secrets, channel signing secrets). Each key is
/// SHA-256 of a passphrase and is known by an id (the first 8 hex digits of the key's own SHA-256), which
/// every box carries: `k1.<id>.<base64 of nonce|ciphertext|tag>`. The current key seals; previous
/// ones still open what they sealed, so `ENCRYPTION_KEY` can rotate (old keys in
/// `ENCRYPTION_KEYS_PREVIOUS`). Boxes from before key ids (bare base64) are tried with every key.
public struct SecretBox: Sendable {
    struct Key: Sendable {
        let id: String
        let bytes: [UInt8]

        init(passphrase: String) {
            bytes = Array(SHA256.hash(data: Data(passphrase.utf8)))
            id = String(SHA256.hash(data: Data(bytes)).hexString.prefix(8))
        }

        var symmetric: SymmetricKey { SymmetricKey(data: bytes) }
    }

    private let current: Key
    private let previous: [Key]

    /// `passphrase` seals and opens; `previous` passphrases only open.
    public init(passphrase: String, previous: [String] = []) {
        current = Key(passphrase: passphrase)
        self.previous = previous.filter { $0 != passphrase }.map(Key.init(passphrase:))
    }

    /// The id of the key that seals now.
    public var keyId: String { current.id }

    /// Encrypts `plaintext` with a fresh random nonce, under the current key.
    public func seal(_ plaintext: String) throws -> String {
        guard let combined = try AES.GCM.seal(Data(plaintext.utf8), using: current.symmetric).combined else {
            throw CryptoKitError.incorrectParameterSize
        }
        return "k1.\(current.id).\(combined.base64EncodedString())"
    }

    /// Decrypts a box with the key it names; throws when that key is unknown, or the box was tampered with.
    public func open(_ box: String) throws -> String {
        let parts = box.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false)
        if parts.count == 3, parts[0] == "k1" {
            guard let key = ([current] + previous).first(where: { $0.id == parts[1] }),
                  let data = Data(base64Encoded: String(parts[2])) else { throw CryptoKitError.incorrectParameterSize }
            return try Self.open(data, with: key)
        }
        guard let data = Data(base64Encoded: box) else { throw CryptoKitError.incorrectParameterSize }
        var failure: any Error = CryptoKitError.authenticationFailure
        for key in [current] + previous {
            do { return try Self.open(data, with: key) } catch { failure = error }
        }
        throw failure
    }

    private static func open(_ data: Data, with key: Key) throws -> String {
        String(decoding: try AES.GCM.open(AES.GCM.SealedBox(combined: data), using: key.symmetric), as: UTF8.self)
    }

    /// SHA-256 hex of a key: how keys are looked up and referred to without storing them.
    public static func fingerprint(_ key: String) -> String {
        SHA256.hash(data: Data(key.utf8)).hexString
    }
}
