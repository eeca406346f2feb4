import Actors
import EventStore
import Foundation
import Logging
import PostgresNIO
import Projections

/// What `GET /api/events/stats` and `insforge events stats` show: the head, counts per
/// category and type (the `event_stats` read model), and where each projection is.
public struct LogStats: Codable, Sendable {
    public struct TypeCount: Codable, Sendable {
        public var category: String
        public var type: String
        public var count: Int64
        public var lastPosition: Int64
    }

    public struct ProjectionState: Codable, Sendable {
        public var name: String
        public var checkpoint: Int64
        public var lag: Int64
        /// Whether this process runs it now (nil when read from the command line).
        public var ownedHere: Bool?
        public var lastError: String?
    }

    public var head: Int64
    public var totalEvents: Int64
    public var types: [TypeCount]
    public var projections: [ProjectionState]
    public var parkedEvents: Int64

    /// Reads the stats as of one moment (one REPEATABLE READ snapshot); `runners` adds this
    /// process's view of each runner.
    public static func read(store: EventStore, runners: [ProjectionRunner] = []) async throws -> LogStats {
        await store.sequencer.flush()  // record changes already committed count in the head
        var statuses: [String: ProjectionRunner.Status] = [:]
        for runner in runners { statuses[runner.projection.name] = await runner.status() }
        let logger = Logger(label: "stats", factory: { _ in SwiftLogNoOpLogHandler() })
        return try await store.client.withConnection { connection in
            try await connection.inTransaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger) {
                try await snapshot(connection, statuses: statuses, includeOwnership: !runners.isEmpty, logger: logger)
            }
        }
    }

    private static func snapshot(_ connection: PostgresConnection, statuses: [String: ProjectionRunner.Status],
                                 includeOwnership: Bool, logger: Logger) async throws -> LogStats {
        var head: Int64 = 0
        for try await h in try await connection.query("SELECT coalesce(max(position), 0) FROM system.events", logger: logger)
            .decode(Int64.self) { head = h }
        var types: [TypeCount] = []
        for try await (category, type, count, last) in try await connection.query("""
            SELECT category, type, count, last_position FROM system.event_stats ORDER BY category, type
            """, logger: logger).decode((String, String, Int64, Int64).self) {
            types.append(TypeCount(category: category, type: type, count: count, lastPosition: last))
        }
        var projections: [ProjectionState] = []
        for try await (name, position) in try await connection.query(
            "SELECT projection, position FROM system.checkpoints ORDER BY projection", logger: logger).decode((String, Int64).self) {
            let status = statuses[name]
            projections.append(ProjectionState(name: name, checkpoint: position, lag: max(0, head - position),
                                               ownedHere: includeOwnership ? (status?.isOwner ?? false) : nil,
                                               lastError: status?.lastError))
        }
        var parked: Int64 = 0
        for try await n in try await connection.query("SELECT count(*) FROM system.parked_events", logger: logger)
            .decode(Int64.self) { parked = n }
        // Positions are dense (max + 1 under the log lock), so the head is also the count.
        return LogStats(head: head, totalEvents: head, types: types, projections: projections, parkedEvents: parked)
    }
}
