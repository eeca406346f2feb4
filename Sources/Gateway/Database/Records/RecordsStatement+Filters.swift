// Filters and logic trees (`and=`, `or=`, `not.`) as SQL conditions.

extension RecordsStatement {
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
}
