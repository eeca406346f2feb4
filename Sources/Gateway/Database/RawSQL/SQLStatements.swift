import CPGQuery
import Foundation

/// Splits SQL text into statements and classifies them for the raw-SQL route, with PostgreSQL's own
/// parser (libpg_query): what a statement is, which schemas it names and whether it writes come from
/// its parse tree, so quoting, comments, `$$` bodies or unusual spacing cannot hide a statement or a
/// name from the checks, as they could from matching text.
public enum SQLStatements {
    /// One parsed statement.
    public struct Statement: Sendable, Equatable {
        /// The statement's text, trimmed.
        public var text: String
        /// The parse tree's node (`SelectStmt`, `DeleteStmt`, `VariableSetStmt` ...).
        public var node: String
        /// The first keyword of the kind of statement (`SELECT`, `INSERT`, `SET` ...), for messages and rules.
        public var keyword: String
        /// Schemas of the relations and objects the statement names (not of types or called functions), lower-cased.
        public var schemas: Set<String>
        /// Functions called, `schema.name` or `name`, lower-cased.
        public var functions: Set<String>
        /// Whether `RETURNING` is used (rows come back from a write).
        public var hasReturning: Bool
        /// The setting a `SET`/`RESET` changes (`role`, `search_path` ...), lower-cased.
        public var setting: String?
        /// Whether it changes anything: any statement but a plain query, `SHOW` or `EXPLAIN` of one.
        public var writes: Bool
        /// A `SELECT ... INTO new_table`.
        public var selectsInto: Bool = false

        /// A query whose `WITH` changes data: it must run at the top level, not wrapped.
        public var isModifyingQuery: Bool { node == "SelectStmt" && writes && !selectsInto }

        /// Schemas the statement names, with the schemas of the functions it calls, except the SQL helpers RLS
        /// policies call (`auth.uid()` ...).
        public var touchedSchemas: Set<String> {
            var out = schemas
            for function in functions where !SQLStatements.policyHelpers.contains(function) {
                if let dot = function.firstIndex(of: ".") { out.insert(String(function[..<dot])) }
            }
            return out
        }
    }

    /// The helpers policies use; calling them touches nothing.
    static let policyHelpers: Set<String> = ["auth.uid", "auth.role", "auth.email", "auth.jwt"]

    /// Why the text could not be parsed: PostgreSQL's message and where.
    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var message: String
        /// 1-based character position, when known.
        public var position: Int?
        public var description: String { position.map { "\(message) at character \($0)" } ?? message }
    }

    /// The statements of `sql` (empty ones dropped), or PostgreSQL's syntax error.
    public static func parse(_ sql: String) -> Result<[Statement], ParseError> {
        let result = pg_query_parse(sql)
        defer { pg_query_free_parse_result(result) }
        if let error = result.error {
            return .failure(ParseError(message: error.pointee.message.map { String(cString: $0) } ?? "syntax error",
                                       position: error.pointee.cursorpos > 0 ? Int(error.pointee.cursorpos) : nil))
        }
        guard let tree = result.parse_tree,
              let root = try? JSONSerialization.jsonObject(with: Data(String(cString: tree).utf8)) as? [String: Any]
        else { return .failure(ParseError(message: "the parser gave no tree", position: nil)) }
        let bytes = Array(sql.utf8)
        var out: [Statement] = []
        for raw in root["stmts"] as? [[String: Any]] ?? [] {
            guard let stmt = raw["stmt"] as? [String: Any], let (node, body) = stmt.first else { continue }
            let start = min(bytes.count, (raw["stmt_location"] as? Int) ?? 0)
            let length = (raw["stmt_len"] as? Int) ?? 0
            let end = length > 0 ? min(bytes.count, start + length) : bytes.count
            let text = String(decoding: bytes[start..<end], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            out.append(classify(node: node, body: body as? [String: Any] ?? [:], text: text))
        }
        return .success(out)
    }

    /// What the parse tree of one statement says.
    static func classify(node: String, body: [String: Any], text: String) -> Statement {
        var names = NameCollector()
        names.walk(body)
        let setting = (node == "VariableSetStmt" || node == "VariableShowStmt") ? (body["name"] as? String)?.lowercased() : nil
        return Statement(text: text, node: node, keyword: keyword(node: node, body: body), schemas: names.schemas,
                         functions: names.functions, hasReturning: names.returning, setting: setting,
                         writes: writes(node: node, body: body, names: names),
                         selectsInto: node == "SelectStmt" && body["intoClause"] != nil)
    }

    /// Whether a statement changes something. Queries are reads unless they `SELECT INTO`, hold a
    /// data-modifying `WITH`, or call a function of our own `system` schema; `EXPLAIN` is what it explains.
    static func writes(node: String, body: [String: Any], names: NameCollector) -> Bool {
        switch node {
        case "SelectStmt":
            return body["intoClause"] != nil || names.modifyingQuery || names.functions.contains { $0.hasPrefix("system.") }
        case "ExplainStmt":
            guard let inner = body["query"] as? [String: Any], let (innerNode, innerBody) = inner.first else { return true }
            var innerNames = NameCollector()
            innerNames.walk(innerBody)
            return writes(node: innerNode, body: innerBody as? [String: Any] ?? [:], names: innerNames)
        case "VariableShowStmt":
            return false
        default:
            return true
        }
    }

    static let keywords: [String: String] = [
        "SelectStmt": "SELECT", "InsertStmt": "INSERT", "UpdateStmt": "UPDATE", "DeleteStmt": "DELETE", "MergeStmt": "MERGE",
        "ExplainStmt": "EXPLAIN", "VariableShowStmt": "SHOW", "DoStmt": "DO", "CopyStmt": "COPY", "ListenStmt": "LISTEN",
        "UnlistenStmt": "UNLISTEN", "NotifyStmt": "NOTIFY", "LoadStmt": "LOAD", "CheckPointStmt": "CHECKPOINT",
        "VacuumStmt": "VACUUM", "DiscardStmt": "DISCARD", "PrepareStmt": "PREPARE", "ExecuteStmt": "EXECUTE",
        "DeallocateStmt": "DEALLOCATE", "TruncateStmt": "TRUNCATE", "CallStmt": "CALL", "GrantStmt": "GRANT",
        "GrantRoleStmt": "GRANT", "LockStmt": "LOCK", "ClusterStmt": "CLUSTER", "ReindexStmt": "REINDEX",
        "CommentStmt": "COMMENT", "SecLabelStmt": "SECURITY", "CreateRoleStmt": "CREATE ROLE", "AlterRoleStmt": "ALTER ROLE",
        "AlterRoleSetStmt": "ALTER ROLE", "DropRoleStmt": "DROP ROLE", "CreatedbStmt": "CREATE DATABASE",
        "AlterDatabaseStmt": "ALTER DATABASE", "AlterDatabaseSetStmt": "ALTER DATABASE", "DropdbStmt": "DROP DATABASE",
        "AlterSystemStmt": "ALTER SYSTEM", "CreateTableSpaceStmt": "CREATE TABLESPACE", "DropTableSpaceStmt": "DROP TABLESPACE",
        "AlterTableSpaceOptionsStmt": "ALTER TABLESPACE", "ReassignOwnedStmt": "REASSIGN", "DropOwnedStmt": "DROP OWNED",
        "CreateEventTrigStmt": "CREATE EVENT TRIGGER", "AlterEventTrigStmt": "ALTER EVENT TRIGGER",
        "CreateExtensionStmt": "CREATE EXTENSION", "AlterExtensionStmt": "ALTER EXTENSION",
        "CreateSubscriptionStmt": "CREATE SUBSCRIPTION", "CreatePublicationStmt": "CREATE PUBLICATION",
        "CreateFdwStmt": "CREATE FOREIGN DATA WRAPPER", "CreateForeignServerStmt": "CREATE SERVER",
        "CreateUserMappingStmt": "CREATE USER MAPPING", "ImportForeignSchemaStmt": "IMPORT FOREIGN SCHEMA",
    ]

    /// The first keyword(s) of a statement of kind `node`.
    static func keyword(node: String, body: [String: Any]) -> String {
        if let known = keywords[node] { return known }
        switch node {
        case "TransactionStmt":
            let kind = (body["kind"] as? String) ?? ""
            return ["TRANS_STMT_BEGIN": "BEGIN", "TRANS_STMT_START": "START", "TRANS_STMT_COMMIT": "COMMIT",
                    "TRANS_STMT_ROLLBACK": "ROLLBACK", "TRANS_STMT_SAVEPOINT": "SAVEPOINT", "TRANS_STMT_RELEASE": "RELEASE",
                    "TRANS_STMT_ROLLBACK_TO": "ROLLBACK", "TRANS_STMT_PREPARE": "PREPARE", "TRANS_STMT_COMMIT_PREPARED": "COMMIT",
                    "TRANS_STMT_ROLLBACK_PREPARED": "ROLLBACK"][kind] ?? "BEGIN"
        case "VariableSetStmt":
            return (body["kind"] as? String) == "VAR_RESET" || (body["kind"] as? String) == "VAR_RESET_ALL" ? "RESET" : "SET"
        default:
            // CreateStmt -> CREATE, AlterTableStmt -> ALTER, DropStmt -> DROP, RenameStmt -> ALTER ...
            for prefix in ["Create", "Alter", "Drop", "Rename", "Define", "Index", "View", "Rule", "Refresh"] where node.hasPrefix(prefix) {
                return ["Rename": "ALTER", "Define": "CREATE", "Index": "CREATE", "View": "CREATE", "Rule": "CREATE",
                        "Refresh": "REFRESH"][prefix] ?? prefix.uppercased()
            }
            return node.replacingOccurrences(of: "Stmt", with: "").uppercased()
        }
    }

    /// Statements whose rows come back: queries (not `SELECT INTO`), `SHOW`, `EXPLAIN`, and writes with `RETURNING`.
    public static func returnsRows(_ statement: Statement) -> Bool {
        (["SelectStmt", "VariableShowStmt", "ExplainStmt"].contains(statement.node) && !statement.selectsInto)
            || (["InsertStmt", "UpdateStmt", "DeleteStmt"].contains(statement.node) && statement.hasReturning)
    }
}

/// Walks a statement's parse tree for the names it uses.
struct NameCollector {
    /// Schemas of relations (`RangeVar`) and of qualified object names (`DROP TABLE s.t`, `CREATE FUNCTION s.f`).
    var schemas = Set<String>()
    /// Called functions, qualified as written.
    var functions = Set<String>()
    var returning = false
    /// A data-modifying statement inside a query (a `WITH d AS (DELETE ...)`).
    var modifyingQuery = false
    /// Keys whose value is a type: `pg_catalog.int4` there is not a use of pg_catalog's objects.
    static let typeKeys: Set<String> = ["typeName", "returnType", "argType", "ofTypename"]
    /// Keys that hold a qualified object name as a list of strings (or lists of them).
    static let nameKeys: Set<String> = ["funcname", "defnames", "objname", "names", "objects", "object", "conversion_name",
                                        "collname", "opclassname", "opfamilyname"]

    mutating func walk(_ value: Any, key: String? = nil, depth: Int = 0) {
        guard depth < 10_000 else { return }
        if let object = value as? [String: Any] {
            for (k, v) in object {
                if Self.typeKeys.contains(k) { continue }
                switch k {
                case "RangeVar":
                    if let schema = (v as? [String: Any])?["schemaname"] as? String { schemas.insert(schema.lowercased()) }
                case "FuncCall":
                    // The called name is a call, not an object the statement changes; its arguments are walked.
                    guard let call = v as? [String: Any] else { continue }
                    functions.insert(Self.qualifiedName(call["funcname"]).lowercased())
                    for (argKey, arg) in call where argKey != "funcname" { walk(arg, key: argKey, depth: depth + 1) }
                    continue
                case "schemaname", "newschema":
                    if let schema = v as? String { schemas.insert(schema.lowercased()) }
                case "returningList":
                    returning = true
                case "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt":
                    modifyingQuery = true
                default:
                    if Self.nameKeys.contains(k) { collectQualified(v) }
                }
                walk(v, key: k, depth: depth + 1)
            }
        } else if let array = value as? [Any] {
            for item in array { walk(item, key: key, depth: depth + 1) }
        }
    }

    /// A qualified name is a list of two or more `String` nodes (`schema.object`): the first is a schema.
    /// Several names come as a list of `List` nodes.
    mutating func collectQualified(_ value: Any) {
        if let object = value as? [String: Any] {
            if let list = object["List"] { collectQualified(list) } else if let items = object["items"] { collectQualified(items) }
            return
        }
        guard let items = value as? [Any] else { return }
        let parts = items.compactMap { (($0 as? [String: Any])?["String"] as? [String: Any])?["sval"] as? String }
        if parts.count == items.count {
            if parts.count >= 2, let first = parts.first { schemas.insert(first.lowercased()) }
        } else {
            for item in items { collectQualified(item) }
        }
    }

    /// `a.b` from a list of `String` nodes.
    static func qualifiedName(_ value: Any?) -> String {
        let items = value as? [Any] ?? []
        return items.compactMap { (($0 as? [String: Any])?["String"] as? [String: Any])?["sval"] as? String }.joined(separator: ".")
    }
}
