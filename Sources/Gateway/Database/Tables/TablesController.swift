import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import PostgresNIO

/// `/api/database/tables` (admin): create, describe, alter and drop tables of the public schema.
/// Each DDL runs in one transaction with its event (`TableCreated`, `TableAltered`, `TableDropped`
/// on `schema-<table>`), so the log and the schema never disagree; the schema cache reloads after.
/// A table may publish its changes to the realtime channel `table:<name>` (`realtime: true`,
/// `TableRealtimeChanged`): one message per changed row, sent by triggers (schema/013_table_realtime.sql).
struct TablesController {
    let client: PostgresClient
    let schema: SchemaCache
    let channels: RealtimeChannels
    let logger: Logger

    static let column = JSONSchema.object(["columnName": .name, "type": .string(minLength: 1, maxLength: 100), "defaultValue": .text,
                                           "isPrimaryKey": .boolean, "isNullable": .boolean, "isUnique": .boolean],
                                          required: ["columnName", "type"])
    static let foreignKey = JSONSchema.object(["columnName": .name, "referenceTable": .name, "referenceColumn": .name,
                                               "onDelete": .string(oneOf: ["CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION"]),
                                               "onUpdate": .string(oneOf: ["CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION"])],
                                              required: ["columnName", "referenceTable", "referenceColumn"])

    func register(_ routes: RouteTable) {
        routes.add(.get, "/api/database/tables", "The tables of the public schema", access: .admin, list)
        routes.add(.post, "/api/database/tables", "Create a table (id, created_at, updated_at added; RLS on by default; realtime: publish its changes to table:<name>)",
                   access: .admin, body: .object(["tableName": .name, "columns": .array(Self.column, maxItems: 500),
                                                  "foreignKeys": .array(Self.foreignKey), "rlsEnabled": .boolean, "realtime": .boolean],
                                                 required: ["tableName", "columns"]), create)
        routes.add(.get, "/api/database/tables/:table/schema", "A table's columns, keys and RLS state", access: .admin, describe)
        routes.add(.patch, "/api/database/tables/:table/schema", "Alter a table: add/drop/rename columns, defaults, foreign keys, rename, realtime publishing, exposure to anon/authenticated, RLS",
                   access: .admin, body: .object([
                       "addColumns": .array(Self.column), "dropColumns": .array(.name),
                       "updateColumns": .array(.object(["columnName": .name, "newColumnName": .name, "defaultValue": .text, "dropDefault": .boolean],
                                                       required: ["columnName"])),
                       "addForeignKeys": .array(Self.foreignKey), "dropForeignKeys": .array(.name),
                       "renameTable": .object(["newTableName": .name], required: ["newTableName"]),
                       "realtime": .boolean, "exposed": .boolean, "rlsEnabled": .boolean]), alter)
        routes.add(.delete, "/api/database/tables/:table", "Drop a table", access: .admin, drop)
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        var names: [String] = []
        for try await name in try await client.query("""
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY c.relname
            """).decode(String.self) { names.append(name) }
        return try .json(encoding: names)
    }

    func tableName(_ context: AppRequestContext) throws -> String {
        let name = context.parameters.get("table") ?? ""
        if let problem = TableDDL.identifierProblem(name, what: "table name") { throw APIError.invalidInput(problem) }
        return name
    }

    struct CreateBody: Decodable {
        var tableName: String
        var columns: [ColumnDefinition]
        var foreignKeys: [ForeignKeyDefinition]?
        var rlsEnabled: Bool?
        /// Publish the table's changes to the realtime channel `table:<name>`.
        var realtime: Bool?
    }

    /// Resolves an API type to a PostgreSQL type name the database knows (400 otherwise).
    /// Resolves an API type to a PostgreSQL type (400 otherwise). A name the database parses as exactly
    /// one type is used as written, so modifiers (`numeric(10,2)`, `varchar(20)`) are kept.
    func resolve(_ type: String, on connection: PostgresConnection) async throws -> String {
        if let builtin = TableDDL.builtinType(type) { return builtin }
        guard TableDDL.isPlausibleTypeName(type) else { throw APIError.invalidInput("Unknown column type \(type)") }
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
        throw APIError.invalidInput("Unknown column type \(type)")
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await request.decodeJSON(CreateBody.self, context: context)
        let table = body.tableName
        if let problem = TableDDL.identifierProblem(table, what: "tableName") { throw APIError.invalidInput(problem) }
        guard !body.columns.isEmpty || true, body.columns.count <= 500 else { throw APIError.invalidInput("at most 500 columns") }
        var seen = Set<String>()
        for (i, column) in body.columns.enumerated() {
            if let problem = TableDDL.identifierProblem(column.columnName, what: "columns[\(i)].columnName") { throw APIError.invalidInput(problem) }
            guard seen.insert(column.columnName.lowercased()).inserted else {
                throw APIError.invalidInput("column \(column.columnName) is listed twice")
            }
        }
        let userPrimaryKey = body.columns.filter { $0.isPrimaryKey == true }.map(\.columnName)
        let rls = body.rlsEnabled ?? true
        let metadata = context.eventMetadata
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
                    if let problem = TableDDL.identifierProblem(fk.columnName, what: "foreignKeys.columnName") { throw APIError.invalidInput(problem) }
                    parts.append(try TableDDL.foreignKeySQL(column: fk.columnName, target: ForeignKeyTarget(
                        referenceTable: fk.referenceTable, referenceColumn: fk.referenceColumn, onDelete: fk.onDelete, onUpdate: fk.onUpdate)))
                }
                let q = "public.\(TableDDL.quote(table))"
                var statements = ["CREATE TABLE \(q) (\(parts.joined(separator: ", ")))"]
                if seen.contains("updated_at") == false {
                    statements.append("CREATE TRIGGER insforge_touch_updated_at BEFORE UPDATE ON \(q) FOR EACH ROW EXECUTE FUNCTION system.touch_updated_at()")
                }
                // New tables get row-level security from the event trigger (schema/017_table_exposure.sql);
                // system.secure_table adds the admin's policy where the trigger could not be installed.
                statements.append(rls ? "SELECT system.secure_table('\(q)'::regclass)" : "ALTER TABLE \(q) DISABLE ROW LEVEL SECURITY")
                // The admin's, so raw SQL (as project_admin or insforge_sql) may alter and drop it.
                statements.append("ALTER TABLE \(q) OWNER TO project_admin")
                statements.append("SELECT system.set_table_exposed('\(q)'::regclass, true)")
                for statement in statements { try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                try await connection.query("SELECT system.track_table(\(q)::regclass)", logger: logger)
                let event = TableCreated(table: table, columns: body.columns, foreignKeys: body.foreignKeys, rlsEnabled: rls,
                                         sql: statements.joined(separator: ";\n"))
                try await Self.appendEvent(event, stream: "schema-\(table)", metadata: metadata, on: connection, logger: logger)
                if realtime { try await publish(table, true, metadata: metadata, on: connection) }
            }
        }
        if realtime { try await ensureChannel(for: table, metadata: metadata) }
        try await schema.reload()
        return try .json(encoding: Created(message: "Table created successfully", tableName: table,
                                          columns: body.columns, autoFields: TableDDL.automaticColumns,
                                          nextActions: "Insert records with POST /api/database/records/\(table)"), status: .created)
    }

    struct Created: Encodable {
        var message: String
        var tableName: String
        var columns: [ColumnDefinition]
        var autoFields: [String]
        var nextActions: String
    }

    /// Appends `event` on `connection` (inside the caller's transaction) with `system.write_event`.
    static func appendEvent<E: DomainEvent>(_ event: E, stream: String, metadata: EventMetadata, on connection: PostgresConnection,
                                            logger: Logger) async throws {
        let data = try JSONCoding.encodeString(event)
        try await connection.query("""
            SELECT system.write_event(\(EventID.next()), \(stream), \(E.type), \(data)::jsonb, \(metadata.json)::jsonb)
            """, logger: logger)
    }

    @Sendable func describe(_ request: Request, context: AppRequestContext) async throws -> Response {
        let table = try tableName(context)
        guard let description = try await TableDescription.load(table, client: client) else {
            throw APIError.notFound("Table \(table) does not exist")
        }
        return try .json(encoding: description)
    }

    struct AlterBody: Decodable {
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

    @Sendable func alter(_ request: Request, context: AppRequestContext) async throws -> Response {
        let table = try tableName(context)
        let body = try await request.decodeJSON(AlterBody.self, context: context)
        let q = "public.\(TableDDL.quote(table))"
        let metadata = context.eventMetadata
        guard let current = try await TableDescription.load(table, client: client) else { throw APIError.notFound("Table \(table) does not exist") }
        let types = Dictionary(current.columns.map { ($0.columnName, $0.type) }, uniquingKeysWith: { a, _ in a })
        var finalName = table
        try await client.withConnection { connection in
            try await connection.inTransaction(logger: logger) {
                var statements: [String] = []
                for column in body.addColumns ?? [] {
                    if let problem = TableDDL.identifierProblem(column.columnName, what: "addColumns.columnName") { throw APIError.invalidInput(problem) }
                    let type = try await resolve(column.type, on: connection)
                    statements.append("ALTER TABLE \(q) ADD COLUMN \(try TableDDL.columnSQL(column, resolvedType: type, inlinePrimaryKey: true))")
                    if let target = column.foreignKey {
                        statements.append("ALTER TABLE \(q) ADD \(try TableDDL.foreignKeySQL(column: column.columnName, target: target))")
                    }
                }
                for name in body.dropColumns ?? [] {
                    guard types[name] != nil else { throw APIError.invalidInput("column \(name) does not exist") }
                    guard !TableDDL.automaticColumns.contains(name) else { throw APIError.invalidInput("column \(name) cannot be dropped") }
                    statements.append("ALTER TABLE \(q) DROP COLUMN \(TableDDL.quote(name))")
                }
                for update in body.updateColumns ?? [] {
                    guard let type = types[update.columnName] else { throw APIError.invalidInput("column \(update.columnName) does not exist") }
                    if let value = update.defaultValue {
                        statements.append("ALTER TABLE \(q) ALTER COLUMN \(TableDDL.quote(update.columnName)) SET DEFAULT \(TableDDL.defaultExpression(value, type: type))")
                    } else if update.dropDefault == true {
                        statements.append("ALTER TABLE \(q) ALTER COLUMN \(TableDDL.quote(update.columnName)) DROP DEFAULT")
                    }
                    if let newName = update.newColumnName {
                        if let problem = TableDDL.identifierProblem(newName, what: "newColumnName") { throw APIError.invalidInput(problem) }
                        statements.append("ALTER TABLE \(q) RENAME COLUMN \(TableDDL.quote(update.columnName)) TO \(TableDDL.quote(newName))")
                    }
                }
                for fk in body.addForeignKeys ?? [] {
                    if let problem = TableDDL.identifierProblem(fk.columnName, what: "addForeignKeys.columnName") { throw APIError.invalidInput(problem) }
                    statements.append("ALTER TABLE \(q) ADD " + (try TableDDL.foreignKeySQL(column: fk.columnName, target: ForeignKeyTarget(
                        referenceTable: fk.referenceTable, referenceColumn: fk.referenceColumn, onDelete: fk.onDelete, onUpdate: fk.onUpdate))))
                }
                for name in body.dropForeignKeys ?? [] {
                    if let problem = TableDDL.identifierProblem(name, what: "dropForeignKeys") { throw APIError.invalidInput(problem) }
                    statements.append("ALTER TABLE \(q) DROP CONSTRAINT \(TableDDL.quote(name))")
                }
                if let rename = body.renameTable {
                    if let problem = TableDDL.identifierProblem(rename.newTableName, what: "newTableName") { throw APIError.invalidInput(problem) }
                    statements.append("ALTER TABLE \(q) RENAME TO \(TableDDL.quote(rename.newTableName))")
                    finalName = rename.newTableName
                }
                guard !statements.isEmpty || body.realtime != nil || body.exposed != nil || body.rlsEnabled != nil else {
                    throw APIError.invalidInput("nothing to change")
                }
                if !statements.isEmpty {
                    for statement in statements { try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                    let event = TableAltered(table: table, newTable: finalName == table ? nil : finalName, sql: statements.joined(separator: ";\n"))
                    try await Self.appendEvent(event, stream: "schema-\(table)", metadata: metadata, on: connection, logger: logger)
                }
                if let realtime = body.realtime, realtime != current.realtime {
                    try await publish(finalName, realtime, metadata: metadata, on: connection)
                }
                let renamed = "public.\(TableDDL.quote(finalName))"
                if let enabled = body.rlsEnabled, enabled != current.rlsEnabled {
                    let sql = enabled ? "SELECT system.secure_table('\(renamed)'::regclass)" : "ALTER TABLE \(renamed) DISABLE ROW LEVEL SECURITY"
                    try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
                    try await Self.appendEvent(TableRowSecurityChanged(table: finalName, enabled: enabled), stream: "schema-\(finalName)",
                                               metadata: metadata, on: connection, logger: logger)
                }
                if let exposed = body.exposed, exposed != current.exposed {
                    try await connection.query("SELECT system.set_table_exposed(\(renamed)::regclass, \(exposed))", logger: logger)
                    try await Self.appendEvent(TableExposureChanged(table: finalName, exposed: exposed), stream: "schema-\(finalName)",
                                               metadata: metadata, on: connection, logger: logger)
                }
            }
        }
        // A published table's channel follows its name, so a renamed one needs a channel too.
        if body.realtime ?? current.realtime, body.realtime == true || finalName != table {
            try await ensureChannel(for: finalName, metadata: metadata)
        }
        try await schema.reload()
        return try .json(encoding: ["message": "Table altered successfully", "tableName": finalName])
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
        try await Self.appendEvent(TableRealtimeChanged(table: table, enabled: enabled, channel: Self.channelName(table)),
                                   stream: "schema-\(table)", metadata: metadata, on: connection, logger: logger)
    }

    @Sendable func drop(_ request: Request, context: AppRequestContext) async throws -> Response {
        let table = try tableName(context)
        let metadata = context.eventMetadata
        try await client.withConnection { connection in
            try await connection.inTransaction(logger: logger) {
                var exists = false
                for try await found in try await connection.query(
                    "SELECT to_regclass(\("public.\(TableDDL.quote(table))")) IS NOT NULL", logger: logger).decode(Bool.self) { exists = found }
                guard exists else { throw APIError.notFound("Table \(table) does not exist") }
                try await connection.query(PostgresQuery(unsafeSQL: "DROP TABLE public.\(TableDDL.quote(table))"), logger: logger)
                try await Self.appendEvent(TableDropped(table: table), stream: "schema-\(table)", metadata: metadata, on: connection, logger: logger)
            }
        }
        try await schema.reload()
        return try .json(encoding: ["message": "Table deleted successfully", "tableName": table])
    }
}

/// `GET /tables/:t/schema`: `{tableName, columns: [{columnName, type, isNullable, isUnique, isPrimaryKey, defaultValue, foreignKey?}],
/// rlsEnabled, realtime}`.
struct TableDescription: Encodable {
    struct Column: Encodable {
        var columnName: String
        var type: String
        var isNullable: Bool
        var isUnique: Bool
        var isPrimaryKey: Bool
        var defaultValue: String?
        var foreignKey: ForeignKeyTarget?

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(columnName, forKey: .columnName)
            try c.encode(type, forKey: .type)
            try c.encode(isNullable, forKey: .isNullable)
            try c.encode(isUnique, forKey: .isUnique)
            try c.encode(isPrimaryKey, forKey: .isPrimaryKey)
            try c.encode(defaultValue, forKey: .defaultValue)  // null when there is none
            try c.encodeIfPresent(foreignKey, forKey: .foreignKey)
        }
        enum CodingKeys: String, CodingKey { case columnName, type, isNullable, isUnique, isPrimaryKey, defaultValue, foreignKey }
    }
    var tableName: String
    var columns: [Column]
    var rlsEnabled: Bool
    /// Whether the table's changes go to the realtime channel `table:<name>`.
    var realtime: Bool
    /// Whether `anon` and `authenticated` may use the table (schema/017_table_exposure.sql).
    var exposed: Bool

    static func load(_ table: String, client: PostgresClient) async throws -> TableDescription? {
        var state: (rls: Bool, realtime: Bool, exposed: Bool)?
        for try await (rls, realtime, exposed) in try await client.query("""
            SELECT c.relrowsecurity, EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname = 'insforge_to_realtime_inserted'),
                   system.table_exposed(c.oid)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relname = \(table)
            """).decode((Bool, Bool, Bool).self) { state = (rls, realtime, exposed) }
        guard let state else { return nil }
        var columns: [Column] = []
        for try await (name, type, nullable, unique, primary, defaultValue, refTable, refColumn, onDelete) in try await client.query("""
            SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
                   EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique AND i.indnatts = 1 AND i.indkey[0] = a.attnum),
                   EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary AND a.attnum = ANY (i.indkey)),
                   pg_get_expr(d.adbin, d.adrelid),
                   (SELECT rc.relname FROM pg_constraint f JOIN pg_class rc ON rc.oid = f.confrelid
                    WHERE f.conrelid = a.attrelid AND f.contype = 'f' AND f.conkey = ARRAY[a.attnum] LIMIT 1),
                   (SELECT ra.attname FROM pg_constraint f JOIN pg_attribute ra ON ra.attrelid = f.confrelid AND ra.attnum = f.confkey[1]
                    WHERE f.conrelid = a.attrelid AND f.contype = 'f' AND f.conkey = ARRAY[a.attnum] LIMIT 1),
                   (SELECT CASE f.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT'
                                              WHEN 'r' THEN 'RESTRICT' ELSE 'NO ACTION' END
                    FROM pg_constraint f WHERE f.conrelid = a.attrelid AND f.contype = 'f' AND f.conkey = ARRAY[a.attnum] LIMIT 1)
            FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = \("public.\(TableDDL.quote(table))")::regclass AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """).decode((String, String, Bool, Bool, Bool, String?, String?, String?, String?).self) {
            let fk = refTable.map { ForeignKeyTarget(referenceTable: $0, referenceColumn: refColumn ?? "", onDelete: onDelete, onUpdate: nil) }
            columns.append(Column(columnName: name, type: type, isNullable: nullable, isUnique: unique, isPrimaryKey: primary,
                                  defaultValue: defaultValue, foreignKey: fk))
        }
        return TableDescription(tableName: table, columns: columns, rlsEnabled: state.rls, realtime: state.realtime, exposed: state.exposed)
    }
}
