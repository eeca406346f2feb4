import Logging
import PostgresNIO

extension PostgresConnection {
    /// Runs `body` between `begin` (e.g. `BEGIN ISOLATION LEVEL REPEATABLE READ`) and COMMIT,
    /// rolling back when it throws. The body's own errors come out as they are (unlike
    /// `withTransaction`, which wraps them), so callers can tell a conflict from a lost connection.
    public func inTransaction<T>(_ begin: PostgresQuery = "BEGIN", logger: Logger,
                                 _ body: () async throws -> T) async throws -> T {
        try await query(begin, logger: logger)
        do {
            let result = try await body()
            try await query("COMMIT", logger: logger)
            return result
        } catch {
            _ = try? await query("ROLLBACK", logger: logger)
            throw error
        }
    }

    /// Ends the transaction without keeping anything (read-only checks, scratch work).
    public func inRolledBackTransaction<T>(_ begin: PostgresQuery, logger: Logger, _ body: () async throws -> T) async throws -> T {
        try await query(begin, logger: logger)
        do {
            let result = try await body()
            try await query("ROLLBACK", logger: logger)
            return result
        } catch {
            _ = try? await query("ROLLBACK", logger: logger)
            throw error
        }
    }
}
