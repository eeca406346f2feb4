/// The typed form of a PostgREST query string: what to select, which rows, in which order and
/// how many. Produced by `RecordsQueryParser`, checked against the catalog and turned into SQL
/// by `RecordsSQLBuilder`. Names in it are unchecked user input until the builder resolves them.
public struct RecordsQuery: Sendable, Equatable {
    /// A column reference, optionally followed by a JSON path: `data->a->>b`.
    public struct Field: Sendable, Equatable {
        /// The column name.
        public var name: String
        /// The `->` / `->>` steps after the column, in order.
        public var jsonPath: [JSONPathStep]

        /// Creates a field.
        public init(name: String, jsonPath: [JSONPathStep] = []) {
            self.name = name
            self.jsonPath = jsonPath
        }

        /// The key PostgREST gives the field in results: the last JSON key, else the column name.
        public var outputName: String {
            guard let last = jsonPath.last else { return name }
            switch last.operand {
            case .key(let key): return key
            case .index(let index): return String(index)
            }
        }
    }

    /// One `->` (JSON) or `->>` (text) step of a JSON path.
    public struct JSONPathStep: Sendable, Equatable {
        /// An object key or an array index.
        public enum Operand: Sendable, Equatable {
            /// `->key`
            case key(String)
            /// `->0`, `->-1`
            case index(Int)
        }

        /// What the step looks up.
        public var operand: Operand
        /// `->>`: the step yields text rather than JSON.
        public var yieldsText: Bool

        /// Creates a step.
        public init(_ operand: Operand, yieldsText: Bool = false) {
            self.operand = operand
            self.yieldsText = yieldsText
        }
    }

    /// One element of `select=`.
    public enum SelectItem: Sendable, Equatable {
        /// `*`: every column.
        case allColumns
        /// `alias:column->path::cast`
        case field(SelectedField)
        /// `alias:relation!hint!inner(...)` or the spread `...relation(...)`
        case embed(Embed)
    }

    /// A selected column: `alias:data->a->>b::text`.
    public struct SelectedField: Sendable, Equatable {
        /// The key in the result, if renamed.
        public var alias: String?
        /// The column and JSON path.
        public var field: Field
        /// A cast target, checked to be a plain type name (letters, digits, `_`, a few multi-word types).
        public var cast: String?

        /// Creates a selected field.
        public init(alias: String? = nil, field: Field, cast: String? = nil) {
            self.alias = alias
            self.field = field
            self.cast = cast
        }
    }

    /// How an embedding joins its parent.
    public enum EmbedJoin: String, Sendable, Equatable {
        /// `!inner`: keep only parents that have a match.
        case inner
        /// `!left`: keep every parent (the default).
        case left
    }

    /// An embedded resource in `select=`.
    public struct Embed: Sendable, Equatable {
        /// The key in the result, if renamed.
        public var alias: String?
        /// The table (or foreign key / column) named.
        public var relation: String
        /// A disambiguation hint: a foreign key name, a column or a junction table.
        public var hint: String?
        /// `!inner` / `!left`, if given.
        public var join: EmbedJoin?
        /// `...relation(...)`: the columns are merged into the parent object.
        public var isSpread: Bool
        /// What to select from the embedded resource.
        public var items: [SelectItem]

        /// Creates an embedding.
        public init(alias: String? = nil, relation: String, hint: String? = nil, join: EmbedJoin? = nil, isSpread: Bool = false, items: [SelectItem]) {
            self.alias = alias
            self.relation = relation
            self.hint = hint
            self.join = join
            self.isSpread = isSpread
            self.items = items
        }

        /// The name scoped parameters use for this embedding (`alias.limit`, `name.col=...`).
        public var scopeName: String { alias ?? relation }
    }

    /// An operator taking one value: comparisons, pattern matches, and array/range operators.
    public enum Operator: String, Sendable, Equatable, CaseIterable {
        /// `=`
        case eq
        /// `<>`
        case neq
        /// `>`
        case gt
        /// `>=`
        case gte
        /// `<`
        case lt
        /// `<=`
        case lte
        /// `LIKE`, with `*` as `%`
        case like
        /// `ILIKE`, with `*` as `%`
        case ilike
        /// `~` (POSIX regular expression)
        case match
        /// `~*` (case-insensitive regular expression)
        case imatch
        /// `IS DISTINCT FROM`
        case isdistinct
        /// `@>` contains (arrays, jsonb, ranges)
        case cs
        /// `<@` contained in
        case cd
        /// `&&` overlaps
        case ov
        /// `<<` strictly left of (ranges)
        case sl
        /// `>>` strictly right of
        case sr
        /// `&<` does not extend to the right of
        case nxr
        /// `&>` does not extend to the left of
        case nxl
        /// `-|-` adjacent to
        case adj

        /// Whether `op(any).{...}` / `op(all).{...}` is allowed with this operator.
        public var allowsQuantifier: Bool {
            switch self {
            case .eq, .gt, .gte, .lt, .lte, .like, .ilike, .match, .imatch: return true
            default: return false
            }
        }
    }

    /// `any` / `all` in `eq(any).{1,2}`.
    public enum Quantifier: String, Sendable, Equatable {
        /// `op ANY(array)`
        case any
        /// `op ALL(array)`
        case all
    }

    /// The right-hand side of `is.`.
    public enum IsValue: String, Sendable, Equatable {
        /// `IS NULL`
        case null
        /// `IS NOT NULL`
        case notNull = "not_null"
        /// `IS TRUE`
        case isTrue = "true"
        /// `IS FALSE`
        case isFalse = "false"
        /// `IS UNKNOWN`
        case unknown
    }

    /// Full-text search operators: `to_tsquery`, `plainto_tsquery`, `phraseto_tsquery`, `websearch_to_tsquery`.
    public enum FullTextOperator: String, Sendable, Equatable, CaseIterable {
        /// `to_tsquery`
        case fts
        /// `plainto_tsquery`
        case plfts
        /// `phraseto_tsquery`
        case phfts
        /// `websearch_to_tsquery`
        case wfts
    }

    /// What a filter tests.
    public enum Operation: Sendable, Equatable {
        /// `eq.5`, `like.*a*`, `cs.{1,2}` ...
        case binary(Operator, String)
        /// `eq(any).{1,2}`: the value is a PostgreSQL array literal.
        case quantified(Operator, Quantifier, String)
        /// `in.(a,b,"c,d")`
        case list([String])
        /// `is.null`, `is.true` ...
        case `is`(IsValue)
        /// `fts(english).cat & dog`
        case fullText(FullTextOperator, configuration: String?, String)
    }

    /// One filter: `field=[not.]operation`.
    public struct Filter: Sendable, Equatable {
        /// The column (and JSON path) tested.
        public var field: Field
        /// `not.`
        public var negated: Bool
        /// The test.
        public var operation: Operation

        /// Creates a filter.
        public init(field: Field, negated: Bool = false, operation: Operation) {
            self.field = field
            self.negated = negated
            self.operation = operation
        }
    }

    /// `and` / `or` in logic trees.
    public enum LogicOperator: String, Sendable, Equatable {
        /// All must hold.
        case and
        /// One must hold.
        case or
    }

    /// A boolean condition: a filter, or a (negatable) `and(...)` / `or(...)` of conditions.
    public enum Condition: Sendable, Equatable {
        /// A single filter.
        case filter(Filter)
        /// `[not.]and(...)` / `[not.]or(...)`
        indirect case logic(negated: Bool, LogicOperator, [Condition])
    }

    /// Sort direction.
    public enum OrderDirection: String, Sendable, Equatable {
        /// Ascending.
        case asc
        /// Descending.
        case desc
    }

    /// Where NULLs sort.
    public enum NullsOrder: String, Sendable, Equatable {
        /// `NULLS FIRST`
        case first = "nullsfirst"
        /// `NULLS LAST`
        case last = "nullslast"
    }

    /// One `order=` term: `col.desc.nullslast` or, through a to-one embedding, `author(name).asc`.
    public struct OrderTerm: Sendable, Equatable {
        /// The embedded resource whose column orders the rows (`author(name)`), if any.
        public var relation: String?
        /// The column (and JSON path).
        public var field: Field
        /// `.asc` / `.desc`, if given.
        public var direction: OrderDirection?
        /// `.nullsfirst` / `.nullslast`, if given.
        public var nulls: NullsOrder?

        /// Creates an order term.
        public init(relation: String? = nil, field: Field, direction: OrderDirection? = nil, nulls: NullsOrder? = nil) {
            self.relation = relation
            self.field = field
            self.direction = direction
            self.nulls = nulls
        }
    }

    /// A condition and the embedding it applies to (`[]` is the root; `["comments"]` for `comments.x=...`).
    public struct ScopedCondition: Sendable, Equatable {
        /// Embedding path by scope names.
        public var path: [String]
        /// The condition.
        public var condition: Condition

        /// Creates a scoped condition.
        public init(path: [String] = [], _ condition: Condition) {
            self.path = path
            self.condition = condition
        }
    }

    /// An `order=` list and the embedding it applies to.
    public struct ScopedOrder: Sendable, Equatable {
        /// Embedding path by scope names.
        public var path: [String]
        /// The terms in priority order.
        public var terms: [OrderTerm]

        /// Creates a scoped order.
        public init(path: [String] = [], terms: [OrderTerm]) {
            self.path = path
            self.terms = terms
        }
    }

    /// `limit` / `offset` for the root or an embedding.
    public struct ScopedRange: Sendable, Equatable {
        /// Embedding path by scope names.
        public var path: [String]
        /// `limit=`
        public var limit: Int?
        /// `offset=`
        public var offset: Int?

        /// Creates a scoped range.
        public init(path: [String] = [], limit: Int? = nil, offset: Int? = nil) {
            self.path = path
            self.limit = limit
            self.offset = offset
        }
    }

    /// A function argument given in the query string (`GET /rpc/fn?a=1`).
    public struct Argument: Sendable, Equatable {
        /// The argument name.
        public var name: String
        /// Its value as text.
        public var value: String

        /// Creates an argument.
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// `select=`; `[.allColumns]` when absent.
    public var select: [SelectItem]
    /// Filters and `and=`/`or=` trees, all ANDed within their scope.
    public var conditions: [ScopedCondition]
    /// `order=` of the root resource.
    public var order: [OrderTerm]
    /// `limit=` of the root resource.
    public var limit: Int?
    /// `offset=` of the root resource.
    public var offset: Int?
    /// `x.order=` of embedded resources.
    public var embeddedOrders: [ScopedOrder]
    /// `x.limit=` / `x.offset=` of embedded resources.
    public var embeddedRanges: [ScopedRange]
    /// `on_conflict=` columns for upserts.
    public var onConflict: [String]?
    /// `columns=`: the body keys an insert/update uses.
    public var columns: [String]?
    /// RPC arguments from the query string.
    public var arguments: [Argument]

    /// Creates a query.
    public init(select: [SelectItem] = [.allColumns], conditions: [ScopedCondition] = [], order: [OrderTerm] = [],
                limit: Int? = nil, offset: Int? = nil, embeddedOrders: [ScopedOrder] = [], embeddedRanges: [ScopedRange] = [],
                onConflict: [String]? = nil, columns: [String]? = nil, arguments: [Argument] = []) {
        self.select = select
        self.conditions = conditions
        self.order = order
        self.limit = limit
        self.offset = offset
        self.embeddedOrders = embeddedOrders
        self.embeddedRanges = embeddedRanges
        self.onConflict = onConflict
        self.columns = columns
        self.arguments = arguments
    }

}

extension RecordsQuery.SelectItem {
    /// The column a `.field` item selects (nil for `*` and embeddings).
    var selectedColumnName: String? {
        if case .field(let selected) = self { return selected.field.name }
        return nil
    }
}
