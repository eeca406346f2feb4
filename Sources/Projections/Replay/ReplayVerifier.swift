import EventStore
import Foundation
import Logging
import PostgresNIO

/// Rebuilds every read model from position 0 into a scratch schema and compares it with
/// the live tables (row counts and checksums), all inside one REPEATABLE READ transaction
/// that is rolled back at the end: the live tables are never touched, and the scratch
/// schema vanishes with the rollback.
///
/// Inline read models are compared at the log's head; async ones at their own checkpoint
/// (their writes and checkpoint commit together, so that is the state they claim).
public struct ReplayVerifier: Sendable {
    public let projections: [any Projection]
    public let batchSize: Int
    let logger: Logger

    public init(projections: [any Projection], batchSize: Int = 10_000, logger: Logger) {
        self.projections = projections
        self.batchSize = batchSize
        self.logger = logger
    }

    /// Replays and compares; `progress(done, total)` is called after every batch.
    public func verify(
        inline: Set<String>, client: PostgresClient,
        progress: @Sendable (Int64, Int64) -> Void = { _, _ in }
    ) async throws -> ReplayReport {
        let started = ContinuousClock.now
        let scratch = "replay_\(UInt32.random(in: 0...UInt32.max))"
        return try await client.withConnection { connection in
            try await connection.inTransaction("BEGIN ISOLATION LEVEL REPEATABLE READ", keep: false, logger: logger) {
                try await replay(into: scratch, inline: inline, on: connection, started: started, progress: progress)
            }
        }
    }

    private func replay(
        into scratch: String, inline: Set<String>, on connection: PostgresConnection, started: ContinuousClock.Instant,
        progress: @Sendable (Int64, Int64) -> Void
    ) async throws -> ReplayReport {
        var head: Int64 = 0
        for try await h in try await connection.query("SELECT coalesce(max(position), 0) FROM system.events", logger: logger)
            .decode(Int64.self) { head = h }
        var checkpoints: [String: Int64] = [:]
        for try await (name, position) in try await connection.query(
            "SELECT projection, position FROM system.checkpoints", logger: logger).decode((String, Int64).self) {
            checkpoints[name] = position
        }
        let bounds = projections.map { inline.contains($0.name) ? head : (checkpoints[$0.name] ?? 0) }

        try await connection.query("CREATE SCHEMA \(unescaped: SQLIdentifier.quote(scratch))", logger: logger)
        let context = ProjectionContext(connection: connection, logger: logger, scratchSchema: scratch)
        for table in projections.flatMap(\.tables) {
            try await connection.query("""
                CREATE TABLE \(unescaped: context.name(of: table))
                (LIKE \(unescaped: table.qualifiedName) INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)
                """, logger: logger)
        }

        let wanted: Set<String>? = projections.contains { $0.eventTypes == nil }
            ? nil : projections.reduce(into: Set<String>()) { $0.formUnion($1.eventTypes ?? []) }
        let last = bounds.max() ?? 0
        var cursor: Int64 = 0
        var replayed: Int64 = 0
        while cursor < last {
            let batch = try await EventStore.readAll(
                on: connection, after: cursor, limit: batchSize, filter: EventFilter(types: wanted, until: last),
                payload: projections.contains { $0.needsPayload })
            guard let end = batch.last?.position else { break }
            for (projection, bound) in zip(projections, bounds) {
                let types = projection.eventTypes
                let mine = batch.filter { $0.position <= bound && (types?.contains($0.type) ?? true) }
                if !mine.isEmpty { try await projection.apply(mine, in: context) }
            }
            replayed += Int64(batch.count)
            cursor = end
            progress(cursor, last)
        }

        var tables: [ReplayReport.TableComparison] = []
        for table in projections.flatMap(\.tables) {
            let live = try await fingerprint(table.qualifiedName, table, connection)
            let rebuilt = try await fingerprint(context.name(of: table), table, connection)
            tables.append(.init(table: "\(table.schema).\(table.name)", liveRows: live.rows, replayedRows: rebuilt.rows,
                                liveChecksum: live.checksum, replayedChecksum: rebuilt.checksum))
        }
        return ReplayReport(head: head, eventsReplayed: replayed, tables: tables,
                            duration: ContinuousClock.now - started)
    }

    private func fingerprint(_ name: String, _ table: ReadModelTable, _ connection: PostgresConnection) async throws
        -> (rows: Int64, checksum: String) {
        let order = table.keyColumns.map(SQLIdentifier.quote).joined(separator: ", ")
        let rows = try await connection.query("""
            SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY \(unescaped: order))), md5(''))
            FROM \(unescaped: name) t
            """, logger: logger)
        for try await (count, checksum) in rows.decode((Int64, String).self) { return (count, checksum) }
        return (0, "")
    }
}

/// What a replay found.
public struct ReplayReport: Sendable {
    /// One table's live and rebuilt fingerprints.
    public struct TableComparison: Sendable {
        public var table: String
        public var liveRows: Int64
        public var replayedRows: Int64
        public var liveChecksum: String
        public var replayedChecksum: String
        /// Same rows and same checksum.
        public var matches: Bool { liveRows == replayedRows && liveChecksum == replayedChecksum }
    }

    public var head: Int64
    public var eventsReplayed: Int64
    public var tables: [TableComparison]
    public var duration: Duration
    /// True when every table matches.
    public var matches: Bool { tables.allSatisfy(\.matches) }
}
