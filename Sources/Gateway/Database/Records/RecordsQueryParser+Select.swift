// `select=`: columns, casts, JSON paths, aliases, embeddings and spreads.
extension RecordsQueryParser.Cursor {
    mutating func selectItems() throws(PostgRESTError) -> [RecordsQuery.SelectItem] {
        var items: [RecordsQuery.SelectItem] = []
        var commas = 1
        for index in position..<bytes.count where bytes[index] == UInt8(ascii: ",") { commas += 1 }
        items.reserveCapacity(min(commas, 64))
        repeat {
            items.append(try selectItem())
            skipSpaces()
        } while consume(UInt8(ascii: ","))
        return items
    }

    static let aggregateNames: Set<String> = ["count", "sum", "avg", "max", "min"]

    mutating func selectItem() throws(PostgRESTError) -> RecordsQuery.SelectItem {
        skipSpaces()
        if consume(UInt8(ascii: "*")) {
            skipSpaces()
            try expectItemEnd()
            return .allColumns
        }
        if consume("...") {
            let name = try fieldName()
            let (hint, join) = try embedParameters()
            let items = try embeddedItems(name: name)
            return .embed(.init(relation: name, hint: hint, join: join, isSpread: true, items: items))
        }
        var alias: String?
        var name = try fieldName()
        if peek == UInt8(ascii: ":"), peek(1) != UInt8(ascii: ":") {
            position += 1
            alias = name
            skipSpaces()
            name = try fieldName()
        }
        if peek == UInt8(ascii: "!") || peek == UInt8(ascii: "(") {
            let (hint, join) = try embedParameters()
            let items = try embeddedItems(name: name)
            return .embed(.init(alias: alias, relation: name, hint: hint, join: join, isSpread: false, items: items))
        }
        let path = try jsonPath()
        if peek == UInt8(ascii: ".") {
            // `amount.sum()`: aggregates are disabled, as in PostgREST's default configuration.
            position += 1
            if let word = try? fieldName(), Self.aggregateNames.contains(word), peek == UInt8(ascii: "(") {
                throw .aggregatesNotAllowed
            }
            throw failure("unexpected \".\" expecting \"->\", \"::\", \",\" or end of input")
        }
        var cast: String?
        if consume("::") {
            cast = try castType()
        }
        skipSpaces()
        try expectItemEnd()
        return .field(.init(alias: alias, field: RecordsQuery.Field(name: name, jsonPath: path), cast: cast))
    }

    mutating func expectItemEnd() throws(PostgRESTError) {
        guard atEnd || peek == UInt8(ascii: ",") || peek == UInt8(ascii: ")") else {
            throw failure("unexpected \(describeNext) expecting \",\", \")\" or end of input")
        }
    }

    /// Up to two of `!inner`, `!left`, `!hint`.
    mutating func embedParameters() throws(PostgRESTError) -> (hint: String?, join: RecordsQuery.EmbedJoin?) {
        var hint: String?
        var join: RecordsQuery.EmbedJoin?
        var count = 0
        while consume(UInt8(ascii: "!")) {
            count += 1
            guard count <= 2 else { throw failure("unexpected \"!\" expecting \"(\"") }
            let word = try fieldName()
            if word == "inner", join == nil {
                join = .inner
            } else if word == "left", join == nil {
                join = .left
            } else if hint == nil {
                hint = word
            } else {
                throw failure("more than one embedding hint")
            }
        }
        return (hint, join)
    }

    /// `( items )` after an embedding's name.
    mutating func embeddedItems(name: String) throws(PostgRESTError) -> [RecordsQuery.SelectItem] {
        guard consume(UInt8(ascii: "(")) else { throw failure("unexpected \(describeNext) expecting \"(\"") }
        try descend()
        defer { depth -= 1 }
        skipSpaces()
        if peek == UInt8(ascii: ")") {
            if Self.aggregateNames.contains(name) { throw .aggregatesNotAllowed }
            throw failure("unexpected \")\" expecting field name (* or [a..z0..9_$])")
        }
        let items = try selectItems()
        guard consume(UInt8(ascii: ")")) else { throw failure("unexpected \(describeNext) expecting \",\" or \")\"") }
        skipSpaces()
        try expectItemEnd()
        return items
    }

    /// Type names that contain spaces; any other cast must be one word of letters, digits and `_`.
    static let multiWordTypes: Set<String> = [
        "double precision", "character varying", "bit varying", "timestamp with time zone",
        "timestamp without time zone", "time with time zone", "time without time zone",
    ]

    /// A cast target after `::`. It is written into SQL unquoted, so only plain type names pass.
    mutating func castType() throws(PostgRESTError) -> String {
        let start = position
        while let byte = peek, Self.isIdentifierByte(byte), byte != UInt8(ascii: "$") { position += 1 }
        var words: [String] = []
        for word in text(start..<position).split(separator: " ") where !word.isEmpty {
            words.append(String(word))
        }
        guard !words.isEmpty else { throw failure("unexpected \(describeNext) expecting letter or digit") }
        let joined = words.joined(separator: " ")
        if words.count > 1 {
            guard Self.multiWordTypes.contains(joined.lowercased()) else {
                throw failure("unsupported cast type \"\(joined)\"")
            }
            return joined
        }
        for (index, byte) in joined.utf8.enumerated() {
            let isLetter = (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z") || byte == UInt8(ascii: "_")
            let isDigit = byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
            guard isLetter || (isDigit && index > 0) else { throw failure("unsupported cast type \"\(joined)\"") }
        }
        return joined
    }
}
