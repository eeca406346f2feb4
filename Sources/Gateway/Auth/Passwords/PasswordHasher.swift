import HummingbirdBcrypt
import NIOPosix

/// bcrypt hashing on a thread pool of its own, never on an event loop: a burst of sign-ins
/// saturates the pool's threads while the loops keep answering other requests.
public struct PasswordHasher: Sendable {
    /// bcrypt cost (work factor 2^cost); at least 10.
    public let cost: UInt8
    let pool: NIOThreadPool

    /// A hash of a random password, verified when the account does not exist, so that an unknown
    /// address costs as much time as a wrong password.
    static let decoy = Bcrypt.hash("decoy-password-for-unknown-accounts", cost: 10)

    public init(cost: UInt8, pool: NIOThreadPool) {
        self.cost = cost
        self.pool = pool
    }

    /// The bcrypt hash of `password`.
    public func hash(_ password: String) async throws -> String {
        let cost = self.cost
        return try await pool.runIfActive { Bcrypt.hash(password, cost: cost) }
    }

    /// Whether `password` matches `hash`; with no hash, spends the same time and answers false.
    public func verify(_ password: String, against hash: String?) async throws -> Bool {
        let target = hash ?? Self.decoy
        let matches = try await pool.runIfActive { Bcrypt.verify(password, hash: target) }
        return matches && hash != nil
    }
}
