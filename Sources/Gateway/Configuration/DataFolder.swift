import Crypto
import Foundation

/// The server's own folder (`./data` by default): generated secrets live here, created once
/// with mode 0600 and reused on every start.
public struct DataFolder: Sendable {
    public let url: URL

    public init(_ url: URL) { self.url = url }

    /// Creates the folder (0755: the embedded PostgreSQL's own user must be able to enter it).
    public func create() throws {
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
    }

    /// The secret stored in `name`, generated with `make` the first time.
    public func secret(_ name: String, make: () -> String) throws -> String {
        let file = url.appendingPathComponent(name)
        if let existing = try? String(contentsOf: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
           !existing.isEmpty {
            return existing
        }
        try create()
        let value = make()
        _ = FileManager.default.createFile(atPath: file.path, contents: Data(value.utf8), attributes: [.posixPermissions: 0o600])
        return value
    }

    /// `n` random bytes as hex.
    public static func randomHex(bytes n: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<n).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}
