import EventStore
import Foundation
import Logging
import PostgresNIO

/// Changes to the tables of the public schema: each DDL runs in one transaction with its event
/// (`TableCreated`, `TableAltered`, `TableDropped`, `TableRealtimeChanged`, `TableExposureChanged`,
/// `TableRowSecurityChanged` on `schema-<table>`, written with `system.write_event`), so the log and
/// the schema never disagree; the schema cache reloads after. A table may publish its changes to the
/// realtime channel `table:<name>`: one message per changed row, sent by its triggers.
struct TableCommands: Sendable {
    let client: PostgresClient
    let schema: SchemaCache
    let channels: RealtimeChannels
    let logger: Logger

    /// What `POST /api/database/tables` sends.
    struct Create: Decodable {
        var tableName: String
        var columns: [ColumnDefinition]
        var foreignKeys: [ForeignKeyDefinition]?
        var rlsEnabled: Bool?
        /// Publish the table's changes to the realtime channel `table:<name>`.
        var realtime: Bool?
    }

    /// What `PATCH /api/database/tables/:table/schema` sends.
    struct Alter: Decodable {
        struct UpdateColumn: Decodable {
            var columnName: String
            var newColumnName: String?
            var defaultValue: String?
            var dropDefault: Bool?
        }
        struct Rename: Decodable { var newTableName: String }
        var addColumns: [ColumnDefinition]?
        var dropColumns: [String]?
        var updateColumns: [UpdateColumn]?
        var addForeignKeys: [ForeignKeyDefinition]?
        var dropForeignKeys: [String]?
        var renameTable: Rename?
        var realtime: Bool?
        /// Grant (or take away) `anon` and `authenticated` their row operations on the table.
        var exposed: Bool?
        /// Switch row-level security on or off.
        var rlsEnabled: Bool?
    }

    /// Resolves an API type to a PostgreSQL type (400 otherwise). A name the database parses as exactly
    /// one type is used as written, so modifiers (`numeric(10,2)`, `varchar(20)`) are kept.
    func resolve(_ type: String, on connection: PostgresConnection) async throws -> String {
        if let builtin = TableDDL.builtinType(type) { return builtin }
        guard TableDDL.isPlausibleTypeName(type) else { throw DomainError.invalidInput("Unknown column type \(type)") }
        do {
            // In a savepoint: a name PostgreSQL cannot parse would otherwise abort the DDL transaction.
            try await connection.query("SAVEPOINT resolve_type", logger: logger)
            var known = false
            for try await found in try await connection.query("SELECT to_regtype(\(type)) IS NOT NULL", logger: logger).decode(Bool.self) {
                known = found
            }
            try await connection.query("RELEASE SAVEPOINT resolve_type", logger: logger)
            if known { return type }
        } catch let error as PSQLError where error.code == .server {
            _ = try? await connection.query("ROLLBACK TO SAVEPOINT resolve_type", logger: logger)
        }
        throw DomainError.invalidInput("Unknown column type \(type)")
    }

    /// Creates a table with its event (`TableCreated`) in one transaction; with `realtime`, it publishes
    /// its changes and gets its channel.
    func create(_ body: Create, metadata: EventMetadata) async throws {
        let table = body.tableName
        if let problem = TableDDL.identifierProblem(table, what: "tableName") { throw DomainError.invalidInput(problem) }
        guard !body.columns.isEmpty || true, body.columns.count <= 500 else { throw DomainError.invalidInput("at most 500 columns") }
        var seen = Set<String>()
        for (i, column) in body.columns.enumerated() {
            if let problem = TableDDL.identifierProblem(column.columnName, what: "columns[\(i)].columnName") { throw DomainError.invalidInput(problem) }
            guard seen.insert(column.columnName.lowercased()).inserted else {
                throw DomainError.invalidInput("column \(column.columnName) is listed twice")
            }
        }
        let userPrimaryKey = body.columns.filter { $0.isPrimaryKey == true }.map(\.columnName)
        let rls = body.rlsEnabled ?? true
        let realtime = body.realtime ?? false
        try await client.withConnection { connection in
            try await connection.inTransaction(logger: logger) {
                var parts: [String] = []
                if !seen.contains("id") {
                    parts.append("\"id\" uuid \(userPrimaryKey.isEmpty ? "PRIMARY KEY " : "")DEFAULT gen_random_uuid() NOT NULL")
                }
                for column in body.columns {
                    let type = try await resolve(column.type, on: connection)
                    parts.append(try TableDDL.columnSQL(column, resolvedType: type, inlinePrimaryKey: false))
                    if let target = column.foreignKey { parts.append(try TableDDL.foreignKeySQL(column: column.columnName, target: target)) }
                }
                if !seen.contains("created_at") { parts.append("\"created_at\" timestamptz NOT NULL DEFAULT now()") }
                if !seen.contains("updated_at") { parts.append("\"updated_at\" timestamptz NOT NULL DEFAULT now()") }
                if !userPrimaryKey.isEmpty { parts.append("PRIMARY KEY (\(userPrimaryKey.map(TableDDL.quote).joined(separator: ", ")))") }
                for fk in body.foreignKeys ?? [] {
                    if let problem = TableDDL.identifierProblem(fk.columnName, what: "foreignKeys.columnName") { throw DomainError.invalidInput(problem) }
                    parts.append(try TableDDL.foreignKeySQL(column: fk.columnName, target: ForeignKeyTarget(
                        referenceTable: fk.referenceTable, referenceColumn: fk.referenceColumn, onDelete: fk.onDelete, onUpdate: fk.onUpdate)))
                }
                let q = "public.\(TableDDL.quote(table))"
                var statements = ["CREATE TABLE \(q) (\(parts.joined(separator: ", ")))"]
                if seen.contains("updated_at") == false {
                    statements.append("CREATE TRIGGER insforge_touch_updated_at BEFORE UPDATE ON \(q) FOR EACH ROW EXECUTE FUNCTION system.touch_updated_at()")
                }
                // New tables get row-level security from the event trigger (schema/functions/database/secure_new_tables.sql);
                // system.secure_table adds the admin's policy where the trigger could not be installed.
                statements.append(rls ? "SELECT system.secure_table('\(q)'::regclass)" : "ALTER TABLE \(q) DISABLE ROW LEVEL SECURITY")
                // The admin's, so raw SQL (as project_admin or insforge_sql) may alter and drop it.
                statements.append("ALTER TABLE \(q) OWNER TO project_admin")
                statements.append("SELECT system.set_table_exposed('\(q)'::regclass, true)")
                for statement in statements { try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                try await connection.query("SELECT system.track_table(\(q)::regclass)", logger: logger)
                let event = TableCreated(table: table, columns: body.columns, foreignKeys: body.foreignKeys, rlsEnabled: rls,
                                         sql: statements.joined(separator: ";\n"))
                try await EventStore.write(event, to: "schema-\(table)", metadata: metadata, on: connection, logger: logger)
                if realtime { try await publish(table, true, metadata: metadata, on: connection) }
            }
        }
        if realtime { try await ensureChannel(for: table, metadata: metadata) }
        try await schema.reload()
    }

    /// Alters a table with its events (`TableAltered`, and the realtime, exposure and row-security
    /// changes) in one transaction; returns its name afterwards.
    func alter(_ table: String, _ body: Alter, metadata: EventMetadata) async throws -> String {
        let q = "public.\(TableDDL.quote(table))"
        guard let current = try await TableDescription.load(table, client: client) else { throw DomainError.notFound("Table \(table) does not exist") }
        let types = Dictionary(current.columns.map { ($0.columnName, $0.type) }, uniquingKeysWith: { a, _ in a })
        var finalName = table
        try await client.withConnection { connection in
            try await connection.inTransaction(logger: logger) {
                var statements: [String] = []
                for column in body.addColumns ?? [] {
                    if let problem = TableDDL.identifierProblem(column.columnName, what: "addColumns.columnName") { throw DomainError.invalidInput(problem) }
                    let type = try await resolve(column.type, on: connection)
                    statements.append("ALTER TABLE \(q) ADD COLUMN \(try TableDDL.columnSQL(column, resolvedType: type, inlinePrimaryKey: true))")
                    if let target = column.foreignKey {
                        statements.append("ALTER TABLE \(q) ADD \(try TableDDL.foreignKeySQL(column: column.columnName, target: target))")
                    }
                }
                for name in body.dropColumns ?? [] {
                    guard types[name] != nil else { throw DomainError.invalidInput("column \(name) does not exist") }
                    guard !TableDDL.automaticColumns.contains(name) else { throw DomainError.invalidInput("column \(name) cannot be dropped") }
                    statements.append("ALTER TABLE \(q) DROP COLUMN \(TableDDL.quote(name))")
                }
                for update in body.updateColumns ?? [] {
                    guard let type = types[update.columnName] else { throw DomainError.invalidInput("column \(update.columnName) does not exist") }
                    if let value = update.defaultValue {
                        statements.append("ALTER TABLE \(q) ALTER COLUMN \(TableDDL.quote(update.columnName)) SET DEFAULT \(TableDDL.defaultExpression(value, type: type))")
                    } else if update.dropDefault == true {
                        statements.append("ALTER TABLE \(q) ALTER COLUMN \(TableDDL.quote(update.columnName)) DROP DEFAULT")
                    }
                    if let newName = update.newColumnName {
                        if let problem = TableDDL.identifierProblem(newName, what: "newColumnName") { throw DomainError.invalidInput(problem) }
                        statements.append("ALTER TABLE \(q) RENAME COLUMN \(TableDDL.quote(update.columnName)) TO \(TableDDL.quote(newName))")
                    }
                }
                for fk in body.addForeignKeys ?? [] {
                    if let problem = TableDDL.identifierProblem(fk.columnName, what: "addForeignKeys.columnName") { throw DomainError.invalidInput(problem) }
                    statements.append("ALTER TABLE \(q) ADD " + (try TableDDL.foreignKeySQL(column: fk.columnName, target: ForeignKeyTarget(
                        referenceTable: fk.referenceTable, referenceColumn: fk.referenceColumn, onDelete: fk.onDelete, onUpdate: fk.onUpdate))))
                }
                for name in body.dropForeignKeys ?? [] {
                    if let problem = TableDDL.identifierProblem(name, what: "dropForeignKeys") { throw DomainError.invalidInput(problem) }
                    statements.append("ALTER TABLE \(q) DROP CONSTRAINT \(TableDDL.quote(name))")
                }
                if let rename = body.renameTable {
                    if let problem = TableDDL.identifierProblem(rename.newTableName, what: "newTableName") { throw DomainError.invalidInput(problem) }
                    statements.append("ALTER TABLE \(q) RENAME TO \(TableDDL.quote(rename.newTableName))")
                    finalName = rename.newTableName
                }
                guard !statements.isEmpty || body.realtime != nil || body.exposed != nil || body.rlsEnabled != nil else {
                    throw DomainError.invalidInput("nothing to change")
                }
                if !statements.isEmpty {
                    for statement in statements { try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                    let event = TableAltered(table: table, newTable: finalName == table ? nil : finalName, sql: statements.joined(separator: ";\n"))
                    try await EventStore.write(event, to: "schema-\(table)", metadata: metadata, on: connection, logger: logger)
                }
                if let realtime = body.realtime, realtime != current.realtime {
                    try await publish(finalName, realtime, metadata: metadata, on: connection)
                }
                let renamed = "public.\(TableDDL.quote(finalName))"
                if let enabled = body.rlsEnabled, enabled != current.rlsEnabled {
                    let sql = enabled ? "SELECT system.secure_table('\(renamed)'::regclass)" : "ALTER TABLE \(renamed) DISABLE ROW LEVEL SECURITY"
                    try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
                    try await EventStore.write(TableRowSecurityChanged(table: finalName, enabled: enabled), to: "schema-\(finalName)",
                                               metadata: metadata, on: connection, logger: logger)
                }
                if let exposed = body.exposed, exposed != current.exposed {
                    try await connection.query("SELECT system.set_table_exposed(\(renamed)::regclass, \(exposed))", logger: logger)
                    try await EventStore.write(TableExposureChanged(table: finalName, exposed: exposed), to: "schema-\(finalName)",
                                               metadata: metadata, on: connection, logger: logger)
                }
            }
        }
        // A published table's channel follows its name, so a renamed one needs a channel too.
        if body.realtime ?? current.realtime, body.realtime == true || finalName != table {
            try await ensureChannel(for: finalName, metadata: metadata)
        }
        try await schema.reload()
        return finalName
    }

    /// Drops a table with its event (`TableDropped`) in one transaction.
    func drop(_ table: String, metadata: EventMetadata) async throws {
        try await client.withConnection { connection in
            try await connection.inTransaction(logger: logger) {
                var exists = false
                for try await found in try await connection.query(
                    "SELECT to_regclass(\("public.\(TableDDL.quote(table))")) IS NOT NULL", logger: logger).decode(Bool.self) { exists = found }
                guard exists else { throw DomainError.notFound("Table \(table) does not exist") }
                try await connection.query(PostgresQuery(unsafeSQL: "DROP TABLE public.\(TableDDL.quote(table))"), logger: logger)
                try await EventStore.write(TableDropped(table: table), to: "schema-\(table)", metadata: metadata, on: connection, logger: logger)
            }
        }
        try await schema.reload()
    }

    /// The realtime channel a published table's changes go to.
    static func channelName(_ table: String) -> String { "table:\(table)" }

    /// Makes sure a channel takes `table:<name>`: any enabled one that matches (an admin's `table:%`
    /// will do) or one with exactly that pattern, even disabled (an admin's choice); else one is created.
    /// Called once the table publishes (committed): until the channel exists its changes are not sent.
    func ensureChannel(for table: String, metadata: EventMetadata) async throws {
        let name = Self.channelName(table)
        for try await taken in try await client.query("""
            SELECT EXISTS (SELECT 1 FROM realtime.resolve(\(name))) OR EXISTS (SELECT 1 FROM realtime.channels WHERE pattern = \(name))
            """, logger: logger).decode(Bool.self) where taken { return }
        do {
            _ = try await channels.create(RealtimeChannels.Input(pattern: name, description: "Changes of table \(table)"), metadata: metadata)
        } catch let error as DomainError where error.code.kind == .conflict {
            // Made meanwhile by a concurrent request: that one will do.
        }
    }

    /// Turns publishing of `table` on or off, with its event (inside the caller's transaction).
    func publish(_ table: String, _ enabled: Bool, metadata: EventMetadata, on connection: PostgresConnection) async throws {
        try await connection.query("SELECT realtime.set_table_publishing(\("public.\(TableDDL.quote(table))")::regclass, \(enabled))",
                                   logger: logger)
        try await EventStore.write(TableRealtimeChanged(table: table, enabled: enabled, channel: Self.channelName(table)),
                                   to: "schema-\(table)", metadata: metadata, on: connection, logger: logger)
    }
}
