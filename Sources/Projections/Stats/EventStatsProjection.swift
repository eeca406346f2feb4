import EventStore
import PostgresNIO

/// Async read model: how many events of each category and type the log holds (`system.event_stats`).
/// Run once per cluster (advisory-lock ownership): applying an event twice would over-count.
public struct EventStatsProjection: Projection {
    public static let table = ReadModelTable(schema: "system", name: "event_stats", keyColumns: ["category", "type"])

    public init() {}

    public var name: String { "event_stats" }
    public var tables: [ReadModelTable] { [Self.table] }
    public var eventTypes: Set<String>? { nil }
    public var needsPayload: Bool { false }

    public func apply(_ events: [RecordedEvent], in context: ProjectionContext) async throws {
        struct Key: Hashable { var category: String; var type: String }
        var counts: [Key: (count: Int64, last: Int64)] = [:]
        for event in events {
            let key = Key(category: event.category, type: event.type)
            let previous = counts[key] ?? (0, 0)
            counts[key] = (previous.count + 1, max(previous.last, event.position))
        }
        let keys = Array(counts.keys)
        let table = context.name(of: Self.table)
        try await context.connection.query("""
            INSERT INTO \(unescaped: table) AS s (category, type, count, last_position)
            SELECT * FROM unnest(\(keys.map(\.category)), \(keys.map(\.type)),
                                 \(keys.map { counts[$0]!.count }), \(keys.map { counts[$0]!.last }))
            ON CONFLICT (category, type) DO UPDATE
            SET count = s.count + excluded.count, last_position = greatest(s.last_position, excluded.last_position)
            """, logger: context.logger)
    }
}
