// Logic trees: `and=(...)`, `or=(...)` and their nesting.
extension RecordsQueryParser.Cursor {
    /// `( condition, condition, ... )`
    mutating func logicGroup() throws(PostgRESTError) -> [RecordsQuery.Condition] {
        skipSpaces()
        guard consume(UInt8(ascii: "(")) else { throw failure("unexpected \(describeNext) expecting \"(\"") }
        try descend()
        defer { depth -= 1 }
        var children: [RecordsQuery.Condition] = []
        repeat {
            skipSpaces()
            children.append(try logicCondition())
            skipSpaces()
        } while consume(UInt8(ascii: ","))
        guard consume(UInt8(ascii: ")")) else { throw failure("unexpected \(describeNext) expecting \",\" or \")\"") }
        return children
    }

    mutating func logicCondition() throws(PostgRESTError) -> RecordsQuery.Condition {
        let start = position
        var negated = false
        if consume("not.") { negated = true }
        if consume("and(") || consume("or(") {
            let logicOperator: RecordsQuery.LogicOperator = bytes[position - 2] == UInt8(ascii: "d") ? .and : .or
            position -= 1
            return .logic(negated: negated, logicOperator, try logicGroup())
        }
        position = start
        if atEnd || peek == UInt8(ascii: ")") || peek == UInt8(ascii: ",") {
            throw failure("unexpected \(describeNext) expecting field name (* or [a..z0..9_$]), negation operator (not) or logic operator (and, or)")
        }
        let field = try field()
        try expectDelimiter()
        let (filterNegated, operation) = try self.operation(inLogicTree: true)
        return .filter(RecordsQuery.Filter(field: field, negated: filterNegated, operation: operation))
    }
}
