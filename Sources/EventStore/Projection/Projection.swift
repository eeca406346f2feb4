import Logging
import PostgresNIO

/// A read model built from the log.
///
/// Inline projections run inside the append transaction (the API reads them back at once);
/// async projections run in a runner actor that follows the log and stores its checkpoint
/// in the same transaction as its writes. Either way `apply` only writes through `context`,
/// so `events replay --verify` can rebuild the same tables into a scratch schema.
public protocol Projection: Sendable {
    /// Stable name: the checkpoint key.
    var name: String { get }
    /// The tables this projection owns (and nothing else writes).
    var tables: [ReadModelTable] { get }
    /// Event types it reads; `nil` means every event.
    var eventTypes: Set<String>? { get }
    /// Whether `apply` reads more than `position`, `streamId`, `streamVersion` and `type`. When false
    /// only those are fetched (`data`/`metadata` are `{}`, `eventId` zero, `recordedAt` the epoch):
    /// catch-up then moves a fraction of the bytes.
    var needsPayload: Bool { get }
    /// Applies events (in log order) to the read model.
    func apply(_ events: [RecordedEvent], in context: ProjectionContext) async throws
}

extension Projection {
    /// Most projections read the payload.
    public var needsPayload: Bool { true }
}

/// A read-model table and the columns that order its rows for checksums.
public struct ReadModelTable: Sendable, Hashable {
    public var schema: String
    public var name: String
    /// Primary-key columns, used to order rows when comparing live and replayed tables.
    public var keyColumns: [String]

    public init(schema: String, name: String, keyColumns: [String]) {
        self.schema = schema
        self.name = name
        self.keyColumns = keyColumns
    }

    /// `"schema"."name"`.
    public var qualifiedName: String { "\(SQLIdentifier.quote(schema)).\(SQLIdentifier.quote(name))" }
}

/// Where a projection writes: the live tables, or their scratch copies during a replay.
public struct ProjectionContext: Sendable {
    public let connection: PostgresConnection
    public let logger: Logger
    /// When set, every table resolves to `"<scratchSchema>"."<schema>__<name>"`.
    public let scratchSchema: String?

    public init(connection: PostgresConnection, logger: Logger, scratchSchema: String? = nil) {
        self.connection = connection
        self.logger = logger
        self.scratchSchema = scratchSchema
    }

    /// The quoted name to write `table` to in this context.
    public func name(of table: ReadModelTable) -> String {
        guard let scratchSchema else { return table.qualifiedName }
        return "\(SQLIdentifier.quote(scratchSchema)).\(SQLIdentifier.quote(table.schema + "__" + table.name))"
    }
}

/// A projection's write to one of its tables whose SQL differs only by the table's name. Writing
/// the live table it is a statement prepared once per connection (runners write at every wake-up of
/// the log, and parsing and planning cost more than running); writing a replay's scratch copy it is
/// sent as a one-off query. Parameters need explicit types in the SQL (`$1::text[]`).
public protocol ReadModelWrite: PostgresPreparedStatement where Row == () {
    static var table: ReadModelTable { get }
    static func sql(writingTo table: String) -> String
}

extension ReadModelWrite {
    public static var sql: String { sql(writingTo: table.qualifiedName) }
    public func decodeRow(_ row: PostgresRow) throws {}
}

extension ProjectionContext {
    public func write<Write: ReadModelWrite>(_ statement: Write) async throws {
        if scratchSchema == nil {
            _ = try await connection.execute(statement, logger: logger)
        } else {
            try await connection.query(PostgresQuery(unsafeSQL: Write.sql(writingTo: name(of: Write.table)), binds: statement.makeBindings()),
                                       logger: logger)
        }
    }
}

/// Quoting of SQL identifiers (for names that were validated or are our own).
public enum SQLIdentifier {
    /// `"name"` with inner quotes doubled.
    public static func quote(_ name: String) -> String {
        // Most names have no quote to double: skip Foundation's (slow) replacing then.
        guard name.utf8.contains(UInt8(ascii: "\"")) else { return "\"" + name + "\"" }
        return "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
