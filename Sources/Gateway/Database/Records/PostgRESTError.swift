/// An error of the records API in PostgREST's own shape (`{code, message, details, hint}`),
/// with the HTTP status PostgREST answers it with.
public struct PostgRESTError: Error, Sendable, Equatable {
    /// The HTTP status of the response.
    public var status: Int
    /// `PGRSTnnn` for errors of the API itself, a SQLSTATE (e.g. `42703`) for errors PostgreSQL would raise.
    public var code: String
    /// The human-readable message.
    public var message: String
    /// More detail, when there is some.
    public var details: String?
    /// What the caller could do about it, when there is a suggestion.
    public var hint: String?

    /// Creates an error.
    public init(status: Int, code: String, message: String, details: String? = nil, hint: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint
    }

    /// The codes this API raises, named by what went wrong.
    public enum Code {
        /// A query parameter could not be parsed.
        public static let queryParameter = "PGRST100"
        /// A verb other than GET/HEAD/POST on `/rpc`.
        public static let invalidRPCMethod = "PGRST101"
        /// The body is not valid JSON of the expected shape.
        public static let invalidBody = "PGRST102"
        /// The requested range cannot be satisfied.
        public static let invalidRange = "PGRST103"
        /// PUT filters are not exactly the primary key with `eq`.
        public static let invalidPutFilters = "PGRST105"
        /// The requested schema is not exposed.
        public static let unacceptableSchema = "PGRST106"
        /// The `Accept` header asks for a media type we do not produce.
        public static let unacceptableMediaType = "PGRST107"
        /// A scoped parameter (`x.limit`, `x.col=...`) names a resource that is not embedded.
        public static let notEmbedded = "PGRST108"
        /// `limit`/`offset` on PUT.
        public static let putLimitNotAllowed = "PGRST114"
        /// PUT body and URL disagree on the primary key.
        public static let putMatchingPrimaryKey = "PGRST115"
        /// `vnd.pgrst.object+json` requested but the result is not exactly one row (raised by the executor).
        public static let singularity = "PGRST116"
        /// An ordering on a related resource that is not to-one.
        public static let relatedOrderNotToOne = "PGRST118"
        /// A spread (`...rel(...)`) on a to-many relationship.
        public static let spreadNotToOne = "PGRST119"
        /// An operator other than `is null` / `not.is.null` on an embedded resource.
        public static let unacceptableFilter = "PGRST120"
        /// Unknown preferences with `handling=strict`.
        public static let invalidPreferences = "PGRST122"
        /// Aggregate functions in `select` (disabled, as by default in PostgREST).
        public static let aggregatesNotAllowed = "PGRST123"
        /// No relationship for an embedding.
        public static let noRelationship = "PGRST200"
        /// More than one relationship for an embedding.
        public static let ambiguousRelationship = "PGRST201"
        /// No function with that name and those arguments.
        public static let functionNotFound = "PGRST202"
        /// A body key or `columns` entry that is not a column.
        public static let columnNotFound = "PGRST204"
        /// No table or view with that name.
        public static let tableNotFound = "PGRST205"
        /// PostgreSQL's `undefined_column`, for names in `select`, filters and `order`.
        public static let undefinedColumn = "42703"
    }
}

extension PostgRESTError {
    /// 400 PGRST100: `what` (e.g. "filter", "select parameter") could not be parsed at `column` (1-based).
    static func unparsable(_ what: String, input: String, column: Int, details: String) -> PostgRESTError {
        PostgRESTError(status: 400, code: Code.queryParameter,
                       message: "\"failed to parse \(what) (\(input))\" (line 1, column \(column))",
                       details: details)
    }

    /// 400 PGRST100 for a `limit`/`offset` value that is not a non-negative integer.
    static func invalidNumber(_ name: String, _ value: String) -> PostgRESTError {
        PostgRESTError(status: 400, code: Code.queryParameter,
                       message: "\"failed to parse \(name) parameter (\(value))\" (line 1, column 1)",
                       details: "\(name) must be a non-negative integer")
    }

    /// 405 PGRST101: `method` used on a function.
    static func invalidRPCMethod(_ method: String) -> PostgRESTError {
        PostgRESTError(status: 405, code: Code.invalidRPCMethod, message: "Cannot use the \(method) method on RPC")
    }

    /// 400 PGRST102: a body that is not JSON or not of the expected shape.
    static func invalidBody(_ message: String) -> PostgRESTError {
        PostgRESTError(status: 400, code: Code.invalidBody, message: message)
    }

    /// 416 PGRST103 with PostgREST's explanation in `details`.
    public static func invalidRange(_ details: String) -> PostgRESTError {
        PostgRESTError(status: 416, code: Code.invalidRange, message: "Requested range not satisfiable", details: details)
    }

    /// 416 PGRST103 for an offset beyond the counted rows; the executor raises it once it knows the total.
    public static func rangeOutOfBounds(offset: Int, total: Int) -> PostgRESTError {
        invalidRange("An offset of \(offset) was requested, but there are only \(total) rows.")
    }

    /// 405 PGRST105: PUT filters are not exactly the primary key.
    static var invalidPutFilters: PostgRESTError {
        PostgRESTError(status: 405, code: Code.invalidPutFilters,
                       message: "Filters must include all and only primary key columns with 'eq' operators")
    }

    /// 406 PGRST106: `schema` is not one of `exposed`.
    static func unacceptableSchema(_ schema: String, exposed: [String]) -> PostgRESTError {
        let list = exposed.joined(separator: ", ")
        return PostgRESTError(status: 406, code: Code.unacceptableSchema,
                              message: "The schema must be one of the following: \(list)",
                              hint: "Only the following schemas are exposed: \(list)")
    }

    /// 406 PGRST107: none of the accepted media types can be produced.
    static func unacceptableMediaType(_ accept: String) -> PostgRESTError {
        PostgRESTError(status: 406, code: Code.unacceptableMediaType,
                       message: "None of these media types are available: \(accept)")
    }

    /// 400 PGRST108: a scoped parameter names `resource`, which the select does not embed.
    static func notEmbedded(_ resource: String) -> PostgRESTError {
        PostgRESTError(status: 400, code: Code.notEmbedded,
                       message: "'\(resource)' is not an embedded resource in this request",
                       hint: "Verify that '\(resource)' is included in the 'select' query parameter.")
    }

    /// 400 PGRST114: `limit`/`offset` with PUT.
    static var putLimitNotAllowed: PostgRESTError {
        PostgRESTError(status: 400, code: Code.putLimitNotAllowed,
                       message: "limit/offset querystring parameters are not allowed for PUT")
    }

    /// 400 PGRST115: PUT body and filters disagree on the key.
    static var putMatchingPrimaryKey: PostgRESTError {
        PostgRESTError(status: 400, code: Code.putMatchingPrimaryKey,
                       message: "Payload values do not match URL in primary key column(s)")
    }

    /// 406 PGRST116: the executor raises this when an object was requested and `rows` rows came back.
    public static func singularity(rows: Int) -> PostgRESTError {
        PostgRESTError(status: 406, code: Code.singularity,
                       message: "Cannot coerce the result to a single JSON object",
                       details: "The result contains \(rows) rows")
    }

    /// 400 PGRST118: ordering by a column of `target`, which is not to-one from `origin`.
    static func relatedOrderNotToOne(origin: String, target: String) -> PostgRESTError {
        PostgRESTError(status: 400, code: Code.relatedOrderNotToOne,
                       message: "A related order on '\(target)' is not possible",
                       details: "'\(origin)' and '\(target)' do not form a many-to-one or one-to-one relationship")
    }

    /// 400 PGRST119: a spread on a to-many relationship.
    static func spreadNotToOne(origin: String, target: String) -> PostgRESTError {
        PostgRESTError(status: 400, code: Code.spreadNotToOne,
                       message: "A spread operation on '\(target)' is not possible",
                       details: "'\(origin)' and '\(target)' do not form a many-to-one or one-to-one relationship")
    }

    /// 400 PGRST120: an operator other than null checks on an embedded resource.
    static func unacceptableFilter(_ target: String) -> PostgRESTError {
        PostgRESTError(status: 400, code: Code.unacceptableFilter,
                       message: "Bad operator on the '\(target)' embedded resource",
                       details: "Only is null or not is null filters are allowed on embedded resources")
    }

    /// 400 PGRST122: unknown preferences given with `handling=strict`.
    static func invalidPreferences(_ preferences: [String]) -> PostgRESTError {
        PostgRESTError(status: 400, code: Code.invalidPreferences,
                       message: "Invalid preferences given with handling=strict",
                       details: "Invalid preferences: " + preferences.joined(separator: ", "))
    }

    /// 400 PGRST123: aggregates in `select`.
    static var aggregatesNotAllowed: PostgRESTError {
        PostgRESTError(status: 400, code: Code.aggregatesNotAllowed, message: "Use of aggregate functions is not allowed")
    }

    /// 400 PGRST200: no foreign key joins `parent` and `child`.
    static func noRelationship(parent: String, child: String, hint embedHint: String?, schema: String) -> PostgRESTError {
        let using = embedHint.map { "' using the hint '\($0)" } ?? ""
        return PostgRESTError(status: 400, code: Code.noRelationship,
                              message: "Could not find a relationship between '\(parent)' and '\(child)' in the schema cache",
                              details: "Searched for a foreign key relationship between '\(parent)' and '\(child)\(using)' in the schema '\(schema)', but no matches were found.")
    }

    /// 300 PGRST201: several foreign keys join `parent` and `child`; `descriptions` lists them, `hints` the disambiguated names.
    static func ambiguousRelationship(parent: String, child: String, descriptions: [String], hints: [String]) -> PostgRESTError {
        PostgRESTError(status: 300, code: Code.ambiguousRelationship,
                       message: "Could not embed because more than one relationship was found for '\(parent)' and '\(child)'",
                       details: descriptions.joined(separator: "; "),
                       hint: "Try changing '\(child)' to one of the following: " + hints.map { "'\($0)'" }.joined(separator: ", ") + ". Find the desired relationship in the 'details' key.")
    }

    /// 404 PGRST202: no function `schema.name` taking `arguments`.
    static func functionNotFound(schema: String, name: String, arguments: [String]) -> PostgRESTError {
        let function = schema + "." + name
        let list = arguments.joined(separator: ", ")
        let withParameters = arguments.isEmpty ? " without parameters"
            : " with parameter" + (arguments.count > 1 ? "s " : " ") + list
        return PostgRESTError(status: 404, code: Code.functionNotFound,
                              message: "Could not find the function \(function)" + (arguments.isEmpty ? " without parameters" : "(\(list))") + " in the schema cache",
                              details: "Searched for the function \(function)\(withParameters) or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.")
    }

    /// 400 PGRST204: a body key or `columns` entry `column` that `table` does not have.
    static func columnNotFound(_ column: String, table: String) -> PostgRESTError {
        PostgRESTError(status: 400, code: Code.columnNotFound,
                       message: "Could not find the '\(column)' column of '\(table)' in the schema cache")
    }

    /// 404 PGRST205: no table or view `schema.name`.
    static func tableNotFound(schema: String, name: String) -> PostgRESTError {
        PostgRESTError(status: 404, code: Code.tableNotFound,
                       message: "Could not find the table '\(schema).\(name)' in the schema cache")
    }

    /// 400 42703: `table` has no column `column` (what PostgreSQL would say, raised before any SQL runs).
    static func undefinedColumn(_ column: String, table: String) -> PostgRESTError {
        PostgRESTError(status: 400, code: Code.undefinedColumn, message: "column \(table).\(column) does not exist")
    }
}
