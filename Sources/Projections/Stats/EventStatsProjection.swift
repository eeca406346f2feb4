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
        // Runs of events of one stream and type (common: commands append several) are counted
        // before the category is cut and hashed once for the run.
        var i = events.startIndex
        while i < events.endIndex {
            let first = events[i]
            var last = first.position, n: Int64 = 0
            while i < events.endIndex, events[i].streamId == first.streamId, events[i].type == first.type {
                last = max(last, events[i].position)
                n += 1
                i += 1
            }
            let key = Key(category: first.category, type: first.type)
            let previous = counts[key] ?? (0, 0)
            counts[key] = (previous.count + n, max(previous.last, last))
        }
        let keys = Array(counts.keys)
        try await context.write(AddCounts(categories: keys.map(\.category), types: keys.map(\.type),
                                          counts: keys.map { counts[$0]!.count }, lasts: keys.map { counts[$0]!.last }))
    }

    struct AddCounts: ReadModelWrite {
        static let table = EventStatsProjection.table
        static func sql(writingTo table: String) -> String {
            """
            INSERT INTO \(table) AS s (category, type, count, last_position)
            SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[])
            ON CONFLICT (category, type) DO UPDATE
            SET count = s.count + excluded.count, last_position = greatest(s.last_position, excluded.last_position)
            """
        }
        var categories: [String]
        var types: [String]
        var counts: [Int64]
        var lasts: [Int64]

        func makeBindings() throws -> PostgresBindings { .of(categories, types, counts, lasts) }
    }
}
