import Crypto
import Foundation

/// AES-256-GCM for secrets at rest (keys, provider secrets): the 32-byte key is SHA-256 of
/// `ENCRYPTION_KEY` (falling back to the JWT secret). Boxes are base64 of nonce|ciphertext|tag.
public struct SecretBox: Sendable {
    private let keyBytes: [UInt8]

    public init(passphrase: String) {
        self.keyBytes = Array(SHA256.hash(data: Data(passphrase.utf8)))
    }

    private var key: SymmetricKey { SymmetricKey(data: keyBytes) }

    /// Encrypts `plaintext` with a fresh random nonce.
    public func seal(_ plaintext: String) throws -> String {
        try AES.GCM.seal(Data(plaintext.utf8), using: key).combined!.base64EncodedString()
    }

    /// Decrypts a box; throws when it was sealed with another key or tampered with.
    public func open(_ box: String) throws -> String {
        guard let data = Data(base64Encoded: box) else { throw CryptoKitError.incorrectParameterSize }
        return String(decoding: try AES.GCM.open(AES.GCM.SealedBox(combined: data), using: key), as: UTF8.self)
    }

    /// SHA-256 hex of a key: how keys are looked up and referred to without storing them.
    public static func fingerprint(_ key: String) -> String {
        SHA256.hash(data: Data(key.utf8)).hexString
    }
}
