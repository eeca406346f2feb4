// Filters: `column=operator.value` with negation, lists and quoted values.
extension RecordsQueryParser.Cursor {
    /// Moves past a word that ends at `.`, `(`, `,`, `)` or the end.
    mutating func skipOperatorWord() {
        while let byte = peek, byte != UInt8(ascii: "."), byte != UInt8(ascii: "("),
              byte != UInt8(ascii: ","), byte != UInt8(ascii: ")") {
            position += 1
        }
    }

    /// A word up to `.`, `(`, `,`, `)` or the end.
    mutating func operatorWord() -> String {
        let start = position
        skipOperatorWord()
        return text(start..<position)
    }

    mutating func expectDelimiter() throws(PostgRESTError) {
        guard consume(UInt8(ascii: ".")) else { throw failure("unexpected \(describeNext) expecting delimiter (.)") }
    }

    /// `[not.]operator.value`; inside logic trees values stop at `,` / `)` unless quoted.
    mutating func operation(inLogicTree: Bool) throws(PostgRESTError) -> (negated: Bool, RecordsQuery.Operation) {
        var negated = false
        var wordStart = position
        skipOperatorWord()
        var token = RecordsQueryParser.operatorToken(bytes, wordStart..<position)
        if token == .not, peek == UInt8(ascii: ".") {
            negated = true
            position += 1
            wordStart = position
            skipOperatorWord()
            token = RecordsQueryParser.operatorToken(bytes, wordStart..<position)
        }
        switch token {
        case .inList:
            try expectDelimiter()
            return (negated, .list(try listValue(inLogicTree: inLogicTree)))
        case .isCheck:
            try expectDelimiter()
            let start = position
            let value = inLogicTree ? logicValueRaw() : rest()
            guard let isValue = RecordsQuery.IsValue(rawValue: value.lowercased()) else {
                position = start
                throw failure("unexpected \(describeNext) expecting null or trilean value (unknown, true, false)")
            }
            return (negated, .is(isValue))
        case .fullText(let fullText):
            var configuration: String?
            if consume(UInt8(ascii: "(")) {
                let start = position
                while let byte = peek, Self.isIdentifierByte(byte), byte != UInt8(ascii: " "), byte != UInt8(ascii: "$") { position += 1 }
                guard position > start else { throw failure("unexpected \(describeNext) expecting text search configuration") }
                configuration = text(start..<position)
                guard consume(UInt8(ascii: ")")) else { throw failure("unexpected \(describeNext) expecting \")\"") }
            }
            try expectDelimiter()
            return (negated, .fullText(fullText, configuration: configuration, try singleValue(inLogicTree: inLogicTree)))
        case .binary(let op):
            if consume(UInt8(ascii: "(")) {
                let quantifierStart = position
                skipOperatorWord()
                let quantifierWord = text(quantifierStart..<position)
                guard let quantifier = RecordsQuery.Quantifier(rawValue: quantifierWord), consume(UInt8(ascii: ")")) else {
                    throw failure("unexpected \(describeNext) expecting \"any\" or \"all\"")
                }
                guard op.allowsQuantifier else { throw failure("operator \(op.rawValue) does not take (\(quantifierWord))") }
                try expectDelimiter()
                return (negated, .quantified(op, quantifier, try singleValue(inLogicTree: inLogicTree)))
            }
            try expectDelimiter()
            return (negated, .binary(op, try singleValue(inLogicTree: inLogicTree)))
        case .not, nil:
            let word = text(wordStart..<position)
            position = wordStart
            throw failure(word.isEmpty ? "expecting operator (eq, gt, ...)" : "unknown single value operator \(word)")
        }
    }

    mutating func singleValue(inLogicTree: Bool) throws(PostgRESTError) -> String {
        guard inLogicTree else { return rest() }
        if peek == UInt8(ascii: "\"") {
            let save = position
            let value = try quotedValue()
            if atEnd || peek == UInt8(ascii: ",") || peek == UInt8(ascii: ")") { return value }
            position = save
        }
        if peek == UInt8(ascii: "{") {
            let start = position
            while let byte = peek, byte != UInt8(ascii: "}") {
                position += 1
                if byte == UInt8(ascii: "{"), position - 1 != start { throw failure("unexpected \"{\" inside an array value") }
            }
            guard consume(UInt8(ascii: "}")) else { throw failure("unexpected end of input expecting \"}\"") }
            return text(start..<position)
        }
        return logicValueRaw()
    }

    /// Characters up to `,` / `)` (a plain value inside a logic tree).
    mutating func logicValueRaw() -> String {
        let start = position
        while let byte = peek, byte != UInt8(ascii: ","), byte != UInt8(ascii: ")") { position += 1 }
        return text(start..<position)
    }

    /// `(a,b,"c,d")`; an empty `()` is the empty list.
    mutating func listValue(inLogicTree: Bool) throws(PostgRESTError) -> [String] {
        skipSpaces()
        guard consume(UInt8(ascii: "(")) else { throw failure("unexpected \(describeNext) expecting \"(\"") }
        var values: [String] = []
        skipSpaces()
        if consume(UInt8(ascii: ")")) {
            skipSpaces()
            try expectListEnd(inLogicTree: inLogicTree)
            return values
        }
        while true {
            if peek == UInt8(ascii: "\"") {
                let save = position
                let value = try quotedValue()
                if peek == UInt8(ascii: ",") || peek == UInt8(ascii: ")") {
                    values.append(value)
                } else {
                    position = save
                    values.append(logicValueRaw())
                }
            } else {
                values.append(logicValueRaw())
            }
            if consume(UInt8(ascii: ",")) { continue }
            guard consume(UInt8(ascii: ")")) else { throw failure("unexpected end of input expecting \",\" or \")\"") }
            break
        }
        skipSpaces()
        try expectListEnd(inLogicTree: inLogicTree)
        return values
    }

    func expectListEnd(inLogicTree: Bool) throws(PostgRESTError) {
        if inLogicTree {
            guard atEnd || peek == UInt8(ascii: ",") || peek == UInt8(ascii: ")") else {
                throw failure("unexpected \(describeNext) expecting \",\" or \")\"")
            }
        } else if !atEnd {
            throw failure("unexpected \(describeNext) expecting end of input")
        }
    }
}
