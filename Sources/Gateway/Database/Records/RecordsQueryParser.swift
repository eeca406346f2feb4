/// Parses PostgREST's query grammar (`select=`, filters, `and=`/`or=`, `order=`, `limit`/`offset`,
/// `columns`, `on_conflict`) into a `RecordsQuery`, plus the `Prefer`, `Accept` and `Range` headers.
///
/// A hand-rolled recursive-descent parser over UTF-8 bytes: no regular expressions, one pass per
/// parameter. It knows nothing of the catalog; names are checked later by `RecordsSQLBuilder`.
public enum RecordsQueryParser {
    /// Bounds on what one request may ask for, so that parsing, building and planning stay small
    /// whatever is sent: deeper or longer input is a 400 PGRST100, never a deep recursion.
    public enum Limits {
        /// Nesting of embedded resources (`a(b(c(...)))`) and of `and`/`or` groups, each counted alone.
        public static let maxDepth = 16
        /// Bytes in one parameter's value (`select=`, a filter, `or=`, `order=` ...).
        public static let maxValueBytes = 16 << 10
        /// Query items in one request.
        public static let maxItems = 256
    }

    /// Query names that are never filters.
    enum ReservedName {
        case select, columns, onConflict, schema

        /// The reserved name `name` is, if any (lengths first: most names are filters).
        init?(_ name: String) {
            switch name.utf8.count {
            case 6 where name == "select": self = .select
            case 6 where name == "schema": self = .schema
            case 7 where name == "columns": self = .columns
            case 11 where name == "on_conflict": self = .onConflict
            default: return nil
            }
        }
    }

    /// Parses decoded query items in order.
    ///
    /// - Parameter argumentNames: for `GET /rpc/fn`, the function's argument names; items with these
    ///   names become `arguments`. Items without an operator (`a=1`) also land in `arguments` (a table
    ///   request ignores them, as PostgREST does; an RPC call rejects unknown ones).
    public static func parse(_ query: [(name: String, value: String)], argumentNames: [String] = []) throws(PostgRESTError) -> RecordsQuery {
        // Fields are gathered in locals and the query built once at the end (cheaper than mutating it in place).
        var select: [RecordsQuery.SelectItem] = [.allColumns]
        var conditions: [RecordsQuery.ScopedCondition] = []
        var order: [RecordsQuery.OrderTerm] = []
        var limit: Int?
        var offset: Int?
        var embeddedOrders: [RecordsQuery.ScopedOrder] = []
        var embeddedRanges: [RecordsQuery.ScopedRange] = []
        var onConflict: [String]?
        var columns: [String]?
        var arguments: [RecordsQuery.Argument] = []
        guard query.count <= Limits.maxItems else {
            throw PostgRESTError(status: 400, code: PostgRESTError.Code.queryParameter,
                                 message: "Too many query parameters", details: "At most \(Limits.maxItems) are accepted; \(query.count) were sent")
        }
        for index in query.indices {
            let (name, value) = query[index]
            guard name.utf8.count <= Limits.maxValueBytes, value.utf8.count <= Limits.maxValueBytes else {
                throw PostgRESTError(status: 400, code: PostgRESTError.Code.queryParameter,
                                     message: "Query parameter \"\(name.prefix(64))\" is too long",
                                     details: "A parameter's name and value may each have at most \(Limits.maxValueBytes) bytes")
            }
            switch ReservedName(name) {
            case .select:
                select = value.isEmpty ? [.allColumns] : try parseSelect(value)
                continue
            case .columns:
                columns = try parseColumnList(value, what: "columns parameter")
                continue
            case .onConflict:
                onConflict = try parseColumnList(value, what: "on_conflict parameter")
                continue
            case .schema:
                continue
            case nil:
                break
            }
            if !argumentNames.isEmpty, argumentNames.contains(name) {
                arguments.append(.init(name: name, value: value))
                continue
            }
            guard let key = try? parseKey(name) else {
                // A name outside the grammar (`foo[]=1`, cache busters) is not a filter unless its value is.
                guard hasOperator(value) else {
                    arguments.append(.init(name: name, value: value))
                    continue
                }
                _ = try parseKey(name)
                continue
            }
            let path = key.path
            switch key.kind {
            case .order:
                let terms = try parseOrder(value)
                if path.isEmpty {
                    order = terms
                } else if let found = embeddedOrders.firstIndex(where: { $0.path == path }) {
                    embeddedOrders[found].terms = terms
                } else {
                    embeddedOrders.append(.init(path: path, terms: terms))
                }
            case .limit:
                let count = try parseCount(value, name: "limit")
                if path.isEmpty {
                    limit = count
                } else if let found = embeddedRanges.firstIndex(where: { $0.path == path }) {
                    embeddedRanges[found].limit = count
                } else {
                    embeddedRanges.append(.init(path: path, limit: count))
                }
            case .offset:
                let count = try parseCount(value, name: "offset")
                if path.isEmpty {
                    offset = count
                } else if let found = embeddedRanges.firstIndex(where: { $0.path == path }) {
                    embeddedRanges[found].offset = count
                } else {
                    embeddedRanges.append(.init(path: path, offset: count))
                }
            case .logic(let negated, let logicOperator):
                conditions.append(.init(path: path, try parseLogicTree(value, operator: logicOperator, negated: negated)))
            case .filter(let field):
                guard !path.isEmpty || hasOperator(value) else {
                    arguments.append(.init(name: name, value: value))
                    continue
                }
                if conditions.isEmpty { conditions.reserveCapacity(query.count - index) }
                conditions.append(.init(path: path, .filter(try parseFilter(value, field: field))))
            }
        }
        return RecordsQuery(select: select, conditions: conditions, order: order, limit: limit, offset: offset,
                            embeddedOrders: embeddedOrders, embeddedRanges: embeddedRanges,
                            onConflict: onConflict, columns: columns, arguments: arguments)
    }

    // MARK: - Entry points per parameter

    /// Parses a `select=` value.
    public static func parseSelect(_ text: String) throws(PostgRESTError) -> [RecordsQuery.SelectItem] {
        try withCursor(text, what: "select parameter") { (cursor: inout Cursor) throws(PostgRESTError) in
            let items = try cursor.selectItems()
            guard cursor.atEnd else { throw cursor.failure("unexpected \(cursor.describeNext) expecting \",\" or end of input") }
            return items
        }
    }

    /// Parses a filter value (`not.eq.5`, `in.(1,2)`, ...) for `field`.
    public static func parseFilter(_ value: String, field: RecordsQuery.Field) throws(PostgRESTError) -> RecordsQuery.Filter {
        try withCursor(value, what: "filter") { (cursor: inout Cursor) throws(PostgRESTError) in
            let (negated, operation) = try cursor.operation(inLogicTree: false)
            return RecordsQuery.Filter(field: field, negated: negated, operation: operation)
        }
    }

    /// Parses an `order=` value.
    public static func parseOrder(_ text: String) throws(PostgRESTError) -> [RecordsQuery.OrderTerm] {
        try withCursor(text, what: "order") { (cursor: inout Cursor) throws(PostgRESTError) in
            try cursor.orderTerms()
        }
    }

    /// Parses the value of `or=` / `and=` (`(a.eq.1,b.gt.2)`) into a condition.
    public static func parseLogicTree(_ text: String, operator logicOperator: RecordsQuery.LogicOperator, negated: Bool = false) throws(PostgRESTError) -> RecordsQuery.Condition {
        try withCursor(text, what: "logic tree") { (cursor: inout Cursor) throws(PostgRESTError) in
            let children = try cursor.logicGroup()
            cursor.skipSpaces()
            guard cursor.atEnd else { throw cursor.failure("unexpected \(cursor.describeNext) expecting end of input") }
            return .logic(negated: negated, logicOperator, children)
        }
    }

    /// Parses `columns=` / `on_conflict=`: field names separated by commas.
    public static func parseColumnList(_ text: String, what: StaticString) throws(PostgRESTError) -> [String] {
        try withCursor(text, what: what) { (cursor: inout Cursor) throws(PostgRESTError) in
            var names: [String] = []
            repeat {
                cursor.skipSpaces()
                names.append(try cursor.fieldName())
                cursor.skipSpaces()
            } while cursor.consume(UInt8(ascii: ","))
            guard cursor.atEnd else { throw cursor.failure("unexpected \(cursor.describeNext) expecting \",\" or end of input") }
            return names
        }
    }

    /// What a query item's name says it is.
    enum KeyKind: Equatable {
        case order, limit, offset
        case logic(negated: Bool, RecordsQuery.LogicOperator)
        case filter(RecordsQuery.Field)
    }

    /// Splits a query item name into its embedding path and what it sets: `comments.order`,
    /// `not.or`, `author.name`, `data->>a`.
    static func parseKey(_ name: String) throws(PostgRESTError) -> (path: [String], kind: KeyKind) {
        if isPlainName(name) {
            let length = name.utf8.count
            guard length == 5 || length == 6 || length == 3 || length == 2 else {
                return ([], .filter(RecordsQuery.Field(name: name)))
            }
            switch name {
            case "order": return ([], .order)
            case "limit": return ([], .limit)
            case "offset": return ([], .offset)
            case "and": return ([], .logic(negated: false, .and))
            case "or": return ([], .logic(negated: false, .or))
            default: return ([], .filter(RecordsQuery.Field(name: name)))
            }
        }
        return try withCursor(name, what: "tree path") { (cursor: inout Cursor) throws(PostgRESTError) in
            var segments: [String] = []
            segments.append(try cursor.fieldName())
            while cursor.consume(UInt8(ascii: ".")) { segments.append(try cursor.fieldName()) }
            let jsonPath = try cursor.jsonPath()
            guard cursor.atEnd else { throw cursor.failure("unexpected \(cursor.describeNext) expecting \".\" or end of input") }
            let last = segments.removeLast()
            if jsonPath.isEmpty {
                switch last {
                case "order": return (segments, .order)
                case "limit": return (segments, .limit)
                case "offset": return (segments, .offset)
                case "and", "or":
                    let logicOperator: RecordsQuery.LogicOperator = last == "and" ? .and : .or
                    if segments.last == "not" {
                        segments.removeLast()
                        return (segments, .logic(negated: true, logicOperator))
                    }
                    return (segments, .logic(negated: false, logicOperator))
                default: break
                }
            }
            return (segments, .filter(RecordsQuery.Field(name: last, jsonPath: jsonPath)))
        }
    }

    /// Whether `name` is one unquoted identifier (no embedding path, JSON path or quotes): the common case.
    static func isPlainName(_ name: String) -> Bool {
        return name.withUTF8Bytes { bytes in
            guard !bytes.isEmpty else { return false }
            for byte in bytes {
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                     UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "$"), 0x80...0xFF:
                    continue
                default:
                    return false
                }
            }
            return true
        }
    }

    /// Whether a value starts with an operator, which makes its item a filter (PostgREST's rule).
    static func hasOperator(_ value: String) -> Bool {
        return value.withUTF8Bytes { bytes in
            var end = 0
            while end < bytes.count, bytes[end] != UInt8(ascii: "."), bytes[end] != UInt8(ascii: "(") { end += 1 }
            switch operatorToken(bytes, 0..<end) {
            case .not, .inList, .isCheck: return end < bytes.count && bytes[end] == UInt8(ascii: ".")
            case .binary, .fullText: return true
            case nil: return false
            }
        }
    }

    /// The word that starts a filter value.
    enum OperatorToken: Equatable {
        case not, inList, isCheck
        case binary(RecordsQuery.Operator)
        case fullText(RecordsQuery.FullTextOperator)
    }

    static let operatorTokens: [(word: StaticString, token: OperatorToken)] = [
        ("eq", .binary(.eq)), ("gte", .binary(.gte)), ("gt", .binary(.gt)), ("lte", .binary(.lte)), ("lt", .binary(.lt)),
        ("neq", .binary(.neq)), ("like", .binary(.like)), ("ilike", .binary(.ilike)), ("in", .inList), ("is", .isCheck),
        ("not", .not), ("match", .binary(.match)), ("imatch", .binary(.imatch)), ("isdistinct", .binary(.isdistinct)),
        ("cs", .binary(.cs)), ("cd", .binary(.cd)), ("ov", .binary(.ov)), ("sl", .binary(.sl)), ("sr", .binary(.sr)),
        ("nxr", .binary(.nxr)), ("nxl", .binary(.nxl)), ("adj", .binary(.adj)),
        ("fts", .fullText(.fts)), ("plfts", .fullText(.plfts)), ("phfts", .fullText(.phfts)), ("wfts", .fullText(.wfts)),
    ]

    /// Matches `bytes[range]` against the operator words without building a string.
    static func operatorToken(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> OperatorToken? {
        let count = range.count
        guard count >= 2, count <= 10 else { return nil }
        let first = bytes[range.lowerBound]
        for entry in operatorTokens where entry.word.utf8CodeUnitCount == count && entry.word.utf8Start[0] == first {
            let word = entry.word.utf8Start
            var index = 0
            while index < count, bytes[range.lowerBound + index] == word[index] { index += 1 }
            if index == count { return entry.token }
        }
        return nil
    }

    /// Parses a `limit`/`offset` value.
    static func parseCount(_ value: String, name: String) throws(PostgRESTError) -> Int {
        var number = 0
        var digits = 0
        var negative = false
        for (index, byte) in value.utf8.enumerated() {
            if index == 0, byte == UInt8(ascii: "-") {
                negative = true
                continue
            }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { throw .invalidNumber(name, value) }
            let (times, overflow1) = number.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { throw .invalidNumber(name, value) }
            number = sum
            digits += 1
        }
        guard digits > 0 else { throw .invalidNumber(name, value) }
        if negative {
            if name == "limit" { throw .invalidRange("Limit should be greater than or equal to zero.") }
            throw .invalidNumber(name, value)
        }
        return number
    }

    // MARK: - Cursor

    /// Runs `body` over the UTF-8 bytes of `text` without copying them.
    static func withCursor<T>(_ text: String, what: StaticString, _ body: (inout Cursor) throws(PostgRESTError) -> T) throws(PostgRESTError) -> T {
        do {
            return try text.withUTF8Bytes { buffer in
                var cursor = Cursor(bytes: buffer, what: what)
                return try body(&cursor)
            }
        } catch let error as PostgRESTError {
            throw error
        } catch {
            // `body` only throws PostgRESTError; `withUTF8` rethrows it untyped.
            throw PostgRESTError(status: 500, code: "PGRSTX00", message: "\(error)")
        }
    }

    /// A read position in one parameter's bytes, with the grammar's productions as methods.
    struct Cursor {
        let bytes: UnsafeBufferPointer<UInt8>
        var position = 0
        /// What is being parsed, for error messages ("filter", "order", ...).
        let what: StaticString
        /// How many embeddings or logic groups enclose the current position.
        var depth = 0

        init(bytes: UnsafeBufferPointer<UInt8>, what: StaticString) {
            self.bytes = bytes
            self.what = what
        }

        var atEnd: Bool { position >= bytes.count }
        var peek: UInt8? { position < bytes.count ? bytes[position] : nil }

        func peek(_ offset: Int) -> UInt8? {
            position + offset < bytes.count ? bytes[position + offset] : nil
        }

        /// A PGRST100 error at the current position.
        func failure(_ details: String) -> PostgRESTError {
            .unparsable(what.description, input: text(0..<bytes.count), column: min(position, bytes.count) + 1, details: details)
        }

        var describeNext: String {
            guard let byte = peek else { return "end of input" }
            return "\"" + String(decoding: [byte], as: UTF8.self) + "\""
        }

        /// Enters one more level of nesting; past `Limits.maxDepth` the input is refused.
        mutating func descend() throws(PostgRESTError) {
            depth += 1
            guard depth <= Limits.maxDepth else {
                throw failure("nesting deeper than \(Limits.maxDepth) levels is not allowed")
            }
        }

        mutating func consume(_ byte: UInt8) -> Bool {
            guard peek == byte else { return false }
            position += 1
            return true
        }

        /// Consumes `word` if the input continues with it.
        mutating func consume(_ word: StaticString) -> Bool {
            guard hasPrefix(word) else { return false }
            position += word.utf8CodeUnitCount
            return true
        }

        func hasPrefix(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard position + count <= bytes.count else { return false }
            let start = word.utf8Start
            for offset in 0..<count where bytes[position + offset] != start[offset] { return false }
            return true
        }

        mutating func skipSpaces() {
            while let byte = peek, byte == 0x20 || byte == 0x09 { position += 1 }
        }

        func text(_ range: Range<Int>) -> String {
            String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        }

        /// The rest of the input as text.
        mutating func rest() -> String {
            let value = text(position..<bytes.count)
            position = bytes.count
            return value
        }

        static func isIdentifierByte(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "$"), UInt8(ascii: " "):
                return true
            default:
                return byte >= 0x80
            }
        }

        /// A field name: `"quoted \" name"` or identifier characters (letters, digits, `_`, `$`,
        /// spaces) joined by `-` not followed by `>`; surrounding spaces are dropped.
        mutating func fieldName() throws(PostgRESTError) -> String {
            if peek == UInt8(ascii: "\"") { return try quotedValue(isName: true) }
            let start = position
            while true {
                while let byte = peek, Self.isIdentifierByte(byte) { position += 1 }
                if peek == UInt8(ascii: "-"), peek(1) != UInt8(ascii: ">"), let next = peek(1), Self.isIdentifierByte(next) {
                    position += 1
                    continue
                }
                break
            }
            var lower = start
            var upper = position
            while lower < upper, bytes[lower] == 0x20 { lower += 1 }
            while upper > lower, bytes[upper - 1] == 0x20 { upper -= 1 }
            guard lower < upper else {
                throw failure("unexpected \(describeNext) expecting field name (* or [a..z0..9_$])")
            }
            return text(lower..<upper)
        }

        /// `"..."` with backslash escapes; returns the contents. Names (which end up as quoted SQL
        /// identifiers) may be neither empty nor contain control characters.
        mutating func quotedValue(isName: Bool = false) throws(PostgRESTError) -> String {
            position += 1
            var start = position
            var pieces: [UInt8] = []
            var escaped = false
            while let byte = peek {
                if isName, byte < 0x20 { throw failure("control characters are not allowed in names") }
                if byte == UInt8(ascii: "\"") {
                    if isName, position == start, !escaped { throw failure("empty quoted name") }
                    let value: String
                    if escaped {
                        pieces.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<position]))
                        value = String(decoding: pieces, as: UTF8.self)
                    } else {
                        value = text(start..<position)
                    }
                    position += 1
                    return value
                }
                if byte == UInt8(ascii: "\\") {
                    escaped = true
                    pieces.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<position]))
                    position += 1
                    guard peek != nil else { break }
                    start = position
                    position += 1
                    continue
                }
                position += 1
            }
            throw failure("unexpected end of input expecting closing quote (\")")
        }

        /// `->key`, `->>key`, `->0`, `->>-1` steps; `->>` may only end the path.
        mutating func jsonPath() throws(PostgRESTError) -> [RecordsQuery.JSONPathStep] {
            guard peek == UInt8(ascii: "-") else { return [] }
            var steps: [RecordsQuery.JSONPathStep] = []
            while true {
                let yieldsText: Bool
                if consume("->>") {
                    yieldsText = true
                } else if consume("->") {
                    yieldsText = false
                } else {
                    return steps
                }
                if let last = steps.last, last.yieldsText {
                    throw failure("->> must be the last step of a JSON path")
                }
                steps.append(RecordsQuery.JSONPathStep(try jsonOperand(), yieldsText: yieldsText))
            }
        }

        mutating func jsonOperand() throws(PostgRESTError) -> RecordsQuery.JSONPathStep.Operand {
            let start = position
            var negative = false
            if peek == UInt8(ascii: "-") {
                negative = true
                position += 1
            }
            var value = 0
            var digits = 0
            var overflow = false
            while let byte = peek, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                let (times, o1) = value.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
                overflow = overflow || o1 || o2
                value = sum
                digits += 1
                position += 1
            }
            if digits > 0 {
                let ends = atEnd || hasPrefix("->") || hasPrefix("::") || peek == UInt8(ascii: ".")
                    || peek == UInt8(ascii: ",") || peek == UInt8(ascii: ")")
                if ends {
                    guard !overflow else { throw failure("JSON array index out of range") }
                    return .index(negative ? -value : value)
                }
            }
            if negative { throw failure("unexpected \(describeNext) expecting digit") }
            position = start
            return .key(try fieldName())
        }

        /// A field with its JSON path.
        mutating func field() throws(PostgRESTError) -> RecordsQuery.Field {
            skipSpaces()
            let name = try fieldName()
            let path = try jsonPath()
            skipSpaces()
            return RecordsQuery.Field(name: name, jsonPath: path)
        }
    }
}
