import Crypto
import EventStore
import Foundation
import PostgresNIO

/// Single-use, expiring, attempt-limited e-mail codes (6 digits) and link tokens, as events on
/// `authcode-<id>`. Only HMACs (keyed by the server secret) are stored, so the log cannot be used
/// to brute-force a 6-digit code offline.
public struct AuthCodes: Sendable {
    /// A code or link that was checked and may now be consumed.
    public struct Match: Sendable {
        public var codeId: UUID
        public var userId: UUID
        public var email: String
        /// The stream version to consume at (a concurrent use of the same code then conflicts).
        var version: Int64
    }

    /// What was sent.
    public struct Issued: Sendable {
        public var code: String?
        public var linkToken: String?
        public var expiresAt: Date
    }

    /// Why a code was refused: one message for wrong, expired, used up or unknown, so nothing leaks.
    public static let refusal = DomainError.invalidInput("The code is invalid or has expired")

    let store: EventStore
    let client: PostgresClient
    private let key: SymmetricKey
    public let maxAttempts: Int

    public init(store: EventStore, secret: String, maxAttempts: Int = 5) {
        self.store = store
        self.client = store.client
        let root = SymmetricKey(data: Data(secret.utf8))
        self.key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data("insforge auth codes".utf8), using: root)))
        self.maxAttempts = maxAttempts
    }

    static func stream(_ id: UUID) -> String { "authcode-\(id.uuidString.lowercased())" }

    /// Issues a code and/or a link token for `user`; earlier ones of the same purpose stop working.
    public func issue(for user: UUID, email: String, purpose: AuthCodePurpose, code wantsCode: Bool, link wantsLink: Bool,
                      lifetime: TimeInterval, metadata: EventMetadata) async throws -> Issued {
        let id = UUID()
        let code = wantsCode ? Self.sixDigits() : nil
        let link = wantsLink ? Base64URL.encode(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }) : nil
        let expires = Date().addingTimeInterval(lifetime)
        let event = AuthCodeIssued(codeId: id, userId: user, email: email, purpose: purpose,
                                   codeHash: code.map { mac("code \(id.uuidString.lowercased()) \($0)") },
                                   linkHash: link.map { mac("link \($0)") }, expiresAt: expires, maxAttempts: maxAttempts)
        try await store.append([try EventData(event, metadata: metadata)], to: Self.stream(id), expected: .noStream)
        return Issued(code: code, linkToken: link, expiresAt: expires)
    }

    /// Checks the latest live code for `email` and `purpose`; a wrong guess counts an attempt.
    ///
    /// Attempts are counted on the code's stream at an exact version: of guesses made at once, each
    /// wrong one is recorded after the one before it or checked again against the new count, and a
    /// right one is only good at the version it saw (`consume`). So no more than `max_attempts`
    /// guesses are ever judged, however many arrive together.
    public func check(code: String, email: String, purpose: AuthCodePurpose, metadata: EventMetadata) async throws -> Match {
        for _ in 0..<(maxAttempts * 4 + 8) {
            let rows = try await client.query("""
                SELECT id, user_id, email, code_hash, attempts, max_attempts FROM auth.codes
                WHERE lower(email) = lower(\(email)) AND purpose = \(purpose.rawValue) AND consumed_at IS NULL
                  AND expires_at > now() AND code_hash IS NOT NULL
                ORDER BY created_at DESC LIMIT 1
                """)
            var found: (UUID, UUID, String, String, Int, Int)?
            for try await row in rows.decode((UUID, UUID, String, String, Int, Int).self) { found = row }
            guard let (id, user, stored, hash, attempts, max) = found, attempts < max else { throw Self.refusal }
            let presented = mac("code \(id.uuidString.lowercased()) \(code)")
            let version = Int64(1 + attempts)
            if Self.constantTimeEqual(presented, hash) {
                return Match(codeId: id, userId: user, email: stored, version: version)
            }
            do {
                try await store.append([try EventData(AuthCodeRejected(codeId: id), metadata: metadata)], to: Self.stream(id),
                                       expected: .exact(version))
                throw Self.refusal
            } catch let error as EventStoreError where error.code == .wrongExpectedVersion {
                continue  // another guess was counted meanwhile: judge this one against the new count
            }
        }
        throw Self.refusal
    }

    /// Finds the live link token `token` of `purpose`.
    public func check(link token: String, purpose: AuthCodePurpose) async throws -> Match {
        let rows = try await client.query("""
            SELECT id, user_id, email, attempts FROM auth.codes
            WHERE link_hash = \(mac("link \(token)")) AND purpose = \(purpose.rawValue) AND consumed_at IS NULL AND expires_at > now()
            """)
        for try await (id, user, email, attempts) in rows.decode((UUID, UUID, String, Int).self) {
            return Match(codeId: id, userId: user, email: email, version: Int64(1 + attempts))
        }
        throw Self.refusal
    }

    /// Uses up a checked code; the second of two concurrent uses is refused.
    public func consume(_ match: Match, metadata: EventMetadata) async throws {
        do {
            try await store.append([try EventData(AuthCodeConsumed(codeId: match.codeId), metadata: metadata)],
                                   to: Self.stream(match.codeId), expected: .exact(match.version))
        } catch let error as EventStoreError where error.code == .wrongExpectedVersion {
            throw Self.refusal
        }
    }

    private func mac(_ text: String) -> String {
        HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: key).hexString
    }

    /// A uniformly random 6-digit code.
    static func sixDigits() -> String {
        var generator = SystemRandomNumberGenerator()
        return String(format: "%06d", Int.random(in: 0..<1_000_000, using: &generator))
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<min(x.count, y.count) { difference |= x[i] ^ y[i] }
        return difference == 0
    }
}
