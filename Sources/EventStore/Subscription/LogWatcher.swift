import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Listens on the `system_events` channel (NOTIFY after each append commit) and fires
/// `signal`. If the LISTEN connection drops it reconnects with backoff; readers keep
/// polling meanwhile, so a lost notification only delays them.
public final class LogWatcher: Sendable {
    /// Fired after every observed commit.
    public let signal = LogSignal()
    /// How long readers wait for a notification before they poll anyway.
    public let pollInterval: Duration
    private let client: PostgresClient
    private let logger: Logger
    private let stopped = Mutex(false)

    init(client: PostgresClient, logger: Logger, pollInterval: Duration) {
        self.client = client
        self.logger = logger
        self.pollInterval = pollInterval
    }

    func shutdown() {
        stopped.withLock { $0 = true }
        signal.fire()
    }

    func run() async throws {
        var backoff: Duration = .milliseconds(100)
        while !stopped.withLock({ $0 }) {
            let started = ContinuousClock.now
            do {
                try await cancelWhenGracefulShutdown {
                    try await self.client.withConnection { connection in
                        try await connection.listen(on: "system_events") { notifications in
                            self.signal.fire()  // anything committed while we were not listening
                            for try await _ in notifications {
                                self.signal.fire()
                            }
                        }
                    }
                }
            } catch {
                if stopped.withLock({ $0 }) || Task.isCancelled { return }
                logger.warning("LISTEN system_events failed; readers poll until it is back", metadata: ["error": "\(error)"])
            }
            if Task.isCancelled || Task.isShuttingDownGracefully { return }
            if ContinuousClock.now - started > .seconds(30) { backoff = .milliseconds(100) }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
    }
}
