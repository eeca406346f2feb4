// `order=`: terms with direction and nulls placement.
extension RecordsQueryParser.Cursor {
    mutating func orderTerms() throws(PostgRESTError) -> [RecordsQuery.OrderTerm] {
        var terms: [RecordsQuery.OrderTerm] = []
        repeat {
            skipSpaces()
            var relation: String?
            let name = try fieldName()
            let field: RecordsQuery.Field
            if consume(UInt8(ascii: "(")) {
                relation = name
                field = try self.field()
                guard consume(UInt8(ascii: ")")) else { throw failure("unexpected \(describeNext) expecting \")\"") }
            } else {
                field = RecordsQuery.Field(name: name, jsonPath: try jsonPath())
            }
            var direction: RecordsQuery.OrderDirection?
            var nulls: RecordsQuery.NullsOrder?
            while consume(UInt8(ascii: ".")) {
                let word = operatorWord()
                if direction == nil, nulls == nil, let value = RecordsQuery.OrderDirection(rawValue: word) {
                    direction = value
                } else if nulls == nil, let value = RecordsQuery.NullsOrder(rawValue: word) {
                    nulls = value
                } else {
                    position -= word.utf8.count
                    throw failure(nulls == nil && direction == nil
                        ? "unexpected \"\(word)\" expecting \"asc\", \"desc\", \"nullsfirst\" or \"nullslast\""
                        : "unexpected \"\(word)\" expecting \"nullsfirst\" or \"nullslast\"")
                }
            }
            skipSpaces()
            guard atEnd || peek == UInt8(ascii: ",") else {
                throw failure("unexpected \(describeNext) expecting delimiter (.), \",\" or end of input")
            }
            terms.append(RecordsQuery.OrderTerm(relation: relation, field: field, direction: direction, nulls: nulls))
        } while consume(UInt8(ascii: ","))
        return terms
    }
}
