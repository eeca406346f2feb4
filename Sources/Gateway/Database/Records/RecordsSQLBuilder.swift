/// One SQL statement for a records request and how to answer with its result.
///
/// The statement returns exactly one row: `page_total bigint` (rows in this response), `total bigint`
/// (NULL unless a count was requested), `body text` (the JSON response body; NULL when not needed).
public struct GeneratedSQL: Sendable, Equatable {
    /// The statement; every request value is a `$n` parameter cast with an explicit type.
    public var sql: String
    /// Parameter values, all sent as text, in `$1...$n` order.
    public var binds: [String?]
    /// `Accept: application/vnd.pgrst.object+json`: the executor checks `page_total == 1` (else 406
    /// PGRST116, rolling back writes) and sends the array's only element.
    public var singleObject: Bool
    /// `exact` / `planned` / `estimated` when `Prefer: count=` asked for a total (always computed exactly).
    public var countRequested: String?
    /// The client wants no body (`return=minimal`, `return=headers-only`, HEAD): answer 204 / 201 without one.
    public var returnMinimal: Bool
    /// Values for the `Preference-Applied` header.
    public var preferenceApplied: [String]
    /// Index of the first row, for `Content-Range: <offset>-<offset+page_total-1>/<total or *>`.
    public var rangeOffset: Int
    /// GET and HEAD run in a READ ONLY transaction, as in PostgREST (a volatile function that writes
    /// then fails with 25006, which maps to 405).
    public var readOnly: Bool

    /// Creates a generated statement.
    public init(sql: String, binds: [String?], singleObject: Bool = false, countRequested: String? = nil, returnMinimal: Bool = false,
                preferenceApplied: [String] = [], rangeOffset: Int = 0, readOnly: Bool = false) {
        self.sql = sql
        self.binds = binds
        self.singleObject = singleObject
        self.countRequested = countRequested
        self.returnMinimal = returnMinimal
        self.preferenceApplied = preferenceApplied
        self.rangeOffset = rangeOffset
        self.readOnly = readOnly
    }
}

/// Turns a records request into one parameterised PostgreSQL statement, PostgREST-style: the
/// request is parsed, every name is checked against the catalog and double-quoted, and every
/// value becomes a bind parameter cast to the catalog's type.
public enum RecordsSQLBuilder {
    /// Builds the statement for `request`, or the PostgREST error to answer instead.
    public static func build(_ request: RecordsRequest, catalog: SchemaCatalog) throws(PostgRESTError) -> GeneratedSQL {
        let schema = request.schema ?? catalog.exposedSchemas.first ?? "public"
        guard catalog.exposedSchemas.contains(schema) else {
            throw .unacceptableSchema(schema, exposed: catalog.exposedSchemas)
        }
        let preferences = try RecordsPreferences.parse(request.prefer)
        let media = try RecordsAcceptedMedia.parse(request.accept)
        switch request.target {
        case .table(let name):
            guard let table = catalog.table(schema: schema, name: name) else {
                throw .tableNotFound(schema: schema, name: name)
            }
            let query = try RecordsQueryParser.parse(request.query)
            if let stray = query.arguments.first {
                // Every query item that is not reserved must be a filter, as in PostgREST (on a write an
                // ignored `id=eq;1` would silently widen it to every row).
                throw .unparsable("filter", input: stray.value, column: 1,
                                  details: "\"\(stray.name)\" is not a filter (expected operator.value, e.g. eq.1)")
            }
            var statement = RecordsStatement(catalog: catalog, schema: schema, request: request, preferences: preferences, query: query)
            statement.singleObject = media == .singleObject
            switch request.method {
            case .get, .head: try statement.buildRead(table)
            case .post: try statement.buildInsert(table)
            case .put: try statement.buildPut(table)
            case .patch: try statement.buildUpdate(table)
            case .delete: try statement.buildDelete(table)
            }
            return statement.result()
        case .rpc(let name):
            switch request.method {
            case .get, .head, .post: break
            default: throw .invalidRPCMethod(request.method.rawValue)
            }
            guard let function = catalog.function(schema: schema, name: name) else {
                let given = RecordsStatement.givenArgumentNames(request)
                throw .functionNotFound(schema: schema, name: name, arguments: given)
            }
            // Query-string items named like arguments are arguments (GET); the rest filter the rows.
            let argumentNames = request.method == .post ? [] : function.arguments.map(\.name).filter { !$0.isEmpty }
            let query = try RecordsQueryParser.parse(request.query, argumentNames: argumentNames)
            var statement = RecordsStatement(catalog: catalog, schema: schema, request: request, preferences: preferences, query: query)
            statement.singleObject = media == .singleObject
            try statement.buildCall(function)
            return statement.result()
        }
    }
}
