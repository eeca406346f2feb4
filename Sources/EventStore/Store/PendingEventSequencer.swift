import Logging
import PostgresNIO
import Synchronization

/// Moves the events that table triggers queue in `system.pending_events` into the log.
///
/// A record change queues its event in the writer's own transaction, without the log lock, so
/// writes to tables run concurrently; this sequencer then appends the committed queue in batches
/// under the lock (`system.sequence_pending`), which keeps positions in commit order. It runs when
/// nudged (after every records write), when a reader of the log asks (`flush()`: the events API, so
/// a client that wrote reads its events) and on a timer, for writes made by other means: psql,
/// another node, a node that died before its pass.
public final class PendingEventSequencer: Sendable {
    private struct State {
        var requested: UInt64 = 0
        var waiters: [(ticket: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
        var stopped = false
        var running = false
        /// Events moved since the queue was last vacuumed.
        var movedSinceVacuum = 0
    }

    private let state = Mutex(State())
    private let wake = LogSignal()
    private let client: PostgresClient
    private let logger: Logger
    private let interval: Duration
    private let batchSize: Int
    /// Fired when a pass moved events: this node's followers read them without waiting for the NOTIFY.
    private let moved: LogSignal?

    init(client: PostgresClient, logger: Logger, interval: Duration, batchSize: Int = 1000, moved: LogSignal? = nil) {
        self.moved = moved
        self.client = client
        self.logger = logger
        self.interval = interval
        self.batchSize = batchSize
    }

    /// Asks for a pass soon, without waiting for it (after a write: readers of the log flush).
    public func nudge() { wake.fire() }

    /// Returns once everything queued by transactions that committed before the call is in the log
    /// (or, if the database cannot be reached, once a pass has been tried: the events stay queued
    /// and the timer moves them later).
    public func flush() async {
        guard state.withLock({ $0.running && !$0.stopped }) else {
            // Not running as a service (a command-line tool): do the pass here.
            try? await drain()
            return
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let stopped = state.withLock { state -> Bool in
                guard !state.stopped else { return true }
                state.requested += 1
                state.waiters.append((state.requested, continuation))
                return false
            }
            if stopped { continuation.resume() } else { wake.fire() }
        }
    }

    func shutdown() {
        state.withLock { $0.stopped = true }
        wake.fire()
    }

    func run() async {
        state.withLock { $0.running = true }
        while true {
            let generation = wake.generation
            // Every flush requested before this pass is covered by it: its write committed before
            // the request, so the pass's statements see it.
            let (covered, stopped) = state.withLock { ($0.requested, $0.stopped || Task.isCancelled) }
            do {
                try await drain()
            } catch {
                // Cancelled rather than shut down: nothing to report, and the next turn finds `stopped`.
                if !Task.isCancelled {
                    logger.warning("moving queued record events into the log failed; retrying", metadata: ["error": "\(error)"])
                }
            }
            // On the way out nobody is left waiting: a later flush finds `stopped` and returns at once.
            let done = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                let ready = state.waiters.filter { stopped || $0.ticket <= covered }
                state.waiters.removeAll { stopped || $0.ticket <= covered }
                return ready.map(\.continuation)
            }
            for continuation in done { continuation.resume() }
            if stopped { return }
            await wake.wait(after: generation, timeout: interval)
            // Under a stream of writes, gather a few milliseconds of them per pass: every pass is a
            // commit under the log lock and a NOTIFY that wakes every follower.
            try? await Task.sleep(for: Self.gather)
        }
    }

    /// Sequences batches until the queue is empty.
    func drain() async throws {
        while true {
            var count = 0
            for try await n in try await client.query("SELECT system.sequence_pending(\(batchSize)::int)", logger: Self.quiet)
                .decode(Int.self) {
                count = n
            }
            if count > 0 {
                moved?.fire()
                state.withLock { $0.movedSinceVacuum += count }
            }
            if count < batchSize { break }
        }
        await vacuumIfDue()
    }

    /// Every moved event leaves a dead row in the queue, and autovacuum visits a database about once a
    /// minute: under a stream of writes the queue grew to tens of thousands of dead rows, which every
    /// pass scanned again (its emptiness check alone took 2 ms). Vacuumed after every
    /// `vacuumEvery` moved events, the queue stays a few pages. Without truncation (schema/migrations/001_log.sql
    /// sets it for autovacuum too): giving pages back locks the queue, and every write to a tracked table waits.
    /// A failed vacuum is not a failed pass: the events moved, and the next vacuum is due soon.
    private func vacuumIfDue() async {
        let due = state.withLock { state -> Bool in
            guard state.movedSinceVacuum >= Self.vacuumEvery else { return false }
            state.movedSinceVacuum = 0
            return true
        }
        guard due else { return }
        do {
            try await client.query("VACUUM (TRUNCATE false) system.pending_events", logger: Self.quiet)
        } catch {
            logger.warning("vacuuming the queue of record events failed", metadata: ["error": "\(error)"])
        }
    }

    /// Moved events between two vacuums of the queue.
    public static let vacuumEvery = 5_000

    static let gather: Duration = .milliseconds(2)

    private static let quiet = Logger(label: "postgres", factory: { _ in SwiftLogNoOpLogHandler() })
}
