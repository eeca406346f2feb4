import Foundation
import Logging
import Metrics
import PostgresNIO
import Synchronization

/// One caller's append, waiting for its batch to commit.
struct AppendCommand: Sendable {
    var streamId: String
    var expected: ExpectedVersion
    var events: [EventData]
}

/// Group commit: concurrent appends are gathered into one transaction (one round trip
/// when no inline projection is involved). A batch that fails is retried command by
/// command, so one bad command never fails its neighbours.
final class GroupCommitWriter: Sendable {
    private struct Waiting: Sendable {
        var command: AppendCommand
        var continuation: CheckedContinuation<AppendResult, any Error>
    }

    private struct State {
        var queue: [Waiting] = []
        var isShutdown = false
    }

    private let client: PostgresClient
    private let inlineProjections: [any Projection]
    private let maxBatchCommands: Int
    private let logger: Logger
    private let state = Mutex(State())
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>
    private let batchSize = Recorder(label: "insforge_event_append_batch_commands")
    private let appended = Counter(label: "insforge_events_appended_total")

    init(client: PostgresClient, inlineProjections: [any Projection], maxBatchCommands: Int, logger: Logger) {
        self.client = client
        self.inlineProjections = inlineProjections
        self.maxBatchCommands = maxBatchCommands
        self.logger = logger
        (self.wakes, self.wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func submit(_ command: AppendCommand) async throws -> AppendResult {
        try await withCheckedThrowingContinuation { continuation in
            let accepted = state.withLock { state -> Bool in
                guard !state.isShutdown else { return false }
                state.queue.append(Waiting(command: command, continuation: continuation))
                return true
            }
            if accepted {
                wake.yield()
            } else {
                continuation.resume(throwing: EventStoreError(.shutdown, "the event store is shutting down"))
            }
        }
    }

    /// Stops taking appends; what is queued is still written.
    func shutdown() {
        state.withLock { $0.isShutdown = true }
        wake.finish()
    }

    func run() async {
        for await _ in wakes {
            await drain()
        }
        await drain()
    }

    private func drain() async {
        while true {
            let batch = state.withLock { state -> [Waiting] in
                let n = min(state.queue.count, maxBatchCommands)
                let batch = Array(state.queue.prefix(n))
                state.queue.removeFirst(n)
                return batch
            }
            if batch.isEmpty { return }
            batchSize.record(batch.count)
            await write(batch)
        }
    }

    private func write(_ batch: [Waiting]) async {
        // Sorted by stream (stable, so each stream keeps its order): `system.append_batch`
        // carries each stream's version forward in one pass.
        let batch = batch.enumerated().sorted { a, b in
            a.element.command.streamId == b.element.command.streamId
                ? a.offset < b.offset : a.element.command.streamId < b.element.command.streamId
        }.map(\.element)
        do {
            let results = try await commit(batch.map(\.command))
            for (waiting, result) in zip(batch, results) {
                switch result {
                case .success(let r):
                    if !r.wasDuplicate { appended.increment(by: r.positions.count) }
                    waiting.continuation.resume(returning: r)
                case .failure(let e): waiting.continuation.resume(throwing: e)
                }
            }
        } catch {
            if batch.count == 1 {
                batch[0].continuation.resume(throwing: Self.unwrap(error))
                return
            }
            logger.debug("batch of \(batch.count) failed, retrying one by one", metadata: ["error": "\(String(reflecting: error))"])
            for waiting in batch { await write([waiting]) }
        }
    }

    private static func unwrap(_ error: any Error) -> any Error {
        if let tx = error as? PostgresTransactionError {
            return tx.closureError ?? tx.commitError ?? tx.beginError ?? error
        }
        return error
    }

    /// Writes one batch in one transaction; a thrown error means nothing of it committed.
    private func commit(_ commands: [AppendCommand]) async throws -> [Result<AppendResult, EventStoreError>] {
        let needsProjection = commands.contains { command in
            command.events.contains { event in inlineProjections.contains { $0.eventTypes?.contains(event.type) ?? true } }
        }
        var streams: [String] = [], expected: [Int64] = [], counts: [Int32] = []
        var ids: [UUID] = [], types: [String] = [], data: [String] = [], metadata: [String] = []
        for command in commands {
            streams.append(command.streamId)
            expected.append(command.expected.sqlValue ?? -3)
            counts.append(Int32(command.events.count))
            for event in command.events {
                ids.append(event.eventId)
                types.append(event.type)
                data.append(event.data)
                metadata.append(event.metadata.json)
            }
        }
        let query: PostgresQuery = """
            SELECT outcome, first_position, last_version, now() FROM system.append_batch(
                \(streams), \(expected), \(counts), \(ids), \(types), \(data), \(metadata))
            """
        let projections = inlineProjections
        let logger = self.logger
        return try await client.withConnection { connection in
            if !needsProjection {
                // One statement outside BEGIN/COMMIT is its own transaction: one round trip.
                return try await Self.outcomes(connection.query(query, logger: logger), commands).results
            }
            try await connection.query("BEGIN", logger: logger)
            do {
                let (results, recordedAt) = try await Self.outcomes(connection.query(query, logger: logger), commands)
                let context = ProjectionContext(connection: connection, logger: logger)
                for (command, result) in zip(commands, results) {
                    guard case .success(let r) = result, !r.wasDuplicate else { continue }
                    let recorded = zip(command.events, zip(r.positions, Self.versions(r, count: command.events.count))).map {
                        event, pv in
                        RecordedEvent(position: pv.0, streamId: command.streamId, streamVersion: pv.1, eventId: event.eventId,
                                      type: event.type, data: event.data, metadata: event.metadata.json, recordedAt: recordedAt)
                    }
                    for projection in projections {
                        let mine = recorded.filter { projection.eventTypes?.contains($0.type) ?? true }
                        if mine.isEmpty { continue }
                        do {
                            try await projection.apply(mine, in: context)
                        } catch {
                            throw EventStoreError(.projectionFailed, "\(projection.name) refused \(command.streamId): \(String(reflecting: error))",
                                                  underlying: error)
                        }
                    }
                }
                try await connection.query("COMMIT", logger: logger)
                return results
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    private static func versions(_ r: AppendResult, count: Int) -> [Int64] {
        (0..<Int64(count)).map { r.nextExpectedVersion - Int64(count) + 1 + $0 }
    }

    /// Per-command outcomes, and the transaction's timestamp (the events' `recorded_at`).
    private static func outcomes(_ rows: PostgresRowSequence, _ commands: [AppendCommand]) async throws
        -> (results: [Result<AppendResult, EventStoreError>], recordedAt: Date) {
        var recordedAt = Date()
        var out: [Result<AppendResult, EventStoreError>] = []
        out.reserveCapacity(commands.count)
        var i = 0
        for try await (outcome, first, last, now) in rows.decode((String, Int64?, Int64?, Date).self) {
            let command = commands[i]
            i += 1
            recordedAt = now
            let n = Int64(command.events.count)
            switch outcome {
            case "appended", "duplicate":
                let first = first ?? 0
                out.append(.success(AppendResult(positions: Array(first..<(first + n)), nextExpectedVersion: last ?? 0,
                                                 wasDuplicate: outcome == "duplicate")))
            case "wrong_version":
                out.append(.failure(EventStoreError(
                    .wrongExpectedVersion,
                    "stream \(command.streamId) is at version \(last ?? 0), expected \(command.expected)",
                    currentVersion: last)))
            default:
                out.append(.failure(EventStoreError(.eventIdReused, "an event id of this append is already stored in another append")))
            }
        }
        return (out, recordedAt)
    }
}
