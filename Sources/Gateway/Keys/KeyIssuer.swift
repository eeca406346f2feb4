import EventStore
import Foundation
import Logging
import PostgresNIO
import Projections

/// Issues the admin and anon keys as events: at start-up when missing (or when
/// `ACCESS_API_KEY` names another admin key), and on rotation. Keys are stored only
/// encrypted; the key ring is reloaded after each issue.
public struct KeyIssuer: Sendable {
    let store: EventStore
    let box: SecretBox
    let keys: KeyRing
    let configuredAdminKey: String?
    let rotationGrace: Duration
    /// Where a generated admin key is written for the operator (`./data/admin-key`, 0600); nil when
    /// `ACCESS_API_KEY` gives it (the operator has it already).
    let adminKeyFile: URL?
    let logger: Logger

    public init(store: EventStore, box: SecretBox, keys: KeyRing, configuredAdminKey: String?, rotationGrace: Duration,
                adminKeyFile: URL?, logger: Logger) {
        self.store = store
        self.adminKeyFile = adminKeyFile
        self.box = box
        self.keys = keys
        self.configuredAdminKey = configuredAdminKey
        self.rotationGrace = rotationGrace
        self.logger = logger
    }

    /// Makes sure both keys exist (and the admin key is the configured one).
    public func ensureKeys() async throws {
        for kind in ApiKeyKind.allCases {
            let wanted = kind == .admin ? configuredAdminKey : nil
            for _ in 0..<3 {  // another node may issue at the same moment: re-read and re-decide
                let current = try await currentFingerprint(kind)
                if let current, wanted.map({ SecretBox.fingerprint($0) == current }) ?? true { break }
                let key = wanted ?? Self.generate(kind)
                do {
                    try await issue(kind, key: key, reason: wanted == nil ? "generated" : "configured",
                                    expected: current == nil ? .noStream : .streamExists, grace: nil, metadata: .init())
                    break
                } catch let error as EventStoreError where error.code == .wrongExpectedVersion {
                    continue
                }
            }
        }
        try await keys.reload(from: store.client)
        try await writeAdminKeyFile()
    }

    /// Writes the current admin key to `adminKeyFile` (0600), so whoever runs the server can find it:
    /// `insforge keys show` prints it too.
    func writeAdminKeyFile() async throws {
        guard let adminKeyFile, let key = try await currentKey(.admin) else { return }
        if (try? String(contentsOf: adminKeyFile, encoding: .utf8)) == key + "\n" { return }
        try FileManager.default.createDirectory(at: adminKeyFile.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? FileManager.default.removeItem(at: adminKeyFile)
        guard FileManager.default.createFile(atPath: adminKeyFile.path, contents: Data((key + "\n").utf8),
                                             attributes: [.posixPermissions: 0o600]) else {
            logger.warning("could not write the admin key file", metadata: ["path": "\(adminKeyFile.path)"])
            return
        }
        logger.notice("the admin API key is in \(adminKeyFile.path) (or run: insforge keys show)")
    }

    /// The current key of `kind`, decrypted.
    public func currentKey(_ kind: ApiKeyKind) async throws -> String? {
        let rows = try await store.client.query("SELECT ciphertext FROM system.api_keys WHERE kind = \(kind.rawValue)")
        for try await ciphertext in rows.decode(String.self) {
            do {
                return try box.open(ciphertext)
            } catch {
                throw KeyIssuerError(description: "The stored \(kind.rawValue) key cannot be decrypted: ENCRYPTION_KEY (or JWT_SECRET) changed")
            }
        }
        return nil
    }

    /// Issues a new key of `kind`; the old one stays valid for the grace period. Returns the new key.
    public func rotate(_ kind: ApiKeyKind, metadata: EventMetadata) async throws -> (key: String, previousValidUntil: Date) {
        let key = Self.generate(kind)
        let until = Date().addingTimeInterval(Double(rotationGrace.components.seconds))
        try await issue(kind, key: key, reason: "rotated", expected: .streamExists, grace: until, metadata: metadata)
        try await keys.reload(from: store.client)
        if kind == .admin { try await writeAdminKeyFile() }
        return (key, until)
    }

    private func issue(_ kind: ApiKeyKind, key: String, reason: String, expected: ExpectedVersion, grace: Date?,
                       metadata: EventMetadata) async throws {
        let event = ApiKeyIssued(kind: kind, keyId: UUID(), ciphertext: try box.seal(key),
                                 fingerprint: SecretBox.fingerprint(key), reason: reason, previousValidUntil: grace)
        try await store.append([try EventData(event, metadata: metadata)], to: kind.streamId, expected: expected)
        logger.info("issued the \(kind.rawValue) key (\(reason))")
    }

    private func currentFingerprint(_ kind: ApiKeyKind) async throws -> String? {
        let rows = try await store.client.query("SELECT fingerprint FROM system.api_keys WHERE kind = \(kind.rawValue)")
        for try await fingerprint in rows.decode(String.self) { return fingerprint }
        return nil
    }

    static func generate(_ kind: ApiKeyKind) -> String {
        (kind == .admin ? "ik_" : "anon_") + DataFolder.randomHex(bytes: 32)
    }
}

/// A key that cannot be read back: the operator changed the secrets it was sealed with.
public struct KeyIssuerError: Error, CustomStringConvertible, Sendable {
    public var description: String
}
