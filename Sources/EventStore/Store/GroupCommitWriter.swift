import Foundation
import Logging
import Metrics
import PostgresNIO
import Synchronization

/// Stream versions this writer has seen, each with the log head it was exact at.
/// `system.append_batch` uses one unless its stream was appended to after that head; `system.append_known`
/// uses it as is, and the log's unique index refuses it if it is stale.
struct VersionCache {
    struct Entry {
        var version: Int64
        var asOf: Int64
    }
    var entries: [String: Entry] = [:]

    /// Records what a committed batch (whose head was `head`) left its streams at; an older
    /// batch answered late does not overwrite what a newer one recorded.
    mutating func record(_ version: Int64, for stream: String, asOf head: Int64) {
        if let entry = entries[stream], entry.asOf > head { return }
        entries[stream] = Entry(version: version, asOf: head)
    }
}

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
    fileprivate struct Waiting: Sendable, GroupCommitItem {
        var command: AppendCommand
        var continuation: CheckedContinuation<AppendResult, any Error>
        var streamId: String { command.streamId }
    }

    private let client: PostgresClient
    private let inlineProjections: [any Projection]
    /// Each inline projection's event types (nil: all), read once: `eventTypes` builds a set per call.
    private let inlineTypes: [Set<String>?]
    private let maxBatchCommands: Int
    private let logger: Logger
    private let state = Mutex(GroupCommitState<Waiting>())
    private let versionCache = Mutex(VersionCache())
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>
    private let batchSize = Recorder(label: "insforge_event_append_batch_commands")
    /// Batches written and commands in them, since start (for benchmarks and metrics).
    let batches = Atomic<Int>(0)
    let commands = Atomic<Int>(0)
    let busy = Atomic<Int>(0)  // nanoseconds spent writing batches
    /// Commands whose stream version came from the cache, not a lookup under the log lock.
    let knownVersions = Atomic<Int>(0)
    /// Batches written again because a cached version turned out stale.
    let staleRetries = Atomic<Int>(0)
    private let maxLinger: Duration = .milliseconds(1)
    /// Batches in flight at once.
    private let lanes = 2
    private let appended = Counter(label: "insforge_events_appended_total")

    init(client: PostgresClient, inlineProjections: [any Projection], maxBatchCommands: Int, logger: Logger) {
        self.client = client
        self.inlineProjections = inlineProjections
        self.inlineTypes = inlineProjections.map(\.eventTypes)
        self.maxBatchCommands = maxBatchCommands
        self.logger = logger
        (self.wakes, self.wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func submit(_ command: AppendCommand) async throws -> AppendResult {
        try await withCheckedThrowingContinuation { continuation in
            let (accepted, lingerer) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
                guard state.submit(Waiting(command: command, continuation: continuation)) else { return (false, nil) }
                // The pump may be lingering for a full batch: this command may complete it.
                return (true, state.lingerIsOver ? state.endLinger() : nil)
            }
            if accepted {
                lingerer?.resume()
                wake.yield()
            } else {
                continuation.resume(throwing: EventStoreError(.shutdown, "the event store is shutting down"))
            }
        }
    }

    /// Stops taking appends; what is queued is still written.
    func shutdown() {
        state.withLock { state in
            state.isShutdown = true
            return state.endLinger()
        }?.resume()
        wake.finish()
    }

    func run() async {
        await withDiscardingTaskGroup { group in
            for await _ in wakes {
                await drain(into: &group)
            }
            await drain(into: &group)
        }
    }

    /// Takes batches while commands wait, up to `lanes` batches in flight: while one batch is in
    /// PostgreSQL the next is being gathered and sent, and waits on the log lock rather than on us.
    private func drain(into group: inout DiscardingTaskGroup) async {
        while true {
            await acquireLane()
            await linger()
            let batch = state.withLock { state -> [Waiting] in
                state.takeBatch(limit: state.batchLimit(lanes: lanes, maxBatch: maxBatchCommands))
            }
            if batch.isEmpty {
                releaseLane()
                return
            }
            batchSize.record(batch.count)
            batches.add(1, ordering: .relaxed)
            commands.add(batch.count, ordering: .relaxed)
            group.addTask {
                let started = ContinuousClock.now
                await self.write(batch)
                let spent = (ContinuousClock.now - started).components
                self.busy.add(Int(spent.seconds) * 1_000_000_000 + Int(spent.attoseconds / 1_000_000_000), ordering: .relaxed)
                let othersWait = self.state.withLock { $0.finish(batch) }
                self.releaseLane()
                // Commands passed over for this batch's streams may be waiting for it.
                if othersWait { self.wake.yield() }
            }
        }
    }

    private func acquireLane() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.batchesInFlight < lanes {
                    state.batchesInFlight += 1
                    return true
                }
                state.laneWaiter = continuation
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// Frees a lane, handing it straight to the pump if it is waiting for one.
    private func releaseLane() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.laneWaiter {
                state.laneWaiter = nil
                return waiter
            }
            state.batchesInFlight -= 1
            return nil
        }
        waiter?.resume()
    }

    /// `lookUpVersions`: every stream's version is looked up under the log lock, none taken from the cache.
    private func write(_ batch: [Waiting], careful: Bool = false, lookUpVersions: Bool = false) async {
        // Sorted by stream (stable, so each stream keeps its order): `system.append_batch`
        // carries each stream's version forward in one pass.
        // Compared as bytes: any consistent order will do, and String's comparison is much slower.
        let batch = batch.enumerated().sorted { a, b in
            a.element.command.streamId == b.element.command.streamId
                ? a.offset < b.offset : a.element.command.streamId.utf8.lexicographicallyPrecedes(b.element.command.streamId.utf8)
        }.map(\.element)
        do {
            let results = try await commit(batch.map(\.command), careful: careful, lookUpVersions: lookUpVersions)
            for (waiting, result) in zip(batch, results) {
                switch result {
                case .success(let r):
                    if !r.wasDuplicate { appended.increment(by: r.positions.count) }
                    waiting.continuation.resume(returning: r)
                case .failure(let e): waiting.continuation.resume(throwing: e)
                }
            }
        } catch {
            if careful {
                batch[0].continuation.resume(throwing: error)
                return
            }
            if !lookUpVersions, Self.isStaleVersion(error) {
                // A cached version was stale (another process appended to its stream): nothing was
                // written; again, with every version looked up.
                logger.debug("batch of \(batch.count) had a stale stream version, retrying with versions looked up")
                versionCache.withLock { cache in for waiting in batch { cache.entries[waiting.command.streamId] = nil } }
                staleRetries.add(1, ordering: .relaxed)
                await write(batch, lookUpVersions: true)
                return
            }
            // A duplicate id, bad JSON or a refusing projection: go command by command through the
            // careful path, so only the guilty command fails and retries are answered as such.
            logger.debug("batch of \(batch.count) failed, retrying one by one", metadata: ["error": "\(String(reflecting: error))"])
            for waiting in batch { await write([waiting], careful: true) }
        }
    }

    /// Under load, writers answered a moment ago are about to append again. When fewer commands
    /// wait than a lane's share of the writers around, wait (at most `maxLinger`) for the rest: one
    /// full batch costs much less than several small ones. Under light load nothing waits.
    private func linger() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let round = state.withLock { state -> Int? in
                guard let round = state.startLinger(lanes: lanes, maxBatch: maxBatchCommands) else { return nil }
                state.lingerer = continuation
                return round
            }
            guard let round else { return continuation.resume() }
            // Submissions end the linger as soon as the batch is full; this ends it at the deadline.
            Task { [maxLinger] in
                try? await Task.sleep(for: maxLinger)
                self.state.withLock { state in state.lingerRound == round ? state.endLinger() : nil }?.resume()
            }
        }
    }

    /// Whether a batch failed on the log's unique (stream, version) index: a version taken as known was stale.
    private static func isStaleVersion(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError, let info = error.serverInfo else { return false }
        return info[.sqlState] == "23505" && info[.constraintName] == "events_stream_id_stream_version_key"
    }

    /// Writes commands in one transaction; a thrown error means nothing of it committed.
    /// The fast path is `system.append_known`, else `system.append_batch`; `careful` (one command) is
    /// `system.append_events`, which recognises a retried append by its event ids.
    private func commit(_ commands: [AppendCommand], careful: Bool, lookUpVersions: Bool) async throws
        -> [Result<AppendResult, EventStoreError>] {
        let needsProjection = commands.contains { command in
            command.events.contains { event in inlineTypes.contains { $0?.contains(event.type) ?? true } }
        }
        let streams = commands.map(\.streamId)
        var known: [Int64] = [], knownAsOf: [Int64] = []
        var ids: [UUID] = [], types: [String] = [], data: [String] = [], metadata: [String] = []
        let cached = careful || lookUpVersions ? [:] : versionCache.withLock { $0.entries }
        for command in commands {
            let entry = cached[command.streamId]
            known.append(entry?.version ?? -1)
            knownAsOf.append(entry?.asOf ?? -1)
            for event in command.events {
                ids.append(event.eventId)
                types.append(event.type)
                data.append(event.data)
                metadata.append(event.metadata.json)
            }
        }
        // Every command accepts any version: `system.append_known` takes the versions the cache knows;
        // otherwise `append_batch` checks each command's expectation, and `append_events` (careful, one
        // command) recognises a retried append.
        let call: Call
        if careful {
            call = .query("""
                SELECT outcome, first_position, last_version, now(), -1::int8, 0::int4 FROM system.append_events(
                    \(streams[0]), \(commands[0].expected.sqlValue), \(ids), \(types), \(data)::jsonb[], \(metadata)::jsonb[])
                """)
        } else if commands.allSatisfy({ $0.expected.sqlValue == nil }) {
            call = .any(AppendKnown(commands: commands, streams: streams, ids: ids, types: types, data: data, metadata: metadata,
                                    known: known))
        } else {
            let expected = commands.map { $0.expected.sqlValue ?? -3 }, counts = commands.map { Int32($0.events.count) }
            call = .query("""
                SELECT outcome, first_position, last_version, now(), head, known FROM system.append_batch(
                    \(streams), \(expected), \(counts), \(ids), \(types), \(data), \(metadata), \(known), \(knownAsOf))
                """)
        }
        let run: @Sendable (PostgresConnection) async throws -> Outcome = { [logger] connection in
            switch call {
            case .any(let statement):
                for try await row in try await connection.execute(statement, logger: logger) { return Self.outcomes(row, statement, commands) }
                throw EventStoreError(.invalidEvent, "system.append_known returned no row")
            case .query(let query):
                return try await Self.outcomes(connection.query(query, logger: logger), commands)
            }
        }
        let projections = zip(inlineProjections, inlineTypes)
        let logger = self.logger
        let outcome = try await client.withConnection { connection in
            if !needsProjection {
                // One statement outside BEGIN/COMMIT is its own transaction: one round trip.
                return try await run(connection)
            }
            return try await connection.inTransaction(logger: logger) {
                let outcome = try await run(connection)
                // Each projection sees the whole batch at once, in log order (one statement per
                // projection, not per command): a refusal fails the batch, which is then retried one by one.
                // `append_batch` numbers the commands' events in array order, so `recorded` is in log order.
                var recorded: [RecordedEvent] = []
                var first = 0  // index in `metadata` of the command's first event
                for (command, result) in zip(commands, outcome.results) {
                    defer { first += command.events.count }
                    guard case .success(let r) = result, !r.wasDuplicate else { continue }
                    let versions = Self.versions(r, count: command.events.count)
                    for (i, event) in command.events.enumerated() {
                        recorded.append(RecordedEvent(position: r.positions[i], streamId: command.streamId, streamVersion: versions[i],
                                                      eventId: event.eventId, type: event.type, data: event.data,
                                                      metadata: metadata[first + i], recordedAt: outcome.recordedAt, typed: event.typed))
                    }
                }
                let context = ProjectionContext(connection: connection, logger: logger)
                for (projection, types) in projections {
                    let mine = recorded.filter { types?.contains($0.type) ?? true }
                    if mine.isEmpty { continue }
                    do {
                        try await projection.apply(mine, in: context)
                    } catch {
                        let streams = Set(mine.map(\.streamId)).sorted().prefix(3).joined(separator: ", ")
                        throw EventStoreError(.projectionFailed, "\(projection.name) refused events of \(streams): \(String(reflecting: error))",
                                              underlying: error)
                    }
                }
                return outcome
            }
        }
        knownVersions.add(outcome.known, ordering: .relaxed)
        if outcome.head >= 0 {
            versionCache.withLock { cache in
                if cache.entries.count > 100_000 { cache.entries.removeAll() }
                for (command, result) in zip(commands, outcome.results) {
                    switch result {
                    case .success(let r): cache.record(r.nextExpectedVersion, for: command.streamId, asOf: outcome.head)
                    case .failure(let e): if let v = e.currentVersion { cache.record(v, for: command.streamId, asOf: outcome.head) }
                    }
                }
            }
        }
        return outcome.results
    }

    private static func versions(_ r: AppendResult, count: Int) -> [Int64] {
        (0..<Int64(count)).map { r.nextExpectedVersion - Int64(count) + 1 + $0 }
    }

    /// Per-command outcomes, the transaction's timestamp (the events' `recorded_at`), the head after
    /// the batch (-1 when unknown) and how many commands' versions came from the cache.
    typealias Outcome = (results: [Result<AppendResult, EventStoreError>], recordedAt: Date, head: Int64, known: Int)

    /// How a batch is written: the prepared `append_known`, or a query answering one row per command.
    private enum Call: Sendable {
        case any(AppendKnown)
        case query(PostgresQuery)
    }

    /// The outcome of `system.append_known`: events are numbered in array order from the head before the
    /// batch, and each stream's versions follow its version before the batch.
    private static func outcomes(_ row: AppendKnown.Row, _ call: AppendKnown, _ commands: [AppendCommand]) -> Outcome {
        let (startHead, versions, known, recordedAt) = row
        var results: [Result<AppendResult, EventStoreError>] = []
        results.reserveCapacity(commands.count)
        var next = startHead + 1
        for (i, command) in commands.enumerated() {
            let n = Int64(command.events.count)
            results.append(.success(AppendResult(positions: Array(next..<(next + n)),
                                                 nextExpectedVersion: versions[i] + Int64(call.lastWithin[i]), wasDuplicate: false)))
            next += n
        }
        return (results, recordedAt, next - 1, Int(known))
    }

    private static func outcomes(_ rows: PostgresRowSequence, _ commands: [AppendCommand]) async throws -> Outcome {
        var recordedAt = Date()
        var head: Int64 = -1
        var known = 0
        var out: [Result<AppendResult, EventStoreError>] = []
        out.reserveCapacity(commands.count)
        var i = 0
        for try await (outcome, first, last, now, batchHead, knownCount) in rows.decode((String, Int64?, Int64?, Date, Int64, Int32).self) {
            let command = commands[i]
            i += 1
            recordedAt = now
            head = batchHead
            known = Int(knownCount)
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
        return (out, recordedAt, head, known)
    }
}

/// `system.append_known` (every command accepts any version), prepared once per connection. Each event
/// carries its command and its ordinal among the batch's events of its stream; commands come sorted by
/// stream, as for `append_batch`, each with its stream's version if the cache knows it (else -1).
struct AppendKnown: PostgresPreparedStatement {
    static let sql = """
        SELECT start_head, versions, known, recorded_at
          FROM system.append_known($1, $2, $3, $4, $5, $6::jsonb[], $7::jsonb[], $8)
        """
    static var bindingDataTypes: [PostgresDataType] {
        [.textArray, .int4Array, .int4Array, .uuidArray, .textArray, .textArray, .textArray, .int8Array]
    }
    typealias Row = (Int64, [Int64], Int32, Date)

    var streams: [String]
    var eventCommand: [Int32] = []
    var eventWithin: [Int32] = []
    /// Each command's last event's ordinal among the batch's events of its stream.
    var lastWithin: [Int32] = []
    var ids: [UUID]
    var types: [String]
    var data: [String]
    var metadata: [String]
    var known: [Int64]

    init(commands: [AppendCommand], streams: [String], ids: [UUID], types: [String], data: [String], metadata: [String],
         known: [Int64]) {
        (self.streams, self.ids, self.types, self.data, self.metadata, self.known) = (streams, ids, types, data, metadata, known)
        eventCommand.reserveCapacity(ids.count)
        eventWithin.reserveCapacity(ids.count)
        var within: Int32 = 0
        for (i, command) in commands.enumerated() {
            if i == 0 || command.streamId != commands[i - 1].streamId { within = 0 }
            for _ in command.events {
                within += 1
                eventCommand.append(Int32(i + 1))
                eventWithin.append(within)
            }
            lastWithin.append(within)
        }
    }

    func makeBindings() throws -> PostgresBindings {
        .of(PackedArray(streams), PackedArray(eventCommand), PackedArray(eventWithin), PackedArray(ids), PackedArray(types),
            PackedArray(data), PackedArray(metadata), PackedArray(known))
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}
