import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import PostgresNIO

/// `/api/database/tables` (admin): list and describe the tables of the public schema; create, alter
/// and drop them through `TableCommands`.
struct TablesController {
    let client: PostgresClient
    let commands: TableCommands

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

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await request.decodeJSON(TableCommands.Create.self, context: context)
        try await commands.create(body, metadata: context.eventMetadata)
        return try .json(encoding: Created(message: "Table created successfully", tableName: body.tableName,
                                          columns: body.columns, autoFields: TableDDL.automaticColumns,
                                          nextActions: "Insert records with POST /api/database/records/\(body.tableName)"), status: .created)
    }

    struct Created: Encodable {
        var message: String
        var tableName: String
        var columns: [ColumnDefinition]
        var autoFields: [String]
        var nextActions: String
    }

    @Sendable func alter(_ request: Request, context: AppRequestContext) async throws -> Response {
        let table = try tableName(context)
        let body = try await request.decodeJSON(TableCommands.Alter.self, context: context)
        let finalName = try await commands.alter(table, body, metadata: context.eventMetadata)
        return try .json(encoding: ["message": "Table altered successfully", "tableName": finalName])
    }

    @Sendable func drop(_ request: Request, context: AppRequestContext) async throws -> Response {
        let table = try tableName(context)
        try await commands.drop(table, metadata: context.eventMetadata)
        return try .json(encoding: ["message": "Table deleted successfully", "tableName": table])
    }

    @Sendable func describe(_ request: Request, context: AppRequestContext) async throws -> Response {
        let table = try tableName(context)
        guard let description = try await TableDescription.load(table, client: client) else {
            throw APIError.notFound("Table \(table) does not exist")
        }
        return try .json(encoding: description)
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
    /// Whether `anon` and `authenticated` may use the table (system.table_exposed, schema/functions/database/table_exposed.sql).
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
