import Crypto
import EventStore
import Foundation
import PostgresNIO
import Projections
import Synchronization

/// The API keys currently valid, held in memory for the credentials middleware and
/// reloaded from `system.api_keys` whenever an `apikey-*` event is appended (on any node).
/// Lookups hash the presented key and compare with every fingerprint in constant time.
public final class KeyRing: Sendable {
    struct Entry: Sendable {
        var kind: ApiKeyKind
        var fingerprint: [UInt8]
        var validUntil: Date?
    }

    private let entries = Mutex<[Entry]>([])

    public init() {}

    /// The kind of key `key` is, or nil when it is not a valid key now.
    public func kind(of key: String) -> ApiKeyKind? {
        let digest = Array(SHA256.hash(data: Data(key.utf8)))
        let now = Date()
        var found: ApiKeyKind?
        for entry in entries.withLock({ $0 }) {
            // Compare every entry fully; no early exit on a match or a mismatch.
            var difference: UInt8 = entry.fingerprint.count == digest.count ? 0 : 1
            for (a, b) in zip(entry.fingerprint, digest) { difference |= a ^ b }
            if difference == 0, entry.validUntil.map({ $0 > now }) ?? true { found = entry.kind }
        }
        return found
    }

    /// Reloads from the read model.
    public func reload(from client: PostgresClient) async throws {
        var fresh: [Entry] = []
        let rows = try await client.query("""
            SELECT kind, fingerprint, previous_fingerprint, grace_until FROM \(unescaped: ApiKeysProjection.table.qualifiedName)
            """)
        for try await (kind, fingerprint, previous, graceUntil) in rows.decode((String, String, String?, Date?).self) {
            guard let kind = ApiKeyKind(rawValue: kind) else { continue }
            fresh.append(Entry(kind: kind, fingerprint: Self.bytes(hex: fingerprint), validUntil: nil))
            if let previous, let graceUntil, graceUntil > Date() {
                fresh.append(Entry(kind: kind, fingerprint: Self.bytes(hex: previous), validUntil: graceUntil))
            }
        }
        entries.withLock { $0 = fresh }
    }

    static func bytes(hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var iterator = hex.utf8.makeIterator()
        while let hi = iterator.next(), let lo = iterator.next() {
            guard let h = hexValue(hi), let l = hexValue(lo) else { return [] }
            out.append(h << 4 | l)
        }
        return out
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 97...102: c - 87
        case 65...70: c - 55
        default: nil
        }
    }
}
