import Foundation
import PostgresNIO

/// The log reads that followers run at every wake-up, as statements prepared once per connection.
///
/// Sent as one-off queries, PostgreSQL parsed and planned them every time, and that cost more than
/// running them: during a realtime run (60 messages/s) planning alone took 1.5 s of every 8 against
/// 1.1 s of execution for everything else. One statement per filter shape, each shape taking the
/// same parameters (typed up front, so a shape may leave some unused):
/// `$1` after (exclusive), `$2` limit, `$3` category, `$4` types, `$5` until (inclusive).
struct PreparedLogRead<Shape: LogReadShape>: PostgresPreparedStatement {
    typealias Row = PostgresRow
    static var sql: String { Shape.sql }
    static var bindingDataTypes: [PostgresDataType] { [.int8, .int8, .text, .textArray, .int8] }

    var after: Int64
    var limit: Int
    var filter: EventFilter

    func makeBindings() throws -> PostgresBindings {
        .of(after, Int64(limit), filter.category, filter.types.map { Array($0).sorted() }, filter.until)
    }

    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}

/// A prepared log read, whatever its shape.
protocol LogRead: Sendable {
    func rows(on runner: some PostgresQueryRunner) async throws -> AsyncThrowingMapSequence<PostgresRowSequence, PostgresRow>
}

extension PreparedLogRead: LogRead {
    func rows(on runner: some PostgresQueryRunner) async throws -> AsyncThrowingMapSequence<PostgresRowSequence, PostgresRow> {
        try await runner.runPrepared(self)
    }
}

protocol LogReadShape: Sendable {
    static var sql: String { get }
}

/// The shapes, by filter. One-off reads (`EventStore.oneOff`) use the same SQL.
enum LogReadShapes {
    /// A page of `columns` after `$1`, at most `$2` events.
    static func page(_ columns: String) -> (String) -> String {
        { condition in "SELECT \(columns) FROM system.events WHERE position > $1 \(condition) ORDER BY position LIMIT $2" }
    }

    /// A page of every column and the log's head in one snapshot (subscriptions).
    static func headed(_ condition: String) -> String {
        """
        WITH h AS (SELECT coalesce(max(position), 0) AS head FROM system.events)
        SELECT h.head, e.* FROM h LEFT JOIN LATERAL (
            \(page(EventStore.columns)("AND position <= h.head " + condition))) e ON true
        ORDER BY e.position
        """
    }

    /// A page up to `$5` (projection runners and replay).
    static func until(_ columns: String, _ condition: String) -> String { page(columns)("AND position <= $5 " + condition) }

    enum Headed: LogReadShape { static let sql = headed("") }
    enum HeadedCategory: LogReadShape { static let sql = headed("AND category = $3") }
    enum HeadedTypes: LogReadShape { static let sql = headed("AND type = ANY($4)") }
    enum Until: LogReadShape { static let sql = until(EventStore.columns, "") }
    enum UntilTypes: LogReadShape { static let sql = until(EventStore.columns, "AND type = ANY($4)") }
    enum HeadersUntil: LogReadShape { static let sql = until(EventStore.headerColumns, "") }
    enum HeadersUntilTypes: LogReadShape { static let sql = until(EventStore.headerColumns, "AND type = ANY($4)") }
}

extension EventFilter {
    /// Which filters the prepared reads cover: at most one of category and types, no stream.
    fileprivate var preparedShape: (category: Bool, types: Bool)? {
        guard streamId == nil, category == nil || types == nil else { return nil }
        return (category != nil, types != nil)
    }
}

extension EventStore {
    /// `readAllWithHead`'s statement for `filter`, when one is prepared.
    static func preparedHeadedRead(after position: Int64, limit: Int, filter: EventFilter) -> (any LogRead)? {
        guard filter.until == nil, let shape = filter.preparedShape else { return nil }
        switch shape {
        case (false, false): return PreparedLogRead<LogReadShapes.Headed>(after: position, limit: limit, filter: filter)
        case (true, _): return PreparedLogRead<LogReadShapes.HeadedCategory>(after: position, limit: limit, filter: filter)
        case (_, true): return PreparedLogRead<LogReadShapes.HeadedTypes>(after: position, limit: limit, filter: filter)
        }
    }

    /// `readAll`'s statement for `filter`, when one is prepared (reads up to a bound, by type or all).
    static func preparedRead(after position: Int64, limit: Int, filter: EventFilter, payload: Bool) -> (any LogRead)? {
        guard filter.until != nil, let shape = filter.preparedShape, !shape.category else { return nil }
        switch (payload, shape.types) {
        case (true, false): return PreparedLogRead<LogReadShapes.Until>(after: position, limit: limit, filter: filter)
        case (true, true): return PreparedLogRead<LogReadShapes.UntilTypes>(after: position, limit: limit, filter: filter)
        case (false, false): return PreparedLogRead<LogReadShapes.HeadersUntil>(after: position, limit: limit, filter: filter)
        case (false, true): return PreparedLogRead<LogReadShapes.HeadersUntilTypes>(after: position, limit: limit, filter: filter)
        }
    }
}

/// The columns of a log read, in order, with integers and text taken straight from their binary
/// form: the generic `decode` was most of a catch-up's CPU. Other types and formats go through it.
struct LogRowReader {
    private var cells: PostgresRow.Iterator

    init(_ row: PostgresRow) { cells = row.makeIterator() }

    mutating func int64() throws -> Int64 {
        let cell = try nextCell()
        if cell.format == .binary, cell.dataType == .int8, let bytes = cell.bytes, bytes.readableBytes == 8,
           let value = bytes.getInteger(at: bytes.readerIndex, as: Int64.self) {
            return value
        }
        return try cell.decode(Int64.self)
    }

    mutating func string() throws -> String {
        let cell = try nextCell()
        if cell.format == .binary, cell.dataType == .text || cell.dataType == .varchar, let bytes = cell.bytes {
            return String(buffer: bytes)
        }
        return try cell.decode(String.self)
    }

    mutating func next<T: PostgresDecodable>(_ type: T.Type) throws -> T { try nextCell().decode(T.self) }

    private mutating func nextCell() throws -> PostgresCell {
        guard let cell = cells.next() else { throw PostgresDecodingError.Code.missingData }
        return cell
    }
}
