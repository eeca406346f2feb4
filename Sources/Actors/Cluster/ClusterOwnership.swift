import EventStore
import Logging
import PostgresNIO
import ServiceLifecycle

/// Whether the service running this task was asked to stop, gracefully or by cancellation.
var shutdownRequested: Bool { Task.isCancelled || Task.isShuttingDownGracefully }

/// Work that one node of the cluster does at a time: projections, webhook delivery, the orphan sweep.
///
/// Ownership is a session advisory lock (`ClusterLock`) held on the connection that does the work, so
/// losing the connection loses the lock and the work together, and another node's owner then takes
/// over. There is no lease to renew and no clock to trust.
public struct ClusterOwnership: Sendable {
    /// How long to wait after a failure: doubling from `initial` up to `max`.
    public struct Backoff: Sendable {
        public var initial: Duration
        public var max: Duration
        public init(initial: Duration, max: Duration) {
            self.initial = initial
            self.max = max
        }
    }

    public let lock: ClusterLock
    let client: PostgresClient
    /// How often a node that is not the owner tries to become it.
    let retry: Duration
    let logger: Logger

    public init(_ lock: ClusterLock, client: PostgresClient, retry: Duration = .seconds(1), logger: Logger) {
        self.lock = lock
        self.client = client
        self.retry = retry
        self.logger = logger
    }

    /// Until shutdown: takes a connection, waits until this node owns the lock on it, and runs `work`
    /// there (`work` returns at shutdown). A failure (a lost connection, an error `work` throws) is
    /// reported to `failed`, and the whole is started again after `backoff`.
    public func run(backoff: Backoff = .init(initial: .seconds(1), max: .seconds(1)),
                    failed: @Sendable (any Error) async -> Void,
                    _ work: @Sendable (PostgresConnection) async throws -> Void) async {
        var delay = backoff.initial
        while !shutdownRequested {
            do {
                try await client.withConnection { connection in
                    guard try await waitToOwn(on: connection) else { return }
                    do {
                        try await work(connection)
                    } catch {
                        await release(on: connection)
                        throw error
                    }
                    await release(on: connection)
                }
                delay = backoff.initial
            } catch {
                if shutdownRequested { break }
                await failed(error)
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, backoff.max)
            }
        }
    }

    /// Runs `work` once if no other node owns the lock now; nil when one does (it is doing the work).
    public func ifUnowned<T: Sendable>(_ work: (PostgresConnection) async throws -> T) async throws -> T? {
        try await client.withConnection { connection in
            guard try await tryLock(on: connection) else { return nil }
            let result: Result<T, any Error>
            do { result = .success(try await work(connection)) } catch { result = .failure(error) }
            await release(on: connection)
            return try result.get()
        }
    }

    /// Tries until the lock is this connection's; false when shutdown came first.
    private func waitToOwn(on connection: PostgresConnection) async throws -> Bool {
        while !shutdownRequested {
            if try await tryLock(on: connection) {
                logger.info("owning \(lock)")
                return true
            }
            try? await Task.sleep(for: retry)
        }
        return false
    }

    private func tryLock(on connection: PostgresConnection) async throws -> Bool {
        var acquired = false
        for try await ok in try await connection.query("SELECT pg_try_advisory_lock(\(lock.key))", logger: logger).decode(Bool.self) {
            acquired = ok
        }
        return acquired
    }

    /// Gives the lock back, so the connection returns to its pool without it (a dead connection lost it anyway).
    private func release(on connection: PostgresConnection) async {
        _ = try? await connection.query("SELECT pg_advisory_unlock(\(lock.key))", logger: logger)
    }
}
