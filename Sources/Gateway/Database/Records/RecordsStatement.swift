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
    /// Byte ranges forming `FROM ... WHERE ...` for the total count, set by `emitRootSelect`.
    var pendingTotal: [Range<Int>]?

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
}

extension RecordsStatement {
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
}
