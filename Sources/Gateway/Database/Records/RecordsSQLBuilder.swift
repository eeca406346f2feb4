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

/// Appends SQL text and bind parameters; the only way request data reaches the statement.
/// A class over plain memory: appending is a bounds check and a copy, and emitting methods need
/// not mutate the statement (so they can borrow the parsed query instead of copying it).
final class RecordsSQLWriter {
    private var base: UnsafeMutablePointer<UInt8>
    /// Bytes written so far.
    private(set) var count = 0
    private var capacity: Int
    /// Parameter values in `$1...$n` order.
    var binds: [String?] = []
    /// Next `"t<n>"` alias.
    var nextTableAlias = 0
    /// Next `"e<n>"` alias.
    var nextEmbedAlias = 1

    init(capacity: Int = 1024) {
        self.capacity = capacity
        base = .allocate(capacity: capacity)
        binds.reserveCapacity(8)
    }

    deinit {
        base.deallocate()
    }

    @inline(__always)
    private func reserve(_ extra: Int) {
        if count + extra > capacity { grow(extra) }
    }

    @inline(never)
    private func grow(_ extra: Int) {
        var newCapacity = capacity * 2
        while newCapacity < count + extra { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    /// One byte of SQL text.
    @inline(__always)
    func appendByte(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    @inline(__always)
    private func append(_ bytes: UnsafePointer<UInt8>?, _ length: Int) {
        guard let bytes, length > 0 else { return }
        reserve(length)
        (base + count).update(from: bytes, count: length)
        count += length
    }

    /// Fixed SQL text of ours.
    @inline(__always)
    func append(_ text: StaticString) {
        append(text.utf8Start, text.utf8CodeUnitCount)
    }

    /// Bytes prepared earlier (quoted catalog names, cast suffixes).
    @inline(__always)
    func appendBytes(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { append($0.baseAddress, $0.count) }
    }

    /// Text from the catalog (type names) or validated by the parser (cast targets).
    func appendTrusted(_ text: String) {
        text.withUTF8Bytes { append($0.baseAddress, $0.count) }
    }

    /// A double-quoted identifier; `"` is doubled and NUL (which would end the statement) dropped.
    func appendIdentifier(_ name: String) {
        name.withUTF8Bytes { bytes in
            appendByte(UInt8(ascii: "\""))
            var plain = true
            for byte in bytes where byte == UInt8(ascii: "\"") || byte == 0 {
                plain = false
                break
            }
            if plain {
                append(bytes.baseAddress, bytes.count)
            } else {
                for byte in bytes {
                    if byte == 0 { continue }
                    if byte == UInt8(ascii: "\"") { appendByte(byte) }
                    appendByte(byte)
                }
            }
            appendByte(UInt8(ascii: "\""))
        }
    }

    /// `"schema"."name"`
    func appendQualified(_ schema: String, _ name: String) {
        appendIdentifier(schema)
        appendByte(UInt8(ascii: "."))
        appendIdentifier(name)
    }

    /// A non-negative decimal number.
    func appendNumber(_ number: Int) {
        if number < 10 {
            appendByte(UInt8(ascii: "0") + UInt8(number))
            return
        }
        appendNumber(number / 10)
        appendByte(UInt8(ascii: "0") + UInt8(number % 10))
    }

    /// A generated alias such as `"t3"` (table) or `"e2"` (embedding).
    func appendAlias(_ prefix: UInt8, _ number: Int) {
        if number < 10 {
            reserve(4)
            base[count] = UInt8(ascii: "\"")
            base[count + 1] = prefix
            base[count + 2] = UInt8(ascii: "0") + UInt8(number)
            base[count + 3] = UInt8(ascii: "\"")
            count += 4
            return
        }
        appendByte(UInt8(ascii: "\""))
        appendByte(prefix)
        appendNumber(number)
        appendByte(UInt8(ascii: "\""))
    }

    /// `$n::type` (or `$n::type[]`) for a new parameter holding `value`, cast to an expression's type.
    func appendBind(_ value: String?, cast type: RecordsExpressionType, asArray: Bool = false) {
        binds.append(value)
        appendByte(UInt8(ascii: "$"))
        appendNumber(binds.count)
        appendBytes(type.castSuffix)
        if asArray { append("[]") }
    }

    /// `$n::type` for a new parameter holding `value`.
    func appendBind(_ value: String?, type: String) {
        binds.append(value)
        appendByte(UInt8(ascii: "$"))
        appendNumber(binds.count)
        append("::")
        appendTrusted(type)
    }

    /// `$n::type` for a new parameter holding `value`.
    func appendBind(_ value: String?, type: StaticString) {
        binds.append(value)
        appendByte(UInt8(ascii: "$"))
        appendNumber(binds.count)
        append("::")
        append(type)
    }

    /// Appends a copy of bytes written earlier (the WHERE clause reused by the count).
    func appendCopy(of range: Range<Int>) {
        reserve(range.count)
        (base + count).update(from: base + range.lowerBound, count: range.count)
        count += range.count
    }

    /// The statement written so far.
    var sql: String {
        String(decoding: UnsafeBufferPointer(start: base, count: count), as: UTF8.self)
    }

    /// `"name"` with `"` doubled and NUL dropped, as bytes.
    static func quotedIdentifier(_ name: String) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(ascii: "\"")]
        bytes.reserveCapacity(name.utf8.count + 2)
        for byte in name.utf8 where byte != 0 {
            if byte == UInt8(ascii: "\"") { bytes.append(byte) }
            bytes.append(byte)
        }
        bytes.append(UInt8(ascii: "\""))
        return bytes
    }

    /// `::type` as bytes.
    static func castSuffix(_ type: String) -> [UInt8] {
        [UInt8(ascii: ":"), UInt8(ascii: ":")] + Array(type.utf8)
    }
}

/// The SQL type of an emitted expression: what a bind compared with it is cast to.
struct RecordsExpressionType {
    /// The type name, e.g. `integer`.
    var name: String
    /// `::name` as bytes.
    var castSuffix: [UInt8]

    init(name: String, castSuffix: [UInt8]) {
        self.name = name
        self.castSuffix = castSuffix
    }

    init(_ name: String) {
        self.init(name: name, castSuffix: RecordsSQLWriter.castSuffix(name))
    }

    static let text = RecordsExpressionType("text")
    static let jsonb = RecordsExpressionType("jsonb")

    /// The type of a catalog column.
    static func of(_ column: SchemaCatalog.Column) -> RecordsExpressionType {
        RecordsExpressionType(name: column.type, castSuffix: column.castSuffix)
    }
}

/// Prefix of generated table aliases (`"t0"`).
private let aliasTable = UInt8(ascii: "t")
/// Prefix of generated embedding aliases (`"e1"`).
private let aliasEmbed = UInt8(ascii: "e")

/// A foreign-key path from a parent table to an embedded one.
struct RecordsRelationship {
    /// How many target rows a parent row has, as PostgREST names it.
    enum Cardinality: String {
        case manyToOne = "many-to-one", oneToMany = "one-to-many", oneToOne = "one-to-one", manyToMany = "many-to-many"
    }

    var cardinality: Cardinality
    var parent: SchemaCatalog.Table
    var target: SchemaCatalog.Table
    /// The constraint on the referencing side (for many-to-many: junction to parent).
    var constraint: String
    /// Equal columns `parent.x = target.y` (direct relationships).
    var pairs: [(parent: String, target: String)] = []
    /// The junction table of a many-to-many relationship.
    var junction: SchemaCatalog.Table?
    /// The junction's constraint to the target.
    var targetConstraint: String = ""
    /// `junction.x = parent.y`
    var junctionParentPairs: [(junction: String, parent: String)] = []
    /// `junction.x = target.y`
    var junctionTargetPairs: [(junction: String, target: String)] = []

    var isToOne: Bool { cardinality == .manyToOne || cardinality == .oneToOne }

    /// Whether `hint` picks this relationship: its constraint, its single column on either side,
    /// or (many-to-many) its junction table.
    func matches(hint: String) -> Bool {
        switch cardinality {
        case .manyToOne, .oneToMany, .oneToOne:
            return hint == constraint || (pairs.count == 1 && (pairs[0].parent == hint || pairs[0].target == hint))
        case .manyToMany:
            return hint == junction?.name
        }
    }

    /// How PostgREST describes the relationship in an ambiguity error.
    var summary: String {
        if cardinality == .manyToMany, let junction {
            return "\(cardinality.rawValue): \(junction.name) using \(constraint)(\(junctionParentPairs.map(\.junction).joined(separator: ", "))) and \(targetConstraint)(\(junctionTargetPairs.map(\.junction).joined(separator: ", ")))"
        }
        let (owner, referenced, ownerColumns, referencedColumns) = cardinality == .manyToOne
            ? (parent.name, target.name, pairs.map(\.parent), pairs.map(\.target))
            : (target.name, parent.name, pairs.map(\.target), pairs.map(\.parent))
        return "\(cardinality.rawValue): \(constraint) using \(owner)(\(ownerColumns.joined(separator: ", "))) and \(referenced)(\(referencedColumns.joined(separator: ", ")))"
    }

    /// The embedding to write instead, in an ambiguity hint: `target!constraint`.
    var disambiguated: String {
        target.name + "!" + (cardinality == .manyToMany ? (junction?.name ?? constraint) : constraint)
    }
}

/// A table read with its selected columns, embeddings, conditions and order: one SELECT.
/// (A class, built once by the planner, so emission passes it around without copying its fields.)
final class RecordsReadNode {
    let table: SchemaCatalog.Table
    /// `"t<alias>"` in SQL.
    let alias: Int
    /// Scope names from the root, for scoped parameters.
    let path: [String]
    /// Whether the columns are known (false for functions returning an undescribed record).
    let columnsKnown: Bool
    /// The select items as parsed; `.embed` items pair with `embeds` in order.
    let items: [RecordsQuery.SelectItem]
    let embeds: [RecordsEmbedNode]
    /// Whether the query's conditions for `path` filter this read (not for rows a write returned).
    let appliesConditions: Bool
    let limit: Int?
    let offset: Int?

    init(table: SchemaCatalog.Table, alias: Int, path: [String], columnsKnown: Bool = true, items: [RecordsQuery.SelectItem] = [],
         embeds: [RecordsEmbedNode] = [], appliesConditions: Bool = true, limit: Int? = nil, offset: Int? = nil) {
        self.table = table
        self.alias = alias
        self.path = path
        self.columnsKnown = columnsKnown
        self.items = items
        self.embeds = embeds
        self.appliesConditions = appliesConditions
        self.limit = limit
        self.offset = offset
    }
}

/// An embedding: a LATERAL subquery joined to its parent.
struct RecordsEmbedNode {
    var relationship: RecordsRelationship
    var node: RecordsReadNode
    /// The key in the parent object.
    var outputName: String
    /// The name scoped parameters use.
    var scopeName: String
    /// `"e<lateralAlias>"` in SQL.
    var lateralAlias: Int
    /// `"t<junctionAlias>"` for many-to-many.
    var junctionAlias: Int
    var isInner: Bool
    var isSpread: Bool
}

/// The state of building one statement: planning (catalog checks) and SQL emission.
struct RecordsStatement {
    let catalog: SchemaCatalog
    let schema: String
    let request: RecordsRequest
    let preferences: RecordsPreferences
    let writer = RecordsSQLWriter()
    var singleObject = false
    var countRequested: String?
    var returnMinimal = false
    var preferenceApplied: [String] = []
    var rangeOffset = 0
    var readOnly = false
    /// The parsed query string; plan nodes refer to its conditions and orders by scope path.
    let query: RecordsQuery
    /// Every scope path the select embeds, to reject parameters for resources that are not embedded.
    var embeddedPaths: [[String]] = []

    init(catalog: SchemaCatalog, schema: String, request: RecordsRequest, preferences: RecordsPreferences, query: RecordsQuery) {
        self.catalog = catalog
        self.schema = schema
        self.request = request
        self.preferences = preferences
        self.query = query
    }

    /// The statement and how to answer with it.
    func result() -> GeneratedSQL {
        GeneratedSQL(sql: writer.sql, binds: writer.binds, singleObject: singleObject, countRequested: countRequested,
                     returnMinimal: returnMinimal, preferenceApplied: preferenceApplied, rangeOffset: rangeOffset, readOnly: readOnly)
    }

    /// The next `"t<n>"` table alias.
    func takeTableAlias() -> Int {
        defer { writer.nextTableAlias += 1 }
        return writer.nextTableAlias
    }

    /// The next `"e<n>"` embedding alias.
    func takeEmbedAlias() -> Int {
        defer { writer.nextEmbedAlias += 1 }
        return writer.nextEmbedAlias
    }

    // MARK: - Planning

    /// Resolves `items` against `table`, recursively through embeddings.
    mutating func plan(_ table: SchemaCatalog.Table, items: [RecordsQuery.SelectItem], path: [String],
                       columnsKnown: Bool = true, includeConditions: Bool = true) throws(PostgRESTError) -> RecordsReadNode {
        let alias = takeTableAlias()
        var embeds: [RecordsEmbedNode] = []
        for index in items.indices {
            if let name = items[index].selectedColumnName {
                if columnsKnown, table.columnIndex(named: name) == nil {
                    throw .undefinedColumn(name, table: table.name)
                }
                continue
            }
            if case .embed(let embed) = items[index] {
                let relationship = try relationship(from: table, to: embed)
                if embed.isSpread, !relationship.isToOne {
                    throw .spreadNotToOne(origin: table.name, target: embed.relation)
                }
                let lateral = takeEmbedAlias()
                let childPath = path + [embed.scopeName]
                embeddedPaths.append(childPath)
                let child = try plan(relationship.target, items: embed.items, path: childPath)
                let junctionAlias = relationship.junction == nil ? -1 : takeTableAlias()
                embeds.append(RecordsEmbedNode(
                    relationship: relationship, node: child, outputName: embed.alias ?? embed.relation,
                    scopeName: embed.scopeName, lateralAlias: lateral, junctionAlias: junctionAlias,
                    isInner: embed.join == .inner, isSpread: embed.isSpread))
            }
        }
        var limit: Int?
        var offset: Int?
        if !path.isEmpty {
            for scoped in query.embeddedRanges where scoped.path == path {
                limit = scoped.limit ?? limit
                offset = scoped.offset ?? offset
            }
        }
        return RecordsReadNode(table: table, alias: alias, path: path, columnsKnown: columnsKnown, items: items, embeds: embeds,
                               appliesConditions: includeConditions, limit: limit, offset: offset)
    }

    /// Rejects scoped parameters whose path is not an embedding of the select.
    func checkScopes() throws(PostgRESTError) {
        func check(_ path: [String]) throws(PostgRESTError) {
            guard !path.isEmpty, !embeddedPaths.contains(path) else { return }
            // Name the first resource along the path that is missing.
            for length in 1...path.count where !embeddedPaths.contains(Array(path.prefix(length))) {
                throw .notEmbedded(path[length - 1])
            }
        }
        for scoped in query.conditions { try check(scoped.path) }
        for scoped in query.embeddedOrders { try check(scoped.path) }
        for scoped in query.embeddedRanges { try check(scoped.path) }
    }

    /// Finds the single relationship `embed` means from `parent` (PGRST200 if none, 300 PGRST201 if several),
    /// following PostgREST's rules: the name is a table (optionally narrowed by a hint: constraint,
    /// column on either side, or junction table), or, without a hint, a constraint or a foreign key
    /// column of the parent. On a self-reference, `t(*)` / `t!fk_column(*)` are the children and
    /// `fk_column(*)` is the parent row.
    func relationship(from parent: SchemaCatalog.Table, to embed: RecordsQuery.Embed) throws(PostgRESTError) -> RecordsRelationship {
        var candidates: [RecordsRelationship] = []
        let relation = embed.relation
        if let target = catalog.table(schema: parent.schema, name: relation) ?? catalog.table(schema: schema, name: relation) {
            let isSelf = target.schema == parent.schema && target.name == parent.name
            for candidate in relationships(between: parent, and: target) {
                let isToMany = candidate.cardinality == .oneToMany || candidate.cardinality == .oneToOne
                if isSelf {
                    guard isToMany else { continue }
                    if let hint = embed.hint {
                        guard hint == candidate.constraint || (candidate.pairs.count == 1 && candidate.pairs[0].target == hint) else { continue }
                    }
                } else if let hint = embed.hint {
                    guard candidate.matches(hint: hint) else { continue }
                }
                candidates.append(candidate)
            }
        }
        if embed.hint == nil {
            // `author_id(*)` (a foreign key column) or `posts_author_id_fkey(*)` (a constraint).
            for key in parent.foreignKeys where key.name == relation || key.columns == [relation] {
                if let target = catalog.table(schema: key.referencedSchema, name: key.referencedTable), !target.isView {
                    candidates.append(Self.manyToOne(parent, target, key))
                }
            }
            for other in catalog.tables(inSchema: parent.schema) where !other.isView {
                for key in other.foreignKeys where key.name == relation
                    && key.referencedSchema == parent.schema && key.referencedTable == parent.name {
                    candidates.append(Self.oneToMany(parent, other, key))
                }
            }
        }
        guard !candidates.isEmpty else {
            throw .noRelationship(parent: parent.name, child: relation, hint: embed.hint, schema: parent.schema)
        }
        guard candidates.count == 1 else {
            // Catalog order is a dictionary's: sort so the message is the same every time.
            candidates.sort { ($0.target.name, $0.constraint, $0.targetConstraint) < ($1.target.name, $1.constraint, $1.targetConstraint) }
            throw .ambiguousRelationship(parent: parent.name, child: relation,
                                         descriptions: candidates.map(\.summary), hints: candidates.map(\.disambiguated))
        }
        return candidates[0]
    }

    /// Every foreign-key path between two tables: many-to-one, one-to-many (or one-to-one), many-to-many.
    func relationships(between parent: SchemaCatalog.Table, and target: SchemaCatalog.Table) -> [RecordsRelationship] {
        var found: [RecordsRelationship] = []
        for key in parent.foreignKeys where key.referencedSchema == target.schema && key.referencedTable == target.name {
            found.append(Self.manyToOne(parent, target, key))
        }
        for key in target.foreignKeys where key.referencedSchema == parent.schema && key.referencedTable == parent.name {
            found.append(Self.oneToMany(parent, target, key))
        }
        for junction in catalog.tables(inSchema: parent.schema) where !junction.primaryKey.isEmpty {
            if junction.schema == parent.schema && junction.name == parent.name { continue }
            if junction.schema == target.schema && junction.name == target.name { continue }
            let primaryKey = Set(junction.primaryKey)
            for toParent in junction.foreignKeys
            where toParent.referencedSchema == parent.schema && toParent.referencedTable == parent.name
                && primaryKey.isSuperset(of: toParent.columns) {
                for toTarget in junction.foreignKeys
                where toTarget.name != toParent.name && toTarget.referencedSchema == target.schema
                    && toTarget.referencedTable == target.name && primaryKey.isSuperset(of: toTarget.columns) {
                    var relationship = RecordsRelationship(cardinality: .manyToMany, parent: parent, target: target, constraint: toParent.name)
                    relationship.junction = junction
                    relationship.targetConstraint = toTarget.name
                    relationship.junctionParentPairs = Array(zip(toParent.columns, toParent.referencedColumns)).map { ($0.0, $0.1) }
                    relationship.junctionTargetPairs = Array(zip(toTarget.columns, toTarget.referencedColumns)).map { ($0.0, $0.1) }
                    found.append(relationship)
                }
            }
        }
        return found
    }

    /// `parent` holds `key`, which references `target`: at most one target row per parent.
    static func manyToOne(_ parent: SchemaCatalog.Table, _ target: SchemaCatalog.Table, _ key: SchemaCatalog.ForeignKey) -> RecordsRelationship {
        var relationship = RecordsRelationship(cardinality: .manyToOne, parent: parent, target: target, constraint: key.name)
        relationship.pairs = Array(zip(key.columns, key.referencedColumns)).map { (parent: $0.0, target: $0.1) }
        return relationship
    }

    /// `target` holds `key`, which references `parent`: any number of target rows per parent.
    static func oneToMany(_ parent: SchemaCatalog.Table, _ target: SchemaCatalog.Table, _ key: SchemaCatalog.ForeignKey) -> RecordsRelationship {
        // A foreign key that is also the child's primary key allows at most one child: one-to-one.
        let isOneToOne = !target.primaryKey.isEmpty && Set(key.columns) == Set(target.primaryKey)
        var relationship = RecordsRelationship(cardinality: isOneToOne ? .oneToOne : .oneToMany, parent: parent, target: target, constraint: key.name)
        relationship.pairs = Array(zip(key.referencedColumns, key.columns)).map { (parent: $0.0, target: $0.1) }
        return relationship
    }

    // MARK: - Emitting reads

    /// `SELECT <items> FROM <source> AS "tN" <laterals> WHERE ... ORDER BY ... LIMIT ... OFFSET ...` for
    /// an embedded node (the caller writes the parent join condition through `joinTo`).
    func emitEmbeddedSelect(_ embed: RecordsEmbedNode, parentAlias: Int) throws(PostgRESTError) {
        let node = embed.node
        let relationship = embed.relationship
        writer.append("SELECT ")
        try emitSelectList(node)
        writer.append(" FROM ")
        writer.appendBytes(node.table.quotedName)
        writer.append(" AS ")
        writer.appendAlias(aliasTable, node.alias)
        if let junction = relationship.junction {
            writer.append(" INNER JOIN ")
            writer.appendQualified(junction.schema, junction.name)
            writer.append(" AS ")
            writer.appendAlias(aliasTable, embed.junctionAlias)
            writer.append(" ON ")
            for (index, pair) in relationship.junctionTargetPairs.enumerated() {
                if index > 0 { writer.append(" AND ") }
                writer.appendAlias(aliasTable, embed.junctionAlias)
                writer.append(".")
                writer.appendIdentifier(pair.junction)
                writer.append(" = ")
                writer.appendAlias(aliasTable, node.alias)
                writer.append(".")
                writer.appendIdentifier(pair.target)
            }
        }
        for child in node.embeds {
            try emitLateral(child, parent: node)
        }
        writer.append(" WHERE ")
        if relationship.junction != nil {
            for (index, pair) in relationship.junctionParentPairs.enumerated() {
                if index > 0 { writer.append(" AND ") }
                writer.appendAlias(aliasTable, embed.junctionAlias)
                writer.append(".")
                writer.appendIdentifier(pair.junction)
                writer.append(" = ")
                writer.appendAlias(aliasTable, parentAlias)
                writer.append(".")
                writer.appendIdentifier(pair.parent)
            }
        } else {
            for (index, pair) in relationship.pairs.enumerated() {
                if index > 0 { writer.append(" AND ") }
                writer.appendAlias(aliasTable, node.alias)
                writer.append(".")
                writer.appendIdentifier(pair.target)
                writer.append(" = ")
                writer.appendAlias(aliasTable, parentAlias)
                writer.append(".")
                writer.appendIdentifier(pair.parent)
            }
        }
        for index in query.conditions.indices where query.conditions[index].path == node.path {
            writer.append(" AND ")
            try emitCondition(query.conditions[index].condition, node: node, allowEmbeds: true, parenthesized: true)
        }
        try emitOrder(node)
        emitRange(limit: node.limit, offset: node.offset)
    }

    /// `LEFT|INNER JOIN LATERAL (...) AS "eK" ON ...` for one embedding of `parent`.
    func emitLateral(_ embed: RecordsEmbedNode, parent: RecordsReadNode) throws(PostgRESTError) {
        writer.append(embed.isInner ? " INNER JOIN LATERAL (" : " LEFT JOIN LATERAL (")
        if embed.isSpread {
            try emitEmbeddedSelect(embed, parentAlias: parent.alias)
            writer.append(") AS ")
            writer.appendAlias(aliasEmbed, embed.lateralAlias)
            writer.append(" ON TRUE")
            return
        }
        writer.append(embed.relationship.isToOne ? "SELECT row_to_json(_pgrst_e) AS v FROM (" : "SELECT json_agg(_pgrst_e) AS v FROM (")
        try emitEmbeddedSelect(embed, parentAlias: parent.alias)
        writer.append(") AS _pgrst_e) AS ")
        writer.appendAlias(aliasEmbed, embed.lateralAlias)
        if embed.isInner {
            writer.append(" ON ")
            writer.appendAlias(aliasEmbed, embed.lateralAlias)
            writer.append(".v IS NOT NULL")
        } else {
            writer.append(" ON TRUE")
        }
    }

    /// The comma-separated select list of `node`.
    func emitSelectList(_ node: RecordsReadNode) throws(PostgRESTError) {
        var embedIndex = 0
        let items = node.items
        for index in items.indices {
            if index > 0 { writer.append(", ") }
            switch items[index] {
            case .allColumns:
                writer.appendAlias(aliasTable, node.alias)
                writer.append(".*")
            case .field(let selected):
                emitFieldExpression(selected.field, alias: node.alias, table: node.table, column: node.table.columnIndex(named: selected.field.name))
                if let cast = selected.cast {
                    writer.append("::")
                    writer.appendTrusted(cast)
                }
                if selected.alias != nil || selected.cast != nil || !selected.field.jsonPath.isEmpty {
                    writer.append(" AS ")
                    writer.appendIdentifier(selected.alias ?? selected.field.outputName)
                }
            case .embed:
                let embed = node.embeds[embedIndex]
                embedIndex += 1
                if embed.isSpread {
                    writer.appendAlias(aliasEmbed, embed.lateralAlias)
                    writer.append(".*")
                } else if embed.relationship.isToOne {
                    writer.appendAlias(aliasEmbed, embed.lateralAlias)
                    writer.append(".v AS ")
                    writer.appendIdentifier(embed.outputName)
                } else {
                    writer.append("coalesce(")
                    writer.appendAlias(aliasEmbed, embed.lateralAlias)
                    writer.append(".v, '[]') AS ")
                    writer.appendIdentifier(embed.outputName)
                }
            }
        }
    }

    /// `"tN"."col"` or `("tN"."col"->$1::text->>$2::text)`; returns the expression's SQL type.
    @discardableResult
    func emitFieldExpression(_ field: RecordsQuery.Field, alias: Int, table: SchemaCatalog.Table, column: Int?) -> RecordsExpressionType {
        if field.jsonPath.isEmpty {
            writer.appendAlias(aliasTable, alias)
            writer.append(".")
            guard let column else {
                writer.appendIdentifier(field.name)
                return .text
            }
            writer.appendBytes(table.columns[column].quotedName)
            return .of(table.columns[column])
        }
        writer.append("(")
        writer.appendAlias(aliasTable, alias)
        writer.append(".")
        if let column { writer.appendBytes(table.columns[column].quotedName) } else { writer.appendIdentifier(field.name) }
        var yieldsText = false
        for step in field.jsonPath {
            writer.append(step.yieldsText ? "->>" : "->")
            switch step.operand {
            case .key(let key): writer.appendBind(key, type: "text")
            case .index(let index): writer.appendBind(String(index), type: "integer")
            }
            yieldsText = step.yieldsText
        }
        writer.append(")")
        if yieldsText { return .text }
        if let column, table.columns[column].type == "json" { return .of(table.columns[column]) }
        return .jsonb
    }

    /// `ORDER BY ...` for `node`, if it has order terms.
    func emitOrder(_ node: RecordsReadNode) throws(PostgRESTError) {
        if node.path.isEmpty {
            let terms = query.order
            for index in terms.indices {
                writer.append(index == 0 ? " ORDER BY " : ", ")
                try emitOrderTerm(terms[index], node: node)
            }
            return
        }
        var first = true
        let orders = query.embeddedOrders
        for index in orders.indices where orders[index].path == node.path {
            for termIndex in orders[index].terms.indices {
                writer.append(first ? " ORDER BY " : ", ")
                first = false
                try emitOrderTerm(orders[index].terms[termIndex], node: node)
            }
        }
    }

    /// One `ORDER BY` term: a column (or JSON path) of the node, or of a to-one embedding.
    func emitOrderTerm(_ term: RecordsQuery.OrderTerm, node: RecordsReadNode) throws(PostgRESTError) {
        if let relation = term.relation {
            guard let embed = node.embeds.first(where: { $0.scopeName == relation }) else {
                throw .notEmbedded(relation)
            }
            guard embed.relationship.isToOne else {
                throw .relatedOrderNotToOne(origin: node.table.name, target: relation)
            }
            try emitRelatedOrderExpression(term.field, embed: embed, parentAlias: node.alias)
        } else {
            let column = node.table.columnIndex(named: term.field.name)
            if node.columnsKnown, column == nil { throw .undefinedColumn(term.field.name, table: node.table.name) }
            emitFieldExpression(term.field, alias: node.alias, table: node.table, column: column)
        }
        switch term.direction {
        case .asc: writer.append(" ASC")
        case .desc: writer.append(" DESC")
        case nil: break
        }
        switch term.nulls {
        case .first: writer.append(" NULLS FIRST")
        case .last: writer.append(" NULLS LAST")
        case nil: break
        }
    }

    /// `(SELECT "tX"."col" FROM target AS "tX" WHERE <join>)`: a to-one embedding's column as a sort key.
    func emitRelatedOrderExpression(_ field: RecordsQuery.Field, embed: RecordsEmbedNode, parentAlias: Int) throws(PostgRESTError) {
        let target = embed.relationship.target
        guard let column = target.columnIndex(named: field.name) else { throw .undefinedColumn(field.name, table: target.name) }
        let alias = takeTableAlias()
        writer.append("(SELECT ")
        emitFieldExpression(field, alias: alias, table: target, column: column)
        writer.append(" FROM ")
        writer.appendQualified(target.schema, target.name)
        writer.append(" AS ")
        writer.appendAlias(aliasTable, alias)
        writer.append(" WHERE ")
        for (index, pair) in embed.relationship.pairs.enumerated() {
            if index > 0 { writer.append(" AND ") }
            writer.appendAlias(aliasTable, alias)
            writer.append(".")
            writer.appendIdentifier(pair.target)
            writer.append(" = ")
            writer.appendAlias(aliasTable, parentAlias)
            writer.append(".")
            writer.appendIdentifier(pair.parent)
        }
        writer.append(")")
    }

    /// ` LIMIT $n OFFSET $m`, as far as given (offset 0 is left out).
    func emitRange(limit: Int?, offset: Int?) {
        if let limit {
            writer.append(" LIMIT ")
            writer.appendBind(Self.decimal(limit), type: "bigint")
        }
        if let offset, offset > 0 {
            writer.append(" OFFSET ")
            writer.appendBind(Self.decimal(offset), type: "bigint")
        }
    }

    // MARK: - Emitting conditions

    /// One condition; with `allowEmbeds`, a filter on an embedding's name tests whether it matched.
    func emitCondition(_ condition: RecordsQuery.Condition, node: RecordsReadNode, allowEmbeds: Bool, parenthesized: Bool) throws(PostgRESTError) {
        switch condition {
        case .filter(let filter):
            if parenthesized { writer.append("(") }
            try emitFilter(filter, node: node, allowEmbeds: allowEmbeds)
            if parenthesized { writer.append(")") }
        case .logic(let negated, let logicOperator, let children):
            if negated { writer.append("NOT ") }
            writer.append("(")
            for (index, child) in children.enumerated() {
                if index > 0 { writer.append(logicOperator == .and ? " AND " : " OR ") }
                try emitCondition(child, node: node, allowEmbeds: allowEmbeds, parenthesized: true)
            }
            writer.append(")")
        }
    }

    /// Whether pattern operators apply to `type` without a cast to text.
    static func isText(_ type: String) -> Bool {
        switch type {
        case "text", "citext", "name", "character varying", "character", "varchar", "char", "bpchar": return true
        default: return type.hasPrefix("character varying(") || type.hasPrefix("character(")
        }
    }

    /// One filter against the node's columns, every value a bind cast to the column's type.
    func emitFilter(_ filter: RecordsQuery.Filter, node: RecordsReadNode, allowEmbeds: Bool) throws(PostgRESTError) {
        let field = filter.field
        if allowEmbeds, field.jsonPath.isEmpty, let embed = node.embeds.first(where: { $0.scopeName == field.name }) {
            // `author=is.null` / `author=not.is.null`: whether the embedding found anything.
            guard case .is(let value) = filter.operation, value == .null || value == .notNull, !embed.isSpread else {
                throw .unacceptableFilter(field.name)
            }
            let isNull = (value == .null) != filter.negated
            writer.appendAlias(aliasEmbed, embed.lateralAlias)
            writer.append(isNull ? ".v IS NULL" : ".v IS NOT NULL")
            return
        }
        let column = node.table.columnIndex(named: field.name)
        if node.columnsKnown, column == nil { throw .undefinedColumn(field.name, table: node.table.name) }
        if filter.negated { writer.append("NOT ") }
        switch filter.operation {
        case .is(let value):
            emitFieldExpression(field, alias: node.alias, table: node.table, column: column)
            switch value {
            case .null: writer.append(" IS NULL")
            case .notNull: writer.append(" IS NOT NULL")
            case .isTrue: writer.append(" IS TRUE")
            case .isFalse: writer.append(" IS FALSE")
            case .unknown: writer.append(" IS UNKNOWN")
            }
        case .list(let values):
            let type = emitFieldExpression(field, alias: node.alias, table: node.table, column: column)
            writer.append(" = ANY(")
            writer.appendBind(Self.arrayLiteral(values), cast: type, asArray: true)
            writer.append(")")
        case .binary(let op, let value):
            try emitBinary(op, value: value, field: field, node: node, column: column)
        case .quantified(let op, let quantifier, let value):
            let valueType: RecordsExpressionType
            if op == .like || op == .ilike || op == .match || op == .imatch {
                emitTextExpression(field, node: node, column: column)
                valueType = .text
            } else {
                valueType = emitFieldExpression(field, alias: node.alias, table: node.table, column: column)
            }
            writer.append(" ")
            Self.appendOperatorSymbol(op, to: writer)
            writer.append(quantifier == .any ? " ANY(" : " ALL(")
            let pattern = (op == .like || op == .ilike) ? Self.likePattern(value) : value
            writer.appendBind(pattern, cast: valueType, asArray: true)
            writer.append(")")
        case .fullText(let op, let configuration, let value):
            let isVector = column.map { node.table.columns[$0].type == "tsvector" } == true && field.jsonPath.isEmpty
            if isVector {
                emitFieldExpression(field, alias: node.alias, table: node.table, column: column)
            } else {
                writer.append("to_tsvector(")
                if let configuration {
                    writer.appendBind(configuration, type: "regconfig")
                    writer.append(", ")
                }
                emitFieldExpression(field, alias: node.alias, table: node.table, column: column)
                writer.append(")")
            }
            switch op {
            case .fts: writer.append(" @@ to_tsquery(")
            case .plfts: writer.append(" @@ plainto_tsquery(")
            case .phfts: writer.append(" @@ phraseto_tsquery(")
            case .wfts: writer.append(" @@ websearch_to_tsquery(")
            }
            if let configuration {
                writer.appendBind(configuration, type: "regconfig")
                writer.append(", ")
            }
            writer.appendBind(value, type: "text")
            writer.append(")")
        }
    }

    /// `expression <op> $n::type`; pattern operators compare as text.
    func emitBinary(_ op: RecordsQuery.Operator, value: String, field: RecordsQuery.Field, node: RecordsReadNode,
                             column: Int?) throws(PostgRESTError) {
        switch op {
        case .like, .ilike, .match, .imatch:
            emitTextExpression(field, node: node, column: column)
            writer.append(" ")
            Self.appendOperatorSymbol(op, to: writer)
            writer.append(" ")
            writer.appendBind(op == .like || op == .ilike ? Self.likePattern(value) : value, type: "text")
        default:
            let type = emitFieldExpression(field, alias: node.alias, table: node.table, column: column)
            writer.append(" ")
            Self.appendOperatorSymbol(op, to: writer)
            writer.append(" ")
            var value = value
            // `ov.(1,2)` on an array column means the array `{1,2}`, as in PostgREST.
            if op == .ov, type.name.hasSuffix("[]"), value.hasPrefix("("), value.hasSuffix(")") {
                value = "{" + value.dropFirst().dropLast() + "}"
            }
            writer.appendBind(value, cast: type)
        }
    }

    /// The field as text for pattern operators (non-text columns are cast, so `id=like.1*` works).
    func emitTextExpression(_ field: RecordsQuery.Field, node: RecordsReadNode, column: Int?) {
        let type = emitFieldExpression(field, alias: node.alias, table: node.table, column: column)
        if !Self.isText(type.name) { writer.append("::text") }
    }

    /// The SQL spelling of a PostgREST operator.
    static func appendOperatorSymbol(_ op: RecordsQuery.Operator, to writer: RecordsSQLWriter) {
        switch op {
        case .eq: writer.append("=")
        case .neq: writer.append("<>")
        case .gt: writer.append(">")
        case .gte: writer.append(">=")
        case .lt: writer.append("<")
        case .lte: writer.append("<=")
        case .like: writer.append("LIKE")
        case .ilike: writer.append("ILIKE")
        case .match: writer.append("~")
        case .imatch: writer.append("~*")
        case .isdistinct: writer.append("IS DISTINCT FROM")
        case .cs: writer.append("@>")
        case .cd: writer.append("<@")
        case .ov: writer.append("&&")
        case .sl: writer.append("<<")
        case .sr: writer.append(">>")
        case .nxr: writer.append("&<")
        case .nxl: writer.append("&>")
        case .adj: writer.append("-|-")
        }
    }

    /// A non-negative integer as decimal text, without `description`'s generic machinery.
    static func decimal(_ number: Int) -> String {
        guard number >= 0 else { return String(number) }
        var digits = 1
        var rest = number / 10
        while rest > 0 { digits += 1; rest /= 10 }
        return String(unsafeUninitializedCapacity: digits) { target in
            var value = number
            for index in stride(from: digits - 1, through: 0, by: -1) {
                target[index] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            }
            return digits
        }
    }

    /// PostgREST's `*` wildcard as SQL's `%`.
    static func likePattern(_ value: String) -> String {
        guard value.utf8.contains(UInt8(ascii: "*")) else { return value }
        return value.withUTF8Bytes { source in
            String(unsafeUninitializedCapacity: source.count) { target in
                for index in source.indices {
                    target[index] = source[index] == UInt8(ascii: "*") ? UInt8(ascii: "%") : source[index]
                }
                return source.count
            }
        }
    }

    /// A PostgreSQL array literal with every element quoted: `{"a","b \"c\""}`.
    static func arrayLiteral(_ values: [String]) -> String {
        var bytes: [UInt8] = [UInt8(ascii: "{")]
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes.append(UInt8(ascii: "\""))
            for byte in value.utf8 {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { bytes.append(UInt8(ascii: "\\")) }
                bytes.append(byte)
            }
            bytes.append(UInt8(ascii: "\""))
        }
        bytes.append(UInt8(ascii: "}"))
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: - Reads

    /// Embeddings that the node's own conditions test (`author=is.null`): the count needs those joins too.
    func referencedEmbeds(_ node: RecordsReadNode) -> Set<Int> {
        var found = Set<Int>()
        guard node.appliesConditions else { return found }
        func visit(_ condition: RecordsQuery.Condition) {
            switch condition {
            case .filter(let filter):
                if filter.field.jsonPath.isEmpty, let embed = node.embeds.first(where: { $0.scopeName == filter.field.name }) {
                    found.insert(embed.lateralAlias)
                }
            case .logic(_, _, let children):
                for child in children { visit(child) }
            }
        }
        for scoped in query.conditions where scoped.path == node.path { visit(scoped.condition) }
        return found
    }

    /// Limit and offset from `limit`/`offset` intersected with the `Range` header.
    mutating func rootRange() throws(PostgRESTError) -> (limit: Int?, offset: Int) {
        // Bounds beyond 2^52 rows mean "no bound" in practice; capping keeps the arithmetic from overflowing.
        let cap = 1 << 52
        var lower = min(query.offset ?? 0, cap)
        var upper: Int? = query.limit.map { lower + min($0, cap) - 1 }
        if let header = try RecordsRangeHeader.parse(request.range) {
            lower = max(lower, min(header.lower, cap))
            if let headerUpper = header.upper.map({ min($0, 2 * cap) }) { upper = upper.map { min($0, headerUpper) } ?? headerUpper }
        }
        rangeOffset = lower
        let count = upper.map { max(0, $0 - lower + 1) }
        guard let maxRows = request.maxRows else { return (count, lower) }
        return (min(count ?? maxRows, maxRows), lower)
    }

    /// Records `Prefer: count=` (every kind is computed exactly) for the response.
    mutating func applyCountPreference() {
        if let count = preferences.count {
            countRequested = count
            preferenceApplied.append("count=" + count)
        }
    }

    /// Where a root read gets its rows: a table, a function call, or the rows a write returned.
    enum ReadSource {
        case table
        case written
        case function(RecordsFunctionCall)
    }

    /// GET/HEAD on a table or view.
    mutating func buildRead(_ table: SchemaCatalog.Table) throws(PostgRESTError) {
        readOnly = true
        applyCountPreference()
        let root = try plan(table, items: query.select, path: [])
        try checkScopes()
        let (limit, offset) = try rootRange()
        writer.append("WITH pgrst_source AS (")
        pendingTotal = try emitRootSelect(root, source: .table, limit: limit, offset: offset, withCount: countRequested != nil)
        finishRead(emptyBody: request.method == .head)
    }

    /// Writes the root `SELECT ... FROM ... WHERE ... ORDER BY ... LIMIT ...)`. When `withCount`, returns
    /// where the `FROM ... WHERE ...` text sits (only the joins the filters need), so the total can reuse it.
    func emitRootSelect(_ root: RecordsReadNode, source: ReadSource, limit: Int?, offset: Int, withCount: Bool) throws(PostgRESTError) -> [Range<Int>]? {
        writer.append("SELECT ")
        try emitSelectList(root)
        let fromStart = writer.count
        writer.append(" FROM ")
        switch source {
        case .table:
            writer.appendBytes(root.table.quotedName)
        case .written:
            writer.append("pgrst_source")
        case .function(let call):
            emitCallSource(call)
        }
        writer.append(" AS ")
        writer.appendAlias(aliasTable, root.alias)
        var countParts: [Range<Int>] = []
        if withCount { countParts.append(fromStart..<writer.count) }
        if !root.embeds.isEmpty {
            let referenced = referencedEmbeds(root)
            for embed in root.embeds {
                let start = writer.count
                try emitLateral(embed, parent: root)
                if withCount, embed.isInner || referenced.contains(embed.lateralAlias) { countParts.append(start..<writer.count) }
            }
        }
        let whereStart = writer.count
        try emitConditions(root, allowEmbeds: true)
        if withCount { countParts.append(whereStart..<writer.count) }
        try emitOrder(root)
        emitRange(limit: limit, offset: offset)
        writer.append(")")
        return withCount ? countParts : nil
    }

    /// Byte ranges forming `FROM ... WHERE ...` for the total count, set by `emitRootSelect`.
    var pendingTotal: [Range<Int>]?

    /// `SELECT count(*) AS page_total, <total> AS total, <json> AS body FROM pgrst_source`.
    mutating func finishRead(emptyBody: Bool) {
        writer.append(" SELECT count(*) AS page_total, ")
        emitTotal()
        if emptyBody {
            returnMinimal = true
            writer.append(" AS total, NULL::text AS body FROM pgrst_source AS _pgrst_t")
        } else {
            writer.append(" AS total, coalesce(json_agg(_pgrst_t), '[]')::text AS body FROM pgrst_source AS _pgrst_t")
        }
    }

    /// `(SELECT count(*) FROM ... WHERE ...)` reusing the root read's text, or `NULL::bigint`.
    func emitTotal() {
        guard let parts = pendingTotal else {
            writer.append("NULL::bigint")
            return
        }
        writer.append("(SELECT count(*)")
        for part in parts { writer.appendCopy(of: part) }
        writer.append(")")
    }

    // MARK: - Writes

    /// `return=` for a write: minimal unless asked otherwise, as in PostgREST.
    mutating func applyReturnPreference() -> RecordsPreferences.Return {
        let preference = preferences.returnPreference ?? .minimal
        if let given = preferences.returnPreference { preferenceApplied.append("return=" + given.rawValue) }
        returnMinimal = preference != .representation
        return preference
    }

    /// `RETURNING "t0".*`, the primary key (headers-only, for Location) or `1` (minimal).
    func emitReturning(_ preference: RecordsPreferences.Return, table: SchemaCatalog.Table) {
        switch preference {
        case .representation:
            writer.append(" RETURNING \"t0\".*")
        case .headersOnly where !table.primaryKey.isEmpty:
            writer.append(" RETURNING ")
            for (index, key) in table.primaryKey.enumerated() {
                if index > 0 { writer.append(", ") }
                writer.append("\"t0\".")
                writer.appendIdentifier(key)
            }
        default:
            // No columns: RLS SELECT policies do not apply to rows the caller cannot read back.
            writer.append(" RETURNING 1")
        }
    }

    /// The final SELECT after a write CTE named `pgrst_source`.
    mutating func finishWrite(_ preference: RecordsPreferences.Return, table: SchemaCatalog.Table) throws(PostgRESTError) {
        if preference == .representation {
            // Embeddings and renames apply to the returned rows; root filters were applied by the write.
            let root = try plan(table, items: query.select, path: [], includeConditions: false)
            try checkScopes()
            writer.append(", pgrst_result AS (")
            _ = try emitRootSelect(root, source: .written, limit: nil, offset: 0, withCount: false)
            writer.append(" SELECT count(*) AS page_total, ")
            if countRequested != nil { writer.append("(SELECT count(*) FROM pgrst_source)") } else { writer.append("NULL::bigint") }
            writer.append(" AS total, coalesce(json_agg(_pgrst_t), '[]')::text AS body FROM pgrst_result AS _pgrst_t")
            return
        }
        try checkScopes()
        writer.append(" SELECT count(*) AS page_total, ")
        writer.append(countRequested != nil ? "count(*)" : "NULL::bigint")
        if preference == .headersOnly, !table.primaryKey.isEmpty {
            writer.append(" AS total, coalesce(json_agg(_pgrst_t), '[]')::text AS body FROM pgrst_source AS _pgrst_t")
        } else {
            writer.append(" AS total, NULL::text AS body FROM pgrst_source")
        }
    }

    /// Checks that `name` is a column of `table` (PGRST204 otherwise).
    static func requireColumn(_ name: String, in table: SchemaCatalog.Table) throws(PostgRESTError) {
        guard table.column(named: name) != nil else { throw .columnNotFound(name, table: table.name) }
    }

    /// Parses and checks the body of an insert/upsert; returns its objects and the columns to write.
    func insertColumns(_ table: SchemaCatalog.Table) throws(PostgRESTError) -> (body: RecordsRequestBody, columns: [String]) {
        guard let bytes = request.body else { throw .invalidBody(RecordsRequestBody.invalidJSONMessage) }
        let body = try RecordsRequestBody.objects(in: bytes)
        var columns: [String] = []
        if let restricted = query.columns {
            for name in restricted {
                try Self.requireColumn(name, in: table)
                if !columns.contains(name) { columns.append(name) }
            }
        } else {
            // Like PostgREST: the objects of a bulk insert share one set of keys (unless absent keys
            // are asked to take their defaults).
            for object in body.objects {
                for key in object.keys where !columns.contains(key) {
                    try Self.requireColumn(key, in: table)
                    columns.append(key)
                }
            }
            if !preferences.missingDefault, let first = body.objects.first {
                let keys = Set(first.keys)
                if body.objects.dropFirst().contains(where: { Set($0.keys) != keys }) {
                    throw PostgRESTError(status: 400, code: "PGRST102", message: "All object keys must match", details: nil, hint: nil)
                }
            }
        }
        return (body, columns)
    }

    /// POST on a table: insert or upsert one object or an array.
    mutating func buildInsert(_ table: SchemaCatalog.Table) throws(PostgRESTError) {
        let (body, columns) = try insertColumns(table)
        let preference = applyReturnPreference()
        applyCountPreference()
        var conflict: (target: [String], merge: Bool)?
        if let resolution = preferences.resolution {
            let target = query.onConflict ?? table.primaryKey
            for name in target where table.column(named: name) == nil { throw .undefinedColumn(name, table: table.name) }
            if !target.isEmpty {
                conflict = (target, resolution == "merge-duplicates")
                preferenceApplied.append("resolution=" + resolution)
            }
        } else if let target = query.onConflict {
            // `on_conflict` alone: PostgREST still upserts, merging.
            for name in target where table.column(named: name) == nil { throw .undefinedColumn(name, table: table.name) }
            conflict = (target, true)
        }
        if preferences.missingGiven { preferenceApplied.append(preferences.missingDefault ? "missing=default" : "missing=null") }

        // With missing=default, rows with different keys are inserted by separate INSERTs so that
        // absent keys take the column default; otherwise absent keys are NULL (json_populate_recordset).
        var groups: [(columns: [String], objects: [Int])] = []
        if preferences.missingDefault {
            for (index, object) in body.objects.enumerated() {
                let present = columns.filter { object.keys.contains($0) }
                if let existing = groups.firstIndex(where: { $0.columns == present }) {
                    groups[existing].objects.append(index)
                } else {
                    groups.append((present, [index]))
                }
            }
        }
        if groups.count <= 1 {
            let groupColumns = groups.first?.columns ?? columns
            let json = body.isArray ? body.text : "[" + body.text + "]"
            writer.append("WITH pgrst_source AS (")
            emitInsert(table, columns: groupColumns, json: json, conflict: conflict, preference: preference)
            writer.append(")")
        } else {
            writer.append("WITH ")
            let bytes = request.body ?? []
            for (number, group) in groups.enumerated() {
                var json: [UInt8] = [UInt8(ascii: "[")]
                for (position, index) in group.objects.enumerated() {
                    if position > 0 { json.append(UInt8(ascii: ",")) }
                    json.append(contentsOf: bytes[body.objects[index].range])
                }
                json.append(UInt8(ascii: "]"))
                if number > 0 { writer.append(", ") }
                writer.append("pgrst_insert_")
                writer.appendNumber(number + 1)
                writer.append(" AS (")
                emitInsert(table, columns: group.columns, json: String(decoding: json, as: UTF8.self), conflict: conflict, preference: preference)
                writer.append(")")
            }
            writer.append(", pgrst_source AS (")
            for number in groups.indices {
                if number > 0 { writer.append(" UNION ALL ") }
                writer.append("SELECT * FROM pgrst_insert_")
                writer.appendNumber(number + 1)
            }
            writer.append(")")
        }
        try finishWrite(preference, table: table)
    }

    /// `INSERT INTO ... SELECT ... FROM json_populate_recordset(...) [ON CONFLICT ...] RETURNING ...`
    func emitInsert(_ table: SchemaCatalog.Table, columns: [String], json: String,
                             conflict: (target: [String], merge: Bool)?, preference: RecordsPreferences.Return) {
        writer.append("INSERT INTO ")
        writer.appendQualified(table.schema, table.name)
        writer.append(" AS \"t0\"")
        if !columns.isEmpty {
            writer.append(" (")
            for (index, column) in columns.enumerated() {
                if index > 0 { writer.append(", ") }
                writer.appendIdentifier(column)
            }
            writer.append(")")
        }
        writer.append(" SELECT ")
        for (index, column) in columns.enumerated() {
            if index > 0 { writer.append(", ") }
            writer.append("pgrst_body.")
            writer.appendIdentifier(column)
        }
        writer.append(" FROM json_populate_recordset(NULL::")
        writer.appendQualified(table.schema, table.name)
        writer.append(", ")
        writer.appendBind(json, type: "json")
        writer.append(") AS pgrst_body")
        if let conflict {
            writer.append(" ON CONFLICT (")
            for (index, column) in conflict.target.enumerated() {
                if index > 0 { writer.append(", ") }
                writer.appendIdentifier(column)
            }
            if conflict.merge, !columns.isEmpty {
                writer.append(") DO UPDATE SET ")
                for (index, column) in columns.enumerated() {
                    if index > 0 { writer.append(", ") }
                    writer.appendIdentifier(column)
                    writer.append(" = EXCLUDED.")
                    writer.appendIdentifier(column)
                }
            } else {
                writer.append(") DO NOTHING")
            }
        }
        emitReturning(preference, table: table)
    }

    /// PUT: upsert one row identified by `pk=eq.value` filters that match the body.
    mutating func buildPut(_ table: SchemaCatalog.Table) throws(PostgRESTError) {
        if query.limit != nil || query.offset != nil { throw .putLimitNotAllowed }
        guard !table.primaryKey.isEmpty else { throw .invalidPutFilters }
        var keyValues: [String: String] = [:]
        for scoped in query.conditions where scoped.path.isEmpty {
            guard case .filter(let filter) = scoped.condition, !filter.negated, filter.field.jsonPath.isEmpty,
                  case .binary(.eq, let value) = filter.operation, table.primaryKey.contains(filter.field.name),
                  keyValues[filter.field.name] == nil else {
                throw .invalidPutFilters
            }
            keyValues[filter.field.name] = value
        }
        guard keyValues.count == table.primaryKey.count else { throw .invalidPutFilters }
        let (body, columns) = try insertColumns(table)
        guard !body.isArray, let object = body.objects.first else {
            throw .invalidBody("PUT requires a single JSON object")
        }
        let bytes = request.body ?? []
        for key in table.primaryKey {
            guard let position = object.keys.firstIndex(of: key),
                  Self.jsonScalarText(bytes, object.valueRanges[position]) == keyValues[key] else {
                throw .putMatchingPrimaryKey
            }
        }
        let preference = applyReturnPreference()
        applyCountPreference()
        writer.append("WITH pgrst_source AS (")
        emitInsert(table, columns: columns, json: "[" + body.text + "]", conflict: (table.primaryKey, true), preference: preference)
        writer.append(")")
        try finishWrite(preference, table: table)
    }

    /// The text of a JSON scalar (strings unescaped, numbers and booleans as written); nil for null and containers.
    static func jsonScalarText(_ bytes: [UInt8], _ range: Range<Int>) -> String? {
        guard let first = range.first.map({ bytes[$0] }) else { return nil }
        switch first {
        case UInt8(ascii: "\""):
            return bytes[(range.lowerBound + 1)..<(range.upperBound - 1)].withUnsafeBufferPointer { RecordsJSONScanner.unescape($0) }
        case UInt8(ascii: "{"), UInt8(ascii: "["), UInt8(ascii: "n"):
            return nil
        default:
            return String(decoding: bytes[range], as: UTF8.self)
        }
    }

    /// The WHERE clause of a write: root conditions, or a ctid match when limit/order restrict the rows.
    func emitWriteFilter(_ table: SchemaCatalog.Table) throws(PostgRESTError) {
        let node = RecordsReadNode(table: table, alias: 0, path: [])
        if query.limit != nil || (query.offset ?? 0) > 0 {
            guard !table.isView else {
                throw PostgRESTError(status: 400, code: PostgRESTError.Code.queryParameter,
                                     message: "limit/offset on a view cannot be applied to a write")
            }
            writer.append(" WHERE \"t0\".ctid = ANY(ARRAY(SELECT \"t0\".ctid FROM ")
            writer.appendQualified(table.schema, table.name)
            writer.append(" AS \"t0\"")
            try emitConditions(node, allowEmbeds: false)
            for term in query.order { if let relation = term.relation { throw .notEmbedded(relation) } }
            try emitOrder(node)
            emitRange(limit: query.limit, offset: query.offset)
            writer.append("))")
            return
        }
        try emitConditions(node, allowEmbeds: false)
    }

    /// ` WHERE a AND b ...` from the query's conditions scoped to `node`.
    func emitConditions(_ node: RecordsReadNode, allowEmbeds: Bool) throws(PostgRESTError) {
        guard node.appliesConditions else { return }
        let conditions = query.conditions
        var count = 0
        for index in conditions.indices where conditions[index].path == node.path { count += 1 }
        var written = 0
        for index in conditions.indices where conditions[index].path == node.path {
            writer.append(written == 0 ? " WHERE " : " AND ")
            written += 1
            try emitCondition(conditions[index].condition, node: node, allowEmbeds: allowEmbeds, parenthesized: count > 1)
        }
    }

    /// PATCH: update the filtered rows with the body's keys.
    mutating func buildUpdate(_ table: SchemaCatalog.Table) throws(PostgRESTError) {
        guard let bytes = request.body else { throw .invalidBody(RecordsRequestBody.invalidJSONMessage) }
        let body = try RecordsRequestBody.objects(in: bytes)
        guard !body.isArray, let object = body.objects.first else {
            throw .invalidBody("A PATCH body must be a single JSON object")
        }
        var columns: [String] = []
        if let restricted = query.columns {
            for name in restricted {
                try Self.requireColumn(name, in: table)
                if !columns.contains(name) { columns.append(name) }
            }
        } else {
            for key in object.keys {
                try Self.requireColumn(key, in: table)
                columns.append(key)
            }
        }
        let preference = applyReturnPreference()
        applyCountPreference()
        if preferences.missingGiven { preferenceApplied.append(preferences.missingDefault ? "missing=default" : "missing=null") }
        writer.append("WITH pgrst_source AS (")
        if columns.isEmpty {
            // Nothing to set: PostgREST answers without touching any row.
            writer.append("SELECT \"t0\".* FROM ")
            writer.appendQualified(table.schema, table.name)
            writer.append(" AS \"t0\" WHERE false")
        } else {
            writer.append("UPDATE ")
            writer.appendQualified(table.schema, table.name)
            writer.append(" AS \"t0\" SET ")
            for (index, column) in columns.enumerated() {
                if index > 0 { writer.append(", ") }
                writer.appendIdentifier(column)
                if preferences.missingDefault, !object.keys.contains(column) {
                    writer.append(" = DEFAULT")
                    continue
                }
                writer.append(" = pgrst_body.")
                writer.appendIdentifier(column)
            }
            writer.append(" FROM json_populate_record(NULL::")
            writer.appendQualified(table.schema, table.name)
            writer.append(", ")
            writer.appendBind(body.text, type: "json")
            writer.append(") AS pgrst_body")
            try emitWriteFilter(table)
            emitReturning(preference, table: table)
        }
        writer.append(")")
        try finishWrite(preference, table: table)
    }

    /// DELETE: remove the filtered rows.
    mutating func buildDelete(_ table: SchemaCatalog.Table) throws(PostgRESTError) {
        let preference = applyReturnPreference()
        applyCountPreference()
        writer.append("WITH pgrst_source AS (DELETE FROM ")
        writer.appendQualified(table.schema, table.name)
        writer.append(" AS \"t0\"")
        try emitWriteFilter(table)
        emitReturning(preference, table: table)
        writer.append(")")
        try finishWrite(preference, table: table)
    }

    // MARK: - RPC

    /// Names of arguments the request gives (for a PGRST202 message).
    static func givenArgumentNames(_ request: RecordsRequest) -> [String] {
        if request.method == .post {
            guard let bytes = request.body, !bytes.isEmpty,
                  let body = try? RecordsRequestBody.objects(in: bytes), !body.isArray else { return [] }
            return body.objects.first?.keys ?? []
        }
        let reserved: Set<String> = ["select", "order", "limit", "offset", "columns", "on_conflict", "schema", "and", "or"]
        return request.query.map(\.name).filter { !reserved.contains($0) && !$0.contains(".") }
    }

    /// POST/GET /rpc/fn.
    mutating func buildCall(_ function: SchemaCatalog.Function) throws(PostgRESTError) {
        readOnly = request.method != .post
        let call = try functionCall(function)
        applyCountPreference()
        let result = resultTable(of: function)

        writer.append("WITH ")
        if let bodyArguments = call.bodyArguments {
            writer.append("pgrst_args AS (SELECT * FROM json_to_record(")
            writer.appendBind(bodyArguments.json, type: "json")
            writer.append(") AS _pgrst_a(")
            for (index, argument) in bodyArguments.columns.enumerated() {
                if index > 0 { writer.append(", ") }
                writer.appendIdentifier(argument.name)
                writer.append(" ")
                writer.appendTrusted(argument.type)
            }
            writer.append(")), ")
        }

        guard let resolved = result else {
            // A scalar (or set of scalars): the JSON value itself, or an array of them.
            if function.returnsSet {
                try checkScopes()
                let (limit, offset) = try rootRange()
                writer.append("pgrst_source AS (SELECT \"t0\".pgrst_scalar FROM ")
                emitCallSource(call)
                writer.append(" AS \"t0\"(pgrst_scalar)")
                emitRange(limit: limit, offset: offset)
                writer.append(") SELECT count(*) AS page_total, ")
                writer.append(countRequested != nil ? "count(*)" : "NULL::bigint")
                writer.append(" AS total, coalesce(json_agg(pgrst_scalar), '[]')::text AS body FROM pgrst_source")
            } else {
                singleObject = false
                writer.append("pgrst_source AS (SELECT ")
                emitCallExpression(call)
                writer.append(" AS pgrst_scalar")
                if call.bodyArguments != nil { writer.append(" FROM pgrst_args") }
                writer.append(") SELECT 1::bigint AS page_total, NULL::bigint AS total, ")
                if function.returnType == "void" {
                    writer.append("'null'::text AS body FROM pgrst_source")
                } else {
                    writer.append("coalesce(to_json(pgrst_scalar)::text, 'null') AS body FROM pgrst_source")
                }
            }
            if request.method == .head { returnMinimal = true }
            return
        }

        // Rows: select, filter, order and page them like a table.
        let (table, columnsKnown) = resolved
        let root = try plan(table, items: query.select, path: [], columnsKnown: columnsKnown)
        try checkScopes()
        var limit: Int?
        var offset = 0
        if function.returnsSet { (limit, offset) = try rootRange() }
        var source = ReadSource.function(call)
        if countRequested != nil {
            // Call once: the count and the page both read the materialized result.
            writer.append("pgrst_call AS MATERIALIZED (SELECT \"t0\".* FROM ")
            emitCallSource(call)
            writer.append(" AS \"t0\"), ")
            source = .function(call.readingMaterialized())
        }
        writer.append("pgrst_source AS (")
        pendingTotal = try emitRootSelect(root, source: source, limit: limit, offset: offset, withCount: countRequested != nil)
        if function.returnsSet {
            finishRead(emptyBody: request.method == .head)
        } else {
            // One composite value: PostgREST answers with the object, not an array.
            singleObject = false
            writer.append(" SELECT count(*) AS page_total, ")
            emitTotal()
            writer.append(" AS total, coalesce((json_agg(_pgrst_t)->0)::text, 'null') AS body FROM pgrst_source AS _pgrst_t")
            if request.method == .head { returnMinimal = true }
        }
    }

    /// The columns a function's rows have, and whether they are known; nil for scalar results.
    func resultTable(of function: SchemaCatalog.Function) -> (SchemaCatalog.Table, Bool)? {
        var type = function.returnType[...].trimmingSpaces
        if type.lowercased().hasPrefix("setof ") { type = String(type.dropFirst(6))[...].trimmingSpaces }
        if type.hasPrefix("TABLE(") || type.hasPrefix("table("), type.hasSuffix(")") {
            let inner = type.dropFirst(6).dropLast()
            let columns = Self.columnDefinitions(String(inner))
            return (SchemaCatalog.Table(schema: function.schema, name: function.name, columns: columns), true)
        }
        if let table = tableNamed(type, defaultSchema: function.schema) {
            return (table, true)
        }
        guard function.returnsTable else { return nil }
        return (SchemaCatalog.Table(schema: function.schema, name: function.name, columns: []), false)
    }

    /// The catalog table a type name (`posts`, `public.posts`, `"My Table"`) denotes.
    func tableNamed(_ type: String, defaultSchema: String) -> SchemaCatalog.Table? {
        let parts = Self.splitQualifiedName(type)
        switch parts.count {
        case 1:
            if let table = catalog.table(schema: defaultSchema, name: parts[0]) { return table }
            for exposed in catalog.exposedSchemas {
                if let table = catalog.table(schema: exposed, name: parts[0]) { return table }
            }
            return nil
        case 2:
            return catalog.table(schema: parts[0], name: parts[1])
        default:
            return nil
        }
    }

    /// Splits `a.b` / `"a"."b.c"` into unquoted parts.
    static func splitQualifiedName(_ text: String) -> [String] {
        var parts: [String] = []
        var current: [Character] = []
        var quoted = false
        var iterator = Array(text).makeIterator()
        var pending: Character?
        while let character = pending ?? iterator.next() {
            pending = nil
            if quoted {
                if character == "\"" {
                    if let next = iterator.next() {
                        if next == "\"" { current.append("\"") } else { quoted = false; pending = next }
                    } else {
                        quoted = false
                    }
                } else {
                    current.append(character)
                }
            } else if character == "\"" {
                quoted = true
            } else if character == "." {
                parts.append(String(current))
                current = []
            } else {
                current.append(character)
            }
        }
        parts.append(String(current))
        return parts
    }

    /// Parses `id integer, "Name" text, tags text[]` from `TABLE(...)`.
    static func columnDefinitions(_ text: String) -> [SchemaCatalog.Column] {
        var definitions: [String] = []
        var depth = 0
        var quoted = false
        var current = ""
        for character in text {
            if character == "\"" { quoted.toggle() }
            if !quoted {
                if character == "(" { depth += 1 }
                if character == ")" { depth -= 1 }
                if character == ",", depth == 0 {
                    definitions.append(current)
                    current = ""
                    continue
                }
            }
            current.append(character)
        }
        definitions.append(current)
        var columns: [SchemaCatalog.Column] = []
        for definition in definitions {
            let trimmed = definition[...].trimmingSpaces
            guard !trimmed.isEmpty else { continue }
            var name: String
            var rest: Substring
            if trimmed.hasPrefix("\"") {
                var characters = Array(trimmed.dropFirst())
                var index = 0
                name = ""
                while index < characters.count {
                    if characters[index] == "\"" {
                        if index + 1 < characters.count, characters[index + 1] == "\"" {
                            name.append("\"")
                            index += 2
                            continue
                        }
                        break
                    }
                    name.append(characters[index])
                    index += 1
                }
                characters = Array(characters.dropFirst(min(index + 1, characters.count)))
                rest = String(characters)[...]
            } else {
                let space = trimmed.firstIndex(of: " ") ?? trimmed.endIndex
                name = String(trimmed[..<space])
                rest = trimmed[space...]
            }
            columns.append(SchemaCatalog.Column(name: name, type: rest.trimmingSpaces))
        }
        return columns
    }

    /// How arguments reach a function call.
    struct RecordsFunctionCall {
        var function: SchemaCatalog.Function
        /// Named arguments from the query string: name, value, type.
        var queryArguments: [(name: String, values: [String], type: String)] = []
        /// The whole body as the single json argument.
        var singleArgument: (json: String, type: String)?
        /// The body as JSON and the argument columns to read from it through `json_to_record`.
        var bodyArguments: (json: String, columns: [(name: String, type: String)])?
        /// Read from the materialized `pgrst_call` instead of calling again.
        var materialized = false

        func readingMaterialized() -> RecordsFunctionCall {
            var copy = self
            copy.materialized = true
            return copy
        }
    }

    /// Checks the given arguments against the function (PGRST202 when they do not fit).
    func functionCall(_ function: SchemaCatalog.Function) throws(PostgRESTError) -> RecordsFunctionCall {
        var call = RecordsFunctionCall(function: function)
        let jsonTypes: Set<String> = ["json", "jsonb"]
        let onlyArgument = function.arguments.count == 1 ? function.arguments[0] : nil
        func notFound(_ given: [String]) -> PostgRESTError {
            .functionNotFound(schema: function.schema, name: function.name, arguments: given)
        }
        func checkRequired(_ given: [String]) throws(PostgRESTError) {
            for argument in function.arguments where !argument.hasDefault && !given.contains(argument.name) {
                throw notFound(given)
            }
        }
        if request.method == .post {
            let bytes = request.body ?? []
            let isEmpty = bytes.allSatisfy { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
            if let onlyArgument, jsonTypes.contains(onlyArgument.type),
               onlyArgument.name.isEmpty || preferences.singleObjectParameter {
                // One json argument: it takes the whole body (PostgREST's single unnamed json parameter).
                call.singleArgument = (isEmpty ? "{}" : try RecordsRequestBody.anyValue(in: bytes), onlyArgument.type)
                return call
            }
            var given: [String] = []
            var json = "{}"
            if !isEmpty {
                let body = try RecordsRequestBody.objects(in: bytes)
                guard !body.isArray, let object = body.objects.first else {
                    throw .invalidBody("The body of a function call must be a JSON object")
                }
                given = object.keys
                json = body.text
            }
            for name in given where name.isEmpty || !function.arguments.contains(where: { $0.name == name }) {
                throw notFound(given)
            }
            try checkRequired(given)
            if !given.isEmpty {
                let columns = function.arguments.filter { given.contains($0.name) }.map { (name: $0.name, type: $0.type) }
                call.bodyArguments = (json, columns)
            }
            return call
        }
        var given: [String] = []
        for argument in query.arguments {
            guard let declared = function.arguments.first(where: { $0.name == argument.name && !$0.name.isEmpty }) else {
                throw notFound(query.arguments.map(\.name))
            }
            if let index = call.queryArguments.firstIndex(where: { $0.name == argument.name }) {
                call.queryArguments[index].values.append(argument.value)
            } else {
                call.queryArguments.append((argument.name, [argument.value], declared.type))
                given.append(argument.name)
            }
        }
        try checkRequired(given)
        return call
    }

    /// `"schema"."fn"(args)` as a FROM item (prefixed by `pgrst_args, LATERAL` for body arguments),
    /// or `pgrst_call` when the result was materialized for a count.
    func emitCallSource(_ call: RecordsFunctionCall) {
        if call.materialized {
            writer.append("pgrst_call")
            return
        }
        if call.bodyArguments != nil { writer.append("pgrst_args, LATERAL ") }
        emitCallExpression(call)
    }

    /// `"schema"."fn"("a" => $1::integer, ...)`
    func emitCallExpression(_ call: RecordsFunctionCall) {
        writer.appendQualified(call.function.schema, call.function.name)
        writer.append("(")
        if let single = call.singleArgument {
            writer.appendBind(single.json, type: single.type)
        } else if let bodyArguments = call.bodyArguments {
            for (index, argument) in bodyArguments.columns.enumerated() {
                if index > 0 { writer.append(", ") }
                writer.appendIdentifier(argument.name)
                writer.append(" => pgrst_args.")
                writer.appendIdentifier(argument.name)
            }
        } else {
            for (index, argument) in call.queryArguments.enumerated() {
                if index > 0 { writer.append(", ") }
                writer.appendIdentifier(argument.name)
                writer.append(" => ")
                // Repeated `?arr=1&arr=2` builds an array argument.
                let value = argument.values.count > 1 && argument.type.hasSuffix("[]")
                    ? Self.arrayLiteral(argument.values) : argument.values[argument.values.count - 1]
                writer.appendBind(value, type: argument.type)
            }
        }
        writer.append(")")
    }
}
