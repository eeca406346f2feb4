import Logging
import PostgresNIO

extension PostgresConnection {
    /// Runs `body` between `begin` (e.g. `BEGIN ISOLATION LEVEL REPEATABLE READ`) and COMMIT (or
    /// ROLLBACK when `keep` is false: read-only checks, scratch work), rolling back when it throws.
    /// The body's own errors come out as they are (unlike `withTransaction`, which wraps them), so
    /// callers can tell a conflict from a lost connection.
    public func inTransaction<T>(_ begin: PostgresQuery = "BEGIN", keep: Bool = true, logger: Logger,
                                 isolation: isolated (any Actor)? = #isolation,
                                 _ body: () async throws -> T) async throws -> T {
        try await query(begin, logger: logger)
        do {
            let result = try await body()
            try await query(keep ? "COMMIT" : "ROLLBACK", logger: logger)
            return result
        } catch {
            _ = try? await query("ROLLBACK", logger: logger)
            throw error
        }
    }
}
