import EventStore
import Foundation
import Hummingbird
import Logging
import NIOCore
import PostgresNIO

/// `POST /api/database/advance/rawsql` (logged in as `project_admin`, under RLS and its grants) and
/// `/rawsql/unrestricted` (as the server's own role), `{query, params?, allowMultipleStatements?}`
/// -> `{rows, rowCount, fields}`. The text is parsed by PostgreSQL's parser and checked before anything
/// runs: one statement unless asked, no transaction control, no role switching, nothing that writes to
/// our `system` or `auth` schemas. All statements run in one transaction together with a
/// `RawSQLExecuted` event, on a connection of their own that is closed afterwards.
struct RawSQLController {
    let database: Database
    /// How the restricted route logs in (as `project_admin` itself); nil: role switching on the server's connection.
    let login: Database.RoleLogin?
    /// How the unrestricted route logs in (as `insforge_sql`, made in schema/migrations/004_database.sql); nil: as the server's role.
    let unrestrictedLogin: Database.RoleLogin?
    let schema: SchemaCache
    /// Moves the record events the statements' triggers queued into the log before the response.
    let sequencer: PendingEventSequencer
    let logger: Logger

    func register(_ routes: RouteTable) {
        routes.add(.post, "/api/database/advance/rawsql", "Run SQL as project_admin: {query, params?} -> {rows, rowCount, fields}",
                   access: .admin, body: Self.body) { try await run($0, $1, unrestricted: false) }
        routes.add(.post, "/api/database/advance/rawsql/unrestricted", "Run SQL as the server's database role",
                   access: .admin, body: Self.body) { try await run($0, $1, unrestricted: true) }
    }

    static let body = JSONSchema.object(["query": .string(minLength: 1), "params": .array(.any, maxItems: 100),
                                         "allowMultipleStatements": .boolean], required: ["query"])

    struct Body: Decodable {
        var query: String
        var params: [JSONValue]?
        var allowMultipleStatements: Bool?
    }

    struct Output: Encodable {
        var rows: JSONValue
        var rowCount: Int
        var fields: [Field]
        struct Field: Encodable { var name: String }
    }

    /// Statements refused outright, by their kind, with the reason.
    static let forbiddenKeywords: [String: String] = {
        var reasons = Dictionary(uniqueKeysWithValues: ["BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE",
                                                        "PREPARE", "COPY", "LISTEN", "UNLISTEN", "LOAD", "CHECKPOINT", "VACUUM", "DISCARD"]
            .map { ($0, "each request is one transaction") })
        reasons["DEALLOCATE"] = "the server's own prepared statements share these connections"
        reasons["EXECUTE"] = "prepared statements do not outlive a request"
        return reasons
    }()
    static let protectedSchemas: Set<String> = ["system", "auth", "pg_catalog", "information_schema"]
    /// Settings a statement may change (for this transaction); the rest could redirect names
    /// (`search_path`) or identities (`role`), so they are refused.
    static let settableParameters: Set<String> = ["timezone", "statement_timeout", "lock_timeout", "datestyle", "intervalstyle",
                                                  "application_name", "work_mem", "extra_float_digits"]
    /// Roles, databases, server settings and cluster-wide objects: managed outside the API.
    static let clusterKeywords: Set<String> = ["CREATE ROLE", "ALTER ROLE", "DROP ROLE", "CREATE DATABASE", "ALTER DATABASE",
                                               "DROP DATABASE", "ALTER SYSTEM", "CREATE TABLESPACE", "DROP TABLESPACE", "ALTER TABLESPACE",
                                               "REASSIGN", "DROP OWNED", "CREATE EVENT TRIGGER", "ALTER EVENT TRIGGER",
                                               "CREATE SUBSCRIPTION", "CREATE PUBLICATION", "CREATE FOREIGN DATA WRAPPER",
                                               "CREATE SERVER", "CREATE USER MAPPING", "IMPORT FOREIGN SCHEMA"]

    /// Why the statements may not run, or nil. They come from PostgreSQL's parser, so the checks look at
    /// what each statement is, not at how it is spelled.
    static func problem(with statements: [SQLStatements.Statement], unrestricted: Bool, multiple: Bool) -> String? {
        if statements.isEmpty { return "query is empty" }
        if statements.count > 1, !multiple { return "query holds \(statements.count) statements; send one, or set allowMultipleStatements" }
        for statement in statements {
            if let reason = forbiddenKeywords[statement.keyword] { return "\(statement.keyword) is not allowed here (\(reason))" }
            if ["SET", "RESET"].contains(statement.keyword) {
                if ["role", "session_authorization"].contains(statement.setting ?? "") {
                    return "changing the role or session authorization is not allowed"
                }
                guard let setting = statement.setting, settableParameters.contains(setting) else {
                    return "only these settings may be changed: \(settableParameters.sorted().joined(separator: ", "))"
                }
            }
            if statement.functions.contains(where: { $0 == "set_config" || $0 == "pg_catalog.set_config" }) {
                return "set_config is not allowed here"
            }
            if clusterKeywords.contains(statement.keyword) {
                return "roles, databases and server settings are managed outside the API"
            }
            if !unrestricted, statement.node == "DoStmt" {
                return "role switching and DO blocks are only allowed in /rawsql/unrestricted"
            }
            if let schema = statement.touchedSchemas.first(where: { protectedSchemas.contains($0) }), statement.writes {
                return "statements may not change the \(schema) schema"
            }
        }
        return nil
    }

    func run(_ request: Request, _ context: AppRequestContext, unrestricted: Bool) async throws -> Response {
        let body = try await request.decodeJSON(Body.self, context: context)
        guard body.query.utf8.count <= 1 << 20 else { throw APIError.invalidInput("query is longer than 1 MiB") }
        let statements: [SQLStatements.Statement]
        switch SQLStatements.parse(body.query) {
        case .success(let s): statements = s
        case .failure(let error) where error.message.hasPrefix("unterminated"):
            throw APIError.invalidInput("The query has an \(error)")
        case .failure(let error):
            // What PostgreSQL itself would answer, without running anything.
            throw APIError(.badRequest, "DATABASE_ERROR", error.description)
        }
        if let problem = Self.problem(with: statements, unrestricted: unrestricted, multiple: body.allowMultipleStatements ?? false) {
            throw APIError.invalidInput(problem)
        }
        let params = body.params ?? []
        if !params.isEmpty, statements.count > 1 { throw APIError.invalidInput("params need a single statement") }
        let metadata = context.eventMetadata
        let output: Output
        do {
            // A connection of its own, closed afterwards: nothing the statements set, prepare or create
            // temporarily outlives the request. The restricted route logs in as project_admin and the
            // unrestricted one as insforge_sql, so neither has a more privileged session behind it.
            let run = { (connection: PostgresConnection, loggedIn: Bool) in
                try await runStatements(statements, params: params, unrestricted: unrestricted, loggedIn: loggedIn, body: body,
                                        metadata: metadata, context: context, on: connection)
            }
            if let login = unrestricted ? unrestrictedLogin : login {
                output = try await database.withLogin(login) { try await run($0, true) }
            } else {
                output = try await database.withSingleConnection { try await run($0, false) }
            }
        } catch let error as PSQLError where error.code == .server && (error.serverInfo?[.sqlState] ?? "").hasPrefix("08") {
            throw APIError(.badRequest, "DATABASE_ERROR", error.serverInfo?[.message] ?? "The statement does not fit its parameters")
        }
        await sequencer.flush()
        if statements.contains(where: { !["SELECT", "SHOW", "EXPLAIN", "INSERT", "UPDATE", "DELETE"].contains($0.keyword) || $0.selectsInto }) {
            try await schema.reload()
        }
        return try .json(encoding: output)
    }

    /// The statements in one transaction, with the audit event.
    private func runStatements(_ statements: [SQLStatements.Statement], params: [JSONValue], unrestricted: Bool, loggedIn: Bool,
                               body: Body, metadata: EventMetadata, context: AppRequestContext,
                               on connection: PostgresConnection) async throws -> Output {
        try await connection.inTransaction(logger: logger) {
            let switchesRole = !unrestricted && !loggedIn
            if switchesRole { try await connection.query("SET LOCAL ROLE project_admin", logger: logger) }
            try await connection.query("SELECT set_config('request.jwt.claims', \(Self.claims(context)), true)", logger: logger)
            var last = Output(rows: .array([]), rowCount: 0, fields: [])
            for statement in statements {
                last = try await execute(statement, params: params, on: connection)
            }
            let event = RawSQLExecuted(query: body.query, parameterCount: params.count, unrestricted: unrestricted, rowCount: last.rowCount)
            if loggedIn {
                // Neither login may write the log nor put triggers on tables it does not own: the two
                // functions of schema/functions/database/record_raw_sql.sql and track_new_public_tables.sql do it for this run alone.
                try await connection.query("""
                    SELECT system.record_raw_sql(\(EventID.next()), \(try JSONCoding.encodeString(event))::jsonb, \(metadata.json)::jsonb)
                    """, logger: logger)
                try await connection.query("SELECT system.track_new_public_tables()", logger: logger)
                return last
            }
            if switchesRole { try await connection.query("RESET ROLE", logger: logger) }
            try await EventStore.write(event, to: "sql-\(UUID().uuidString.lowercased())", metadata: metadata,
                                                   on: connection, logger: logger)
            // Tables made here publish their changes like API-made ones.
            try await connection.query("SELECT system.track_public_tables()", logger: logger)
            return last
        }
    }

    static func claims(_ context: AppRequestContext) -> String {
        switch context.credential {
        case .token(let subject): #"{"sub":\#(JSONCoding.quoted(subject.id)),"email":\#(JSONCoding.quoted(subject.email)),"role":"project_admin"}"#
        default: #"{"role":"project_admin"}"#
        }
    }

    private func execute(_ statement: SQLStatements.Statement, params: [JSONValue], on connection: PostgresConnection) async throws -> Output {
        var bindings = PostgresBindings()
        for param in params {
            if param == .null { bindings.appendNull() } else { bindings.append(UntypedParameter(param)) }
        }
        let text = statement.text
        if ["SHOW", "EXPLAIN"].contains(statement.keyword) {
            var rows: [JSONValue] = []
            for try await line in try await connection.query(PostgresQuery(unsafeSQL: text, binds: bindings), logger: logger).decode(String.self) {
                rows.append(.object([statement.keyword == "SHOW" ? "setting" : "QUERY PLAN": .string(line)]))
            }
            return Output(rows: .array(rows), rowCount: rows.count, fields: [.init(name: statement.keyword == "SHOW" ? "setting" : "QUERY PLAN")])
        }
        if statement.isModifyingQuery {
            // A data-modifying WITH must stay at the top level: run it as it is and read the cells.
            return try await Self.generic(connection.query(PostgresQuery(unsafeSQL: text, binds: bindings), logger: logger))
        }
        if SQLStatements.returnsRows(statement) {
            // Aliases no user column is likely to shadow (a column named like an alias would win).
            let sql = """
                WITH __insforge_raw AS (\(text)\n)
                SELECT coalesce(json_agg(__insforge_row), '[]')::text, count(*),
                       coalesce((SELECT json_agg(__insforge_key)::text
                                 FROM json_object_keys((SELECT row_to_json(__insforge_first) FROM (
                                     -- null-extended when there are no rows, so the column names still come back
                                     SELECT __insforge_f.* FROM (SELECT 1) __insforge_one LEFT JOIN __insforge_raw __insforge_f ON true LIMIT 1
                                 ) __insforge_first)) __insforge_key), '[]')
                FROM __insforge_raw __insforge_row
                """
            for try await (rows, count, fields) in try await connection.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger)
                .decode((String, Int, String).self) {
                let names = (try? JSONDecoder().decode([String].self, from: Data(fields.utf8))) ?? []
                return Output(rows: try JSONCoding.decoder.decode(JSONValue.self, from: Data(rows.utf8)), rowCount: count,
                              fields: names.map { .init(name: $0) })
            }
            return Output(rows: .array([]), rowCount: 0, fields: [])
        }
        if ["INSERT", "UPDATE", "DELETE"].contains(statement.keyword) {
            let sql = "WITH __insforge_raw AS (\(text)\nRETURNING 1) SELECT count(*) FROM __insforge_raw"
            for try await count in try await connection.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger).decode(Int.self) {
                return Output(rows: .array([]), rowCount: count, fields: [])
            }
        }
        try await connection.query(PostgresQuery(unsafeSQL: text, binds: bindings), logger: logger)
        return Output(rows: .array([]), rowCount: 0, fields: [])
    }
}

extension RawSQLController {
    /// Rows read cell by cell (for statements that cannot be wrapped), as JSON.
    static func generic(_ rows: PostgresRowSequence) async throws -> Output {
        var out: [JSONValue] = []
        var fields: [Output.Field] = []
        for try await row in rows {
            var object: [String: JSONValue] = [:]
            for cell in row {
                if out.isEmpty { fields.append(.init(name: cell.columnName)) }
                object[cell.columnName] = json(cell)
            }
            out.append(.object(object))
        }
        return Output(rows: .array(out), rowCount: out.count, fields: fields)
    }

    static func json(_ cell: PostgresCell) -> JSONValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .bool: return (try? cell.decode(Bool.self)).map(JSONValue.bool) ?? .null
        case .int2, .int4, .int8: return (try? cell.decode(Int64.self)).map { .number(Double($0)) } ?? .null
        case .float4, .float8: return (try? cell.decode(Double.self)).map(JSONValue.number) ?? .null
        case .uuid: return (try? cell.decode(UUID.self)).map { .string($0.uuidString.lowercased()) } ?? .null
        case .timestamptz, .timestamp, .date: return (try? cell.decode(Date.self)).map { .string(JSONCoding.timestamp($0)) } ?? .null
        case .json, .jsonb:
            guard var bytes = cell.bytes else { return .null }
            if cell.dataType == .jsonb, cell.format == .binary { bytes.moveReaderIndex(forwardBy: 1) }
            return (try? JSONCoding.decoder.decode(JSONValue.self, from: Data(buffer: bytes))) ?? .null
        default:
            if let s = try? cell.decode(String.self) { return .string(s) }
            return cell.bytes.map { .string(Data(buffer: $0).base64EncodedString()) } ?? .null
        }
    }
}

/// A parameter sent with no type (OID 0), in text format: PostgreSQL infers its type from where it is
/// used, as node-postgres clients (and InsForge's raw-SQL route) expect.
struct UntypedParameter: PostgresDynamicTypeEncodable {
    let text: String

    init(_ value: JSONValue) {
        switch value {
        case .null: text = ""
        case .bool(let b): text = b ? "true" : "false"
        case .number(let n): text = n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : String(n)
        case .string(let s): text = s
        case .array, .object: text = value.jsonText
        }
    }

    var psqlType: PostgresDataType { PostgresDataType(0) }
    var psqlFormat: PostgresFormat { .text }

    func encode<JSONEncoder: PostgresJSONEncoder>(into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        byteBuffer.writeString(text)
    }
}
