// Embedding: resolving relationships and the lateral subqueries of embedded resources.

extension RecordsStatement {
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
}
