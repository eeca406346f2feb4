/// What the database catalog says about the exposed tables, views and functions: the
/// records API checks every identifier of a request against it before it writes SQL.
///
/// The owner fills it from `pg_catalog`; the builder only reads it.
public struct SchemaCatalog: Sendable {
    /// A column of a table or view, as `pg_attribute` and `format_type()` describe it.
    public struct Column: Sendable {
        /// The column's name, exactly as stored (case and spaces kept).
        public var name: String { didSet { quotedName = RecordsSQLWriter.quotedIdentifier(name) } }
        /// `format_type(atttypid, atttypmod)`, e.g. `integer`, `text[]`, `timestamp with time zone`;
        /// written into SQL as a cast target, so it must come from the catalog, never from a request.
        public var type: String { didSet { castSuffix = RecordsSQLWriter.castSuffix(type) } }
        /// Whether the column accepts NULL.
        public var nullable: Bool
        /// Whether the column has a default (or is an identity/generated column).
        public var hasDefault: Bool

        /// `"name"` as SQL text, kept in step with `name` (encoded once, not per request).
        private(set) var quotedName: [UInt8]
        /// `::type` as SQL text, kept in step with `type`.
        private(set) var castSuffix: [UInt8]

        /// Creates a column description.
        public init(name: String, type: String, nullable: Bool = true, hasDefault: Bool = false) {
            self.name = name
            self.type = type
            self.nullable = nullable
            self.hasDefault = hasDefault
            quotedName = RecordsSQLWriter.quotedIdentifier(name)
            castSuffix = RecordsSQLWriter.castSuffix(type)
        }
    }

    /// A foreign key constraint of a table: the edge resource embedding follows.
    public struct ForeignKey: Sendable {
        /// The constraint name, usable as an embedding hint (`users!posts_author_id_fkey(*)`).
        public var name: String
        /// The referencing columns in the owning table, in constraint order.
        public var columns: [String]
        /// The schema of the referenced table.
        public var referencedSchema: String
        /// The referenced table.
        public var referencedTable: String
        /// The referenced columns, paired with `columns` by position.
        public var referencedColumns: [String]

        /// Creates a foreign key description.
        public init(name: String, columns: [String], referencedSchema: String, referencedTable: String, referencedColumns: [String]) {
            self.name = name
            self.columns = columns
            self.referencedSchema = referencedSchema
            self.referencedTable = referencedTable
            self.referencedColumns = referencedColumns
        }
    }

    /// A table or view that requests can read and write.
    public struct Table: Sendable {
        /// The schema the table lives in.
        public var schema: String { didSet { quotedName = Self.quotedName(schema, name) } }
        /// The table name.
        public var name: String { didSet { quotedName = Self.quotedName(schema, name) } }
        /// The columns in attribute order (the order `*` returns them in).
        public var columns: [Column]
        /// The primary key columns; the default `on_conflict` target and the PUT key.
        public var primaryKey: [String]
        /// The foreign keys this table owns (references to other tables).
        public var foreignKeys: [ForeignKey]
        /// Whether this is a view (views have no `ctid`, so limited updates/deletes are refused).
        public var isView: Bool

        /// `"schema"."name"` as SQL text, kept in step with both.
        private(set) var quotedName: [UInt8]

        static func quotedName(_ schema: String, _ name: String) -> [UInt8] {
            RecordsSQLWriter.quotedIdentifier(schema) + [UInt8(ascii: ".")] + RecordsSQLWriter.quotedIdentifier(name)
        }

        /// Creates a table description.
        public init(schema: String, name: String, columns: [Column], primaryKey: [String] = [], foreignKeys: [ForeignKey] = [], isView: Bool = false) {
            self.schema = schema
            self.name = name
            self.columns = columns
            self.primaryKey = primaryKey
            self.foreignKeys = foreignKeys
            self.isView = isView
            quotedName = Self.quotedName(schema, name)
        }

        /// The column called `name`, if the table has one.
        public func column(named name: String) -> Column? {
            columnIndex(named: name).map { columns[$0] }
        }

        /// The position of the column called `name` (lengths are compared first: most names differ there).
        func columnIndex(named name: String) -> Int? {
            let length = name.utf8.count
            for index in columns.indices where columns[index].name.utf8.count == length && columns[index].name == name {
                return index
            }
            return nil
        }

    }

    /// A function callable through `/rpc/name` (overloads are not supported: one per name).
    public struct Function: Sendable {
        /// The schema the function lives in.
        public var schema: String
        /// The function name.
        public var name: String
        /// Input arguments in declaration order; an empty name marks an unnamed argument.
        public var arguments: [(name: String, type: String, hasDefault: Bool)]
        /// `pg_get_function_result(oid)`: e.g. `integer`, `SETOF posts`, `TABLE(id integer, title text)`,
        /// `public.posts`. Result columns are taken from a `TABLE(...)` list or from the catalog table
        /// the type names.
        public var returnType: String
        /// Whether the function returns a set (`SETOF` / `TABLE`).
        public var returnsSet: Bool
        /// Whether rows are composite (a table row type or `TABLE(...)`), so they can be selected and filtered.
        public var returnsTable: Bool
        /// Whether the function is VOLATILE (GET calls run in a read-only transaction, as PostgREST does).
        public var isVolatile: Bool

        /// Creates a function description.
        public init(schema: String, name: String, arguments: [(name: String, type: String, hasDefault: Bool)], returnType: String, returnsSet: Bool, returnsTable: Bool, isVolatile: Bool) {
            self.schema = schema
            self.name = name
            self.arguments = arguments
            self.returnType = returnType
            self.returnsSet = returnsSet
            self.returnsTable = returnsTable
            self.isVolatile = isVolatile
        }
    }

    /// Tables and views keyed by `"schema.name"`.
    public var tables: [String: Table]
    /// Functions keyed by `"schema.name"`.
    public var functions: [String: Function]
    /// The schemas requests may name; the first is the default.
    public var exposedSchemas: [String]

    /// Creates a catalog.
    public init(tables: [String: Table] = [:], functions: [String: Function] = [:], exposedSchemas: [String] = ["public"]) {
        self.tables = tables
        self.functions = functions
        self.exposedSchemas = exposedSchemas
    }

    /// Creates a catalog from lists, keying each entry by `"schema.name"`.
    public init(tables: [Table], functions: [Function] = [], exposedSchemas: [String] = ["public"]) {
        var tablesByName: [String: Table] = [:]
        for table in tables { tablesByName[table.schema + "." + table.name] = table }
        var functionsByName: [String: Function] = [:]
        for function in functions { functionsByName[function.schema + "." + function.name] = function }
        self.init(tables: tablesByName, functions: functionsByName, exposedSchemas: exposedSchemas)
    }

    /// The table or view `schema.name`, if the catalog has it.
    public func table(schema: String, name: String) -> Table? {
        tables[Self.key(schema, name)]
    }

    /// The function `schema.name`, if the catalog has it.
    public func function(schema: String, name: String) -> Function? {
        functions[Self.key(schema, name)]
    }

    /// `"schema.name"`, built in one step (this runs on every request).
    static func key(_ schema: String, _ name: String) -> String {
        schema.withUTF8Bytes { schemaBytes in
            name.withUTF8Bytes { nameBytes in
                String(unsafeUninitializedCapacity: schemaBytes.count + 1 + nameBytes.count) { target in
                    var index = 0
                    for byte in schemaBytes { target[index] = byte; index += 1 }
                    target[index] = UInt8(ascii: ".")
                    index += 1
                    for byte in nameBytes { target[index] = byte; index += 1 }
                    return index
                }
            }
        }
    }

    /// Tables of `schema` in no particular order, for relationship searches.
    func tables(inSchema schema: String) -> [Table] {
        var result: [Table] = []
        for table in tables.values where table.schema == schema { result.append(table) }
        return result
    }
}
