import _CryptoExtras
import Crypto
import Foundation

/// CloudFront signed URLs with a canned policy: the policy `{Resource, DateLessThan}` is signed
/// with the key pair's RSA key (PKCS #1 v1.5, SHA-1, as CloudFront requires), and the URL carries
/// `Expires`, `Signature` and `Key-Pair-Id` in CloudFront's URL-safe base64.
struct CloudFrontSigner: Sendable {
    let settings: ServerConfiguration.CloudFrontSettings
    private let key: _RSA.Signing.PrivateKey

    init(settings: ServerConfiguration.CloudFrontSettings) throws {
        self.settings = settings
        do { key = try _RSA.Signing.PrivateKey(pemRepresentation: settings.privateKeyPEM) } catch {
            throw ServerConfiguration.Problem(description: "AWS_CLOUDFRONT_PRIVATE_KEY is not an RSA private key in PEM form")
        }
    }

    /// The canned policy for `url` until `expires` (CloudFront wants exactly this JSON, without spaces).
    static func cannedPolicy(url: String, expires: Int64) -> String {
        #"{"Statement":[{"Resource":"\#(url)","Condition":{"DateLessThan":{"AWS:EpochTime":\#(expires)}}}]}"#
    }

    /// CloudFront's URL-safe base64: `+` -> `-`, `=` -> `_`, `/` -> `~`.
    static func urlSafe(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "=", with: "_")
            .replacingOccurrences(of: "/", with: "~")
    }

    func signedURL(_ url: String, expires: Date) -> String? {
        let epoch = Int64(expires.timeIntervalSince1970)
        let policy = Self.cannedPolicy(url: url, expires: epoch)
        guard let signature = try? key.signature(for: Insecure.SHA1.hash(data: Data(policy.utf8)), padding: .insecurePKCS1v1_5) else {
            return nil
        }
        let separator = url.contains("?") ? "&" : "?"
        return "\(url)\(separator)Expires=\(epoch)&Signature=\(Self.urlSafe(signature.rawRepresentation))&Key-Pair-Id=\(settings.keyPairId)"
    }
}
