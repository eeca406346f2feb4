import Foundation

// Schema events on `schema-<table>`; record changes (`RecordsInserted`, `RecordsUpdated`,
// `RecordsDeleted` on `table-<name>`) are queued by triggers in SQL
// (schema/functions/database/capture_record_changes.sql).

/// A table was created through the tables API; `sql` is the DDL that ran with it.
public struct TableCreated: DomainEvent {
    public static let type = "TableCreated"
    public var table: String
    public var columns: JSONValue
    public var foreignKeys: JSONValue?
    public var rlsEnabled: Bool
    public var sql: String

    public init<C: Encodable, F: Encodable>(table: String, columns: C, foreignKeys: F?, rlsEnabled: Bool, sql: String) {
        self.table = table
        self.columns = (try? JSONCoding.decoder.decode(JSONValue.self, from: JSONCoding.encoder.encode(columns))) ?? .null
        self.foreignKeys = foreignKeys.flatMap { try? JSONCoding.decoder.decode(JSONValue.self, from: JSONCoding.encoder.encode($0)) }
        self.rlsEnabled = rlsEnabled
        self.sql = sql
    }
}

/// A table was altered (columns, defaults, keys, or its name).
public struct TableAltered: DomainEvent {
    public static let type = "TableAltered"
    public var table: String
    public var newTable: String?
    public var sql: String
    public init(table: String, newTable: String?, sql: String) { self.table = table; self.newTable = newTable; self.sql = sql }
}

/// A table was dropped.
public struct TableDropped: DomainEvent {
    public static let type = "TableDropped"
    public var table: String
    public init(table: String) { self.table = table }
}

/// A table's changes started or stopped going to its realtime channel (`channel`, `table:<name>`).
public struct TableRealtimeChanged: DomainEvent {
    public static let type = "TableRealtimeChanged"
    public var table: String
    public var enabled: Bool
    public var channel: String
    public init(table: String, enabled: Bool, channel: String) { self.table = table; self.enabled = enabled; self.channel = channel }
}

/// A table was exposed to the request roles `anon` and `authenticated` (their row operations granted),
/// or taken from them. Tables the tables API makes are exposed when made; others only by this event.
public struct TableExposureChanged: DomainEvent {
    public static let type = "TableExposureChanged"
    public var table: String
    public var exposed: Bool
    public init(table: String, exposed: Bool) { self.table = table; self.exposed = exposed }
}

/// A table's row-level security was switched on or off by an admin.
public struct TableRowSecurityChanged: DomainEvent {
    public static let type = "TableRowSecurityChanged"
    public var table: String
    public var enabled: Bool
    public init(table: String, enabled: Bool) { self.table = table; self.enabled = enabled }
}

/// An admin ran raw SQL (the statements' text; parameter values are not kept).
public struct RawSQLExecuted: DomainEvent {
    public static let type = "RawSQLExecuted"
    public var query: String
    public var parameterCount: Int
    public var unrestricted: Bool
    public var rowCount: Int
    public init(query: String, parameterCount: Int, unrestricted: Bool, rowCount: Int) {
        self.query = query
        self.parameterCount = parameterCount
        self.unrestricted = unrestricted
        self.rowCount = rowCount
    }
}
