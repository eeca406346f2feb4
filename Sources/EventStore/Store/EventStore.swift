import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// The append-only log in PostgreSQL: append (group-committed), read, subscribe.
///
/// Run it as a `Service`: its `run()` drives the group-commit writer and the LISTEN watcher.
public final class EventStore: Service, Sendable {
    /// The connection pool (also a service; run it beside the store).
    public let client: PostgresClient
    /// Projections applied in the append transaction.
    public let inlineProjections: [any Projection]
    /// Wakes readers when the log grows.
    public let watcher: LogWatcher
    /// Moves events queued by table triggers into the log.
    public let sequencer: PendingEventSequencer
    let writer: GroupCommitWriter
    let logger: Logger

    public init(client: PostgresClient, inlineProjections: [any Projection] = [], logger: Logger,
                maxBatchCommands: Int = 512, pollInterval: Duration = .milliseconds(500)) {
        self.client = client
        self.inlineProjections = inlineProjections
        self.logger = logger
        self.watcher = LogWatcher(client: client, logger: logger, pollInterval: pollInterval)
        self.sequencer = PendingEventSequencer(client: client, logger: logger, interval: pollInterval, moved: watcher.signal)
        self.writer = GroupCommitWriter(client: client, inlineProjections: inlineProjections,
                                        maxBatchCommands: maxBatchCommands, logger: logger)
    }

    /// Runs the writer, the watcher and the sequencer until graceful shutdown; pending appends finish first.
    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await self.writer.run() }
            group.addTask { try await self.watcher.run() }
            group.addTask { await self.sequencer.run() }
            try? await gracefulShutdown()
            self.writer.shutdown()
            self.watcher.shutdown()
            self.sequencer.shutdown()
        }
    }

    /// Appends `events` to one stream atomically, after checking `expected`.
    ///
    /// Concurrent callers share transactions (group commit). Returns once committed.
    /// Throws `EventStoreError` (`.wrongExpectedVersion`, `.eventIdReused`, `.invalidEvent`, ...).
    @discardableResult
    public func append(_ events: [EventData], to streamId: String, expected: ExpectedVersion = .any) async throws -> AppendResult {
        if let problem = StreamID.problem(with: streamId) { throw EventStoreError(.invalidEvent, problem) }
        guard !events.isEmpty else { throw EventStoreError(.invalidEvent, "no events to append") }
        guard events.count <= 1000 else { throw EventStoreError(.invalidEvent, "at most 1000 events per append") }
        if events.count > 1, Set(events.map(\.eventId)).count != events.count {
            throw EventStoreError(.invalidEvent, "event ids must be unique within an append")
        }
        for event in events {
            if let problem = StreamID.typeProblem(with: event.type) { throw EventStoreError(.invalidEvent, problem) }
        }
        return try await writer.submit(AppendCommand(streamId: streamId, expected: expected, events: events))
    }

    /// Group-commit figures since start: batches written, commands in them, seconds spent writing,
    /// commands whose stream version came from the writer's cache, and batches written again because a
    /// cached version was stale.
    public var appendStatistics: (batches: Int, commands: Int, busySeconds: Double, knownVersions: Int, staleRetries: Int) {
        (writer.batches.load(ordering: .relaxed), writer.commands.load(ordering: .relaxed),
         Double(writer.busy.load(ordering: .relaxed)) / 1e9, writer.knownVersions.load(ordering: .relaxed),
         writer.staleRetries.load(ordering: .relaxed))
    }

    /// The highest committed position (0 for an empty log).
    public func headPosition() async throws -> Int64 {
        let rows = try await client.query("SELECT coalesce(max(position), 0) FROM system.events")
        for try await head in rows.decode(Int64.self) { return head }
        return 0
    }

    /// Events of one stream in version order.
    public func readStream(_ streamId: String, afterVersion: Int64 = 0, limit: Int = 1000) async throws -> [RecordedEvent] {
        try await Self.collect(client.query("""
            SELECT \(unescaped: Self.columns) FROM system.events
            WHERE stream_id = \(streamId) AND stream_version > \(afterVersion)
            ORDER BY stream_version LIMIT \(limit)
            """))
    }

    /// Events after a global position, in log order, optionally filtered.
    public func readAll(after position: Int64, limit: Int = 1000, filter: EventFilter = .all) async throws -> [RecordedEvent] {
        try await Self.readAll(on: client, after: position, limit: limit, filter: filter)
    }

    /// `readAll` on a given connection or pool (projection runners read inside their own transactions).
    /// Without `payload`, `data` and `metadata` come back as `{}` (for projections that do not read them).
    public static func readAll(on db: some PostgresQueryRunner, after position: Int64, limit: Int, filter: EventFilter,
                               payload: Bool = true) async throws -> [RecordedEvent] {
        if let read = preparedRead(after: position, limit: limit, filter: filter, payload: payload) {
            let rows = try await read.rows(on: db)
            return payload ? try await collect(rows) : try await collectHeaders(rows)
        }
        let query = oneOff(LogReadShapes.page(payload ? columns : headerColumns), after: position, limit: limit, filter: filter)
        return payload ? try await collect(db.runQuery(query)) : try await collectHeaders(db.runQuery(query))
    }

    /// `readAll`, and the head of the log in the same snapshot: every event up to `head` that the
    /// filter wants is in `events` unless `events` is a full page. A filtered follower moves its
    /// cursor to `head` then, instead of scanning the same unwanted events again at every wake-up.
    func readAllWithHead(after position: Int64, limit: Int, filter: EventFilter) async throws -> (events: [RecordedEvent], head: Int64) {
        if let read = Self.preparedHeadedRead(after: position, limit: limit, filter: filter) {
            return try await Self.collectHeaded(read.rows(on: client), after: position)
        }
        return try await Self.collectHeaded(client.query(Self.oneOff(LogReadShapes.headed, after: position, limit: limit, filter: filter)),
                                            after: position)
    }

    /// The head and the events of a `readAllWithHead` (no event: a row of nulls beside the head).
    static func collectHeaded<Rows: AsyncSequence>(_ rows: Rows, after position: Int64) async throws
        -> (events: [RecordedEvent], head: Int64) where Rows.Element == PostgresRow {
        var head = position
        var events: [RecordedEvent] = []
        for try await row in rows {
            let (logHead, position, streamId, version, eventId, type, data, metadata, recordedAt)
                = try row.decode((Int64, Int64?, String?, Int64?, UUID?, String?, String?, String?, Date?).self)
            head = logHead
            guard let position, let streamId, let version, let eventId, let type, let data, let metadata, let recordedAt else { continue }
            events.append(RecordedEvent(position: position, streamId: streamId, streamVersion: version, eventId: eventId,
                                        type: type, data: data, metadata: metadata, recordedAt: recordedAt))
        }
        return (events, head)
    }

    /// A read whose filter no prepared shape covers, from the same SQL: `$1` after, `$2` limit, the
    /// filter's conditions on the parameters after them.
    private static func oneOff(_ sql: (String) -> String, after position: Int64, limit: Int, filter: EventFilter) -> PostgresQuery {
        var binds = PostgresBindings()
        binds.append(position)
        binds.append(Int64(limit))
        var condition = ""
        if let category = filter.category {
            binds.append(category)
            condition += " AND category = $\(binds.count)"
        }
        if let streamId = filter.streamId {
            binds.append(streamId)
            condition += " AND stream_id = $\(binds.count)"
        }
        if let types = filter.types {
            binds.append(Array(types).sorted())
            condition += " AND type = ANY($\(binds.count))"
        }
        if let until = filter.until {
            binds.append(until)
            condition += " AND position <= $\(binds.count)"
        }
        return PostgresQuery(unsafeSQL: sql(condition), binds: binds)
    }

    /// A live, ordered sequence of events after `position`: catch-up reads, then woken by NOTIFY
    /// (polling when notifications are lost).
    public func subscribe(after position: Int64, filter: EventFilter = .all, batchSize: Int = 1000) -> EventSubscription {
        EventSubscription(store: self, after: position, filter: filter, batchSize: batchSize)
    }

    static let columns = "position, stream_id, stream_version, event_id, type, data::text, metadata::text, recorded_at"
    static let headerColumns = "position, stream_id, stream_version, type"

    static func collectHeaders<Rows: AsyncSequence>(_ rows: Rows) async throws -> [RecordedEvent] where Rows.Element == PostgresRow {
        var out: [RecordedEvent] = []
        let zero = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        let epoch = Date(timeIntervalSince1970: 0)
        for try await row in rows {
            var cells = LogRowReader(row)
            let (position, streamId, version, type) = try (cells.int64(), cells.string(), cells.int64(), cells.string())
            out.append(RecordedEvent(position: position, streamId: streamId, streamVersion: version, eventId: zero,
                                     type: type, data: "{}", metadata: "{}", recordedAt: epoch))
        }
        return out
    }

    static func collect<Rows: AsyncSequence>(_ rows: Rows) async throws -> [RecordedEvent] where Rows.Element == PostgresRow {
        var out: [RecordedEvent] = []
        for try await row in rows {
            var cells = LogRowReader(row)
            let (position, streamId, version, eventId, type, data, metadata, recordedAt)
                = try (cells.int64(), cells.string(), cells.int64(), cells.next(UUID.self), cells.string(), cells.string(), cells.string(),
                       cells.next(Date.self))
            out.append(RecordedEvent(position: position, streamId: streamId, streamVersion: version, eventId: eventId,
                                     type: type, data: data, metadata: metadata, recordedAt: recordedAt))
        }
        return out
    }
}

/// What an append committed.
public struct AppendResult: Sendable, Hashable {
    /// Log positions of the appended events, in order.
    public var positions: [Int64]
    /// The stream's version after the append: pass it as `.exact` to append next.
    public var nextExpectedVersion: Int64
    /// True when every event id was already stored (a retried request): nothing new was written.
    public var wasDuplicate: Bool
}

/// Which events a read or subscription wants.
public struct EventFilter: Sendable, Hashable {
    public var category: String?
    public var streamId: String?
    public var types: Set<String>?
    /// Inclusive upper bound.
    public var until: Int64?

    public init(category: String? = nil, streamId: String? = nil, types: Set<String>? = nil, until: Int64? = nil) {
        self.category = category
        self.streamId = streamId
        self.types = types
        self.until = until
    }

    /// Every event.
    public static let all = EventFilter()
}

/// Something that runs a query: the pool or one connection.
public protocol PostgresQueryRunner: Sendable {
    func runQuery(_ query: PostgresQuery) async throws -> PostgresRowSequence
    func runPrepared<Statement: PostgresPreparedStatement>(_ statement: Statement) async throws
        -> AsyncThrowingMapSequence<PostgresRowSequence, Statement.Row>
}

extension PostgresClient: PostgresQueryRunner {
    public func runQuery(_ query: PostgresQuery) async throws -> PostgresRowSequence { try await self.query(query) }
    public func runPrepared<Statement: PostgresPreparedStatement>(_ statement: Statement) async throws
        -> AsyncThrowingMapSequence<PostgresRowSequence, Statement.Row> {
        try await execute(statement)
    }
}

extension PostgresConnection: PostgresQueryRunner {
    public func runQuery(_ query: PostgresQuery) async throws -> PostgresRowSequence {
        try await self.query(query, logger: Self.silentLogger)
    }
    public func runPrepared<Statement: PostgresPreparedStatement>(_ statement: Statement) async throws
        -> AsyncThrowingMapSequence<PostgresRowSequence, Statement.Row> {
        try await execute(statement, logger: Self.silentLogger)
    }

    static let silentLogger = Logger(label: "postgres", factory: { _ in SwiftLogNoOpLogHandler() })
}
