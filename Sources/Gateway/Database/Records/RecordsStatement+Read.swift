// Reads: select lists, order, range and the root SELECT with its count.

extension RecordsStatement {
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
}
