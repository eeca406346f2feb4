import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PostgresNIO

/// `/api/database/records/:table` and `/api/database/rpc/:fn`: PostgREST's query language.
///
/// The request is parsed and turned into one SQL statement by the pure `RecordsSQLBuilder`
/// (identifiers checked against the schema cache, values bound). It runs in a transaction as the
/// caller: `role` and `request.jwt.claims` set locally, so the table's row-level security decides
/// what is visible; writes append their `Records*` events in the same transaction (triggers).
struct RecordsController {
    /// The pool for admins (logged in as insforge_admin_login, which may only become project_admin).
    let client: PostgresClient
    /// The pool with a statement timeout, for every other caller.
    let callers: PostgresClient
    /// `RECORDS_MAX_ROWS`: most rows in one response.
    let maxRows: Int?
    let schema: SchemaCache
    /// Nudged after writes: it moves the events the write's triggers queued into the log.
    let sequencer: PendingEventSequencer
    let logger: Logger

    func register(_ routes: RouteTable) {
        for method in [HTTPRequest.Method.get, .head, .post, .patch, .put, .delete] {
            routes.add(method, "/api/database/records/:table", "Records of a table (PostgREST query language)", access: .anon) {
                try await handle($0, $1, target: .table($1.parameters.get("table") ?? ""))
            }
        }
        for method in [HTTPRequest.Method.get, .post] {
            routes.add(method, "/api/database/rpc/:fn", "Call a database function", access: .anon) {
                try await handle($0, $1, target: .rpc($1.parameters.get("fn") ?? ""))
            }
        }
    }

    static let objectMediaType = "application/vnd.pgrst.object+json"

    func recordsRequest(_ request: Request, context: AppRequestContext, target: RecordsRequest.Target) async throws -> RecordsRequest {
        guard let method = RecordsRequest.Method(rawValue: request.method.rawValue) else {
            throw PostgRESTError(status: 405, code: "PGRST101", message: "Unsupported HTTP method", details: nil, hint: nil)
        }
        let items = request.uri.query.map(Request.formPairs) ?? []
        let writes = [.post, .patch, .put, .delete].contains(method)
        let profile = request.headers[HTTPField.Name(writes ? "Content-Profile" : "Accept-Profile")!]
        let schemaName = items.first { $0.name == "schema" }?.value ?? profile
        var body: [UInt8]?
        if [.post, .patch, .put].contains(method) {
            let buffer = try await request.body.collect(upTo: 16 << 20)
            body = buffer.readableBytes == 0 ? nil : Array(buffer.readableBytesView)
        }
        var parsed = RecordsRequest(method: method, target: target, schema: schemaName, query: items,
                                    prefer: request.headers[HTTPField.Name("Prefer")!], accept: request.headers[.accept],
                                    range: request.headers[.range], body: body)
        parsed.maxRows = maxRows
        return parsed
    }

    /// The role and claims a request runs with.
    static func identity(_ credential: Credential) -> (role: String, claims: String) {
        switch credential {
        case .admin: ("project_admin", #"{"role":"project_admin"}"#)
        case .anon, .none: ("anon", #"{"role":"anon"}"#)
        case .token(let s):
            (s.role, #"{"sub":\#(JSONCoding.quoted(s.id)),"email":\#(JSONCoding.quoted(s.email)),"role":\#(JSONCoding.quoted(s.role))}"#)
        }
    }

    func handle(_ request: Request, _ context: AppRequestContext, target: RecordsRequest.Target) async throws -> Response {
        let generated: GeneratedSQL
        do {
            let parsed = try await recordsRequest(request, context: context, target: target)
            generated = try RecordsSQLBuilder.build(parsed, catalog: schema.catalog)
        } catch let error as PostgRESTError {
            return Self.response(error)
        }
        let (role, claims) = Self.identity(context.credential)
        let result: (pageTotal: Int64, total: Int64?, body: String?)
        do {
            result = try await Self.run(generated, role: role, claims: claims, requestId: context.requestId,
                                        on: role == "project_admin" ? client : callers, logger: logger)
        } catch let error as PSQLError where error.code == .server {
            if error.serverInfo?[.sqlState] == "PT406" {
                return Self.response(PostgRESTError(status: 406, code: "PGRST116", message: "JSON object requested, multiple (or no) rows returned",
                                                    details: error.serverInfo?[.detail], hint: nil))
            }
            return Self.response(Self.postgRESTError(error, role: role))
        }
        if !generated.readOnly { sequencer.nudge() }
        return try respond(request, generated, result)
    }

    /// Runs the statement as `role` in one round trip (`system.run_as`: role, claims and statement in one
    /// implicit transaction). The builder's `$n` placeholders become elements of one text array.
    static func run(_ generated: GeneratedSQL, role: String, claims: String, requestId: String, on client: PostgresClient,
                    logger: Logger) async throws -> (pageTotal: Int64, total: Int64?, body: String?) {
        let statement = RunAs(role: role, claims: claims, requestId: requestId, sql: arrayPlaceholders(generated.sql),
                              binds: generated.binds, single: generated.singleObject, readOnly: generated.readOnly)
        for try await row in try await client.execute(statement, logger: logger) { return row }
        return (0, nil, nil)
    }

    /// The call of `system.run_as`, prepared once per connection. The parameters go as one text
    /// array in PostgreSQL's binary format, NULLs included.
    struct RunAs: PostgresPreparedStatement {
        static let name = "records_run_as"
        static let sql = "SELECT page_total, total, body FROM system.run_as($1, $2, $3, $4, $5, $6, $7)"
        static var bindingDataTypes: [PostgresDataType] { [.text, .text, .text, .text, .textArray, .bool, .bool] }
        typealias Row = (Int64, Int64?, String?)
        var role: String
        var claims: String
        var requestId: String
        var sql: String
        var binds: [String?]
        var single: Bool
        var readOnly: Bool

        func makeBindings() throws -> PostgresBindings {
            .of(role, claims, requestId, sql, PackedArray(binds), single, readOnly)
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    /// `$3` -> `$1[3]` outside quoted identifiers and string literals (on the UTF-8 bytes: the quotes,
    /// `$` and digits are ASCII, so multi-byte characters pass through untouched).
    static func arrayPlaceholders(_ sql: String) -> String {
        let bytes = Array(sql.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 32)
        var quote: UInt8?
        var i = 0
        while i < bytes.count {
            let c = bytes[i]
            i += 1
            if let q = quote {
                out.append(c)
                if c == q { quote = nil }
            } else if c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") {
                quote = c
                out.append(c)
            } else if c == UInt8(ascii: "$"), i < bytes.count, isDigit(bytes[i]) {
                out.append(contentsOf: "$1[".utf8)
                while i < bytes.count, isDigit(bytes[i]) {
                    out.append(bytes[i])
                    i += 1
                }
                out.append(UInt8(ascii: "]"))
            } else {
                out.append(c)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    func respond(_ request: Request, _ generated: GeneratedSQL, _ result: (pageTotal: Int64, total: Int64?, body: String?)) throws -> Response {
        var headers: HTTPFields = [:]
        if !generated.preferenceApplied.isEmpty {
            headers[HTTPField.Name("Preference-Applied")!] = generated.preferenceApplied.joined(separator: ", ")
        }
        let first = generated.rangeOffset
        if let total = result.total, first > 0, first >= Int(total) {
            return Self.response(PostgRESTError(status: 416, code: "PGRST103", message: "Requested range not satisfiable",
                                                details: "An offset of \(first) was requested, but there are only \(total) rows.", hint: nil))
        }
        let totalText = result.total.map(String.init) ?? "*"
        headers[HTTPField.Name("Content-Range")!] = result.pageTotal > 0
            ? "\(first)-\(first + Int(result.pageTotal) - 1)/\(totalText)" : "*/\(totalText)"
        var body = result.body ?? "[]"
        if generated.singleObject {
            guard result.pageTotal == 1 else {
                return Self.response(PostgRESTError(status: 406, code: "PGRST116",
                                                    message: "JSON object requested, multiple (or no) rows returned",
                                                    details: "The result contains \(result.pageTotal) rows", hint: nil))
            }
            if body.hasPrefix("["), body.hasSuffix("]") { body = String(body.dropFirst().dropLast()) }
            headers[.contentType] = "\(Self.objectMediaType); charset=utf-8"
        } else {
            headers[.contentType] = "application/json; charset=utf-8"
        }
        let status: HTTPResponse.Status
        switch request.method {
        case .post where !isRPC(request): status = .created
        case .get, .head, .post:
            if let total = result.total, Int(result.pageTotal) + first < Int(total) || first > 0 { status = .partialContent } else { status = .ok }
        default: status = generated.returnMinimal ? .noContent : .ok
        }
        if generated.returnMinimal && !isRPC(request) || request.method == .head {
            headers[.contentType] = nil
            return Response(status: status == .ok && request.method != .head ? .noContent : status, headers: headers)
        }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    func isRPC(_ request: Request) -> Bool { request.uri.path.hasPrefix("/api/database/rpc/") }

    /// `{code, message, details, hint}` with its status.
    static func response(_ error: PostgRESTError) -> Response {
        var text = "{\"code\":\(JSONCoding.quoted(error.code)),\"message\":\(JSONCoding.quoted(error.message)),\"details\":"
        text += error.details.map(JSONCoding.quoted) ?? "null"
        text += ",\"hint\":" + (error.hint.map(JSONCoding.quoted) ?? "null") + "}"
        return Response(status: HTTPResponse.Status(code: error.status), headers: [.contentType: "application/json; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// PostgreSQL's error in PostgREST's shape and status.
    static func postgRESTError(_ error: PSQLError, role: String) -> PostgRESTError {
        let state = error.serverInfo?[.sqlState] ?? "XX000"
        let status: Int = switch state {
        case "23505", "23503": 409
        case "42501": role == "anon" ? 401 : 403
        case "42P01", "42883": 404
        case "25006": 405
        case "57014": 504  // the caller's statement timeout (CALLER_STATEMENT_TIMEOUT_MS)
        case "53400": 500
        case _ where state.hasPrefix("08") || state.hasPrefix("53") || state.hasPrefix("57") || state.hasPrefix("58") || state.hasPrefix("XX"): 500
        default: 400
        }
        // PostgreSQL's details can quote rows the caller may not see (a unique or foreign key violation
        // names the other row's values, whatever row-level security hides): admins only.
        return PostgRESTError(status: status, code: state, message: error.serverInfo?[.message] ?? "Database error",
                              details: role == "project_admin" ? error.serverInfo?[.detail] : nil, hint: error.serverInfo?[.hint])
    }
}
