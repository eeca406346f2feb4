import EventStore
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Follows the log for one async projection, once per cluster.
///
/// Ownership is `ClusterOwnership` (a session advisory lock on the connection that also does
/// the work): another process's runner takes over when the owner's connection goes. Each batch is one transaction: read after the checkpoint (locked
/// `FOR UPDATE`), apply, move the checkpoint. A crash therefore never applies an event
/// twice. A batch that fails is retried with backoff, then event by event; an event that
/// fails `maxAttempts` times is parked in `system.parked_events` and skipped.
public actor ProjectionRunner: Service {
    /// Tuning knobs.
    public struct Options: Sendable {
        public var batchSize = 5000
        public var maxAttempts = 5
        public var initialBackoff: Duration = .milliseconds(100)
        public var maxBackoff: Duration = .seconds(5)
        /// How often a runner that is not the owner tries to become it.
        public var ownershipRetry: Duration = .seconds(1)
        /// After being woken by new events, how long to let more arrive before reading: under a
        /// stream of small appends (realtime messages, single-row writes) a batch then holds several
        /// of them, and the checkpoint transaction is paid once for all.
        public var gatherInterval: Duration = .milliseconds(20)
        public init() {}
    }

    /// What an admin sees of a runner.
    public struct Status: Sendable, Codable {
        public var projection: String
        public var isOwner: Bool
        public var checkpoint: Int64
        public var lastError: String?
        public var failedAttempts: Int
    }

    public nonisolated let projection: any Projection
    let store: EventStore
    let options: Options
    let logger: Logger
    private var isOwner = false
    private var checkpoint: Int64 = 0
    private var lastError: String?
    private var attempts = 0
    /// After a batch failed: go event by event up to its end, to find the one that fails.
    private var isolateUntil: Int64?

    public init(projection: any Projection, store: EventStore, options: Options = .init(), logger: Logger) {
        self.projection = projection
        self.store = store
        self.options = options
        var logger = logger
        logger[metadataKey: "projection"] = "\(projection.name)"
        self.logger = logger
    }

    /// A snapshot for admins and tests.
    public func status() -> Status {
        Status(projection: projection.name, isOwner: isOwner, checkpoint: checkpoint, lastError: lastError, failedAttempts: attempts)
    }

    public func run() async throws {
        let ownership = ClusterOwnership(.projection(projection.name), client: store.client, retry: options.ownershipRetry, logger: logger)
        await ownership.run(backoff: .init(initial: options.initialBackoff, max: options.maxBackoff)) { error in
            await self.restarting(after: error)
        } _: { connection in
            try await self.follow(on: connection)
        }
        isOwner = false
    }

    private func restarting(after error: any Error) {
        isOwner = false
        lastError = "\(error)"
        logger.warning("projection runner failed; restarting", metadata: ["error": "\(String(reflecting: error))"])
    }

    /// Follows the log until shutdown, as the projection's owner on `connection`.
    private func follow(on connection: PostgresConnection) async throws {
        isOwner = true
        defer { isOwner = false }
        try await connection.query("""
            INSERT INTO system.checkpoints (projection, position) VALUES (\(projection.name), 0)
            ON CONFLICT (projection) DO NOTHING
            """, logger: logger)
        var lastKeepAlive = ContinuousClock.now
        while !shutdownRequested {
            let generation = store.watcher.signal.generation
            let moved = try await step(on: connection)
            if !moved {
                if ContinuousClock.now - lastKeepAlive > .seconds(5) {
                    try await connection.query("SELECT 1", logger: logger)  // notice a dead connection
                    lastKeepAlive = .now
                }
                await store.watcher.signal.wait(after: generation, timeout: store.watcher.pollInterval)
                if options.gatherInterval > .zero && !shutdownRequested { try? await Task.sleep(for: options.gatherInterval) }
            }
        }
    }

    /// One batch; returns whether the checkpoint moved.
    private func step(on connection: PostgresConnection) async throws -> Bool {
        let limit = (isolateUntil.map { checkpoint < $0 } ?? false) ? 1 : options.batchSize
        var batch: [RecordedEvent] = []
        do {
            let moved = try await connection.inTransaction(logger: logger) { () async throws -> (from: Int64, to: Int64) in
                var current: Int64 = 0, head: Int64 = 0
                for try await (c, h) in try await connection.execute(LockCheckpoint(projection: projection.name), logger: logger) {
                    current = c
                    head = h
                }
                guard head > current else { return (current, current) }
                batch = try await EventStore.readAll(
                    on: connection, after: current, limit: limit, filter: EventFilter(types: projection.eventTypes, until: head),
                    payload: projection.needsPayload)
                // A short batch means nothing else of ours up to `head`: skip straight to it.
                let next = batch.count == limit ? batch.last!.position : head
                if !batch.isEmpty {
                    try await projection.apply(batch, in: ProjectionContext(connection: connection, logger: logger))
                }
                try await moveCheckpoint(to: next, on: connection)
                return (current, next)
            }
            checkpoint = moved.to
            guard moved.to > moved.from else { return false }
            if let end = isolateUntil, moved.to >= end { isolateUntil = nil }
            attempts = 0
            lastError = nil
            return true
        } catch let error as PSQLError where error.code != .server {
            throw error  // the connection is gone: restart (and re-own) from the top
        } catch {
            try await failed(batch, error, on: connection)
            return true
        }
    }

    private func moveCheckpoint(to position: Int64, on connection: PostgresConnection) async throws {
        _ = try await connection.execute(MoveCheckpoint(position: position, projection: projection.name), logger: logger)
    }

    // Prepared once per connection: a runner runs them at every wake-up of the log.

    /// The checkpoint (locked) and the log's head.
    struct LockCheckpoint: PostgresPreparedStatement {
        static let sql = """
            SELECT c.position, (SELECT coalesce(max(position), 0) FROM system.events)
              FROM system.checkpoints c WHERE c.projection = $1 FOR UPDATE
            """
        typealias Row = (Int64, Int64)
        var projection: String

        func makeBindings() throws -> PostgresBindings { .of(projection) }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    struct MoveCheckpoint: PostgresPreparedStatement {
        static let sql = "UPDATE system.checkpoints SET position = $1, updated_at = now() WHERE projection = $2"
        typealias Row = ()
        var position: Int64
        var projection: String

        func makeBindings() throws -> PostgresBindings { .of(position, projection) }

        func decodeRow(_ row: PostgresRow) throws {}
    }

    /// Backoff, then isolate the failing event, then park it.
    private func failed(_ batch: [RecordedEvent], _ error: any Error, on connection: PostgresConnection) async throws {
        attempts += 1
        let message = String(reflecting: error)
        lastError = message
        logger.warning("projection batch failed", metadata: ["attempt": "\(attempts)", "error": "\(message)"])
        if batch.count > 1 {
            isolateUntil = batch.last?.position
            attempts = 0
            return
        }
        if let event = batch.first, attempts >= options.maxAttempts {
            let attempts = Int32(self.attempts)
            try await connection.inTransaction(logger: logger) {
                // The id comes from the log: payload-free reads do not carry it.
                try await connection.query("""
                    INSERT INTO system.parked_events (projection, position, event_id, type, attempts, error)
                    SELECT \(projection.name), position, event_id, type, \(attempts), \(message)
                    FROM system.events WHERE position = \(event.position)
                    ON CONFLICT DO NOTHING
                    """, logger: logger)
                try await moveCheckpoint(to: event.position, on: connection)
            }
            logger.error("parked event \(event.position) (\(event.type)) after \(attempts) attempts")
            checkpoint = event.position
            self.attempts = 0
            return
        }
        let delay = min(options.initialBackoff * (1 << min(attempts, 16)), options.maxBackoff)
        try? await Task.sleep(for: delay)
    }
}
