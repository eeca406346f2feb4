/// One records API call as the HTTP layer hands it over: what PostgREST would read from the
/// method, path, query string and headers.
public struct RecordsRequest: Sendable {
    /// The HTTP verbs the records API answers.
    public enum Method: String, Sendable {
        /// Read rows or call a stable function.
        case get = "GET"
        /// As GET, without a body.
        case head = "HEAD"
        /// Insert or upsert rows, or call a function.
        case post = "POST"
        /// Update the filtered rows.
        case patch = "PATCH"
        /// Upsert one row by primary key.
        case put = "PUT"
        /// Delete the filtered rows.
        case delete = "DELETE"
    }

    /// What the path names: `/records/:table` or `/rpc/:function`.
    public enum Target: Sendable, Equatable {
        /// A table or view.
        case table(String)
        /// A function called as RPC.
        case rpc(String)
    }

    /// The HTTP method.
    public var method: Method
    /// The table or function addressed.
    public var target: Target
    /// From `?schema=`, `Accept-Profile` (reads) or `Content-Profile` (writes); nil means the first exposed schema.
    public var schema: String?
    /// Decoded query items in order (`%XX` and `+` already decoded).
    public var query: [(name: String, value: String)]
    /// The `Prefer` header (several headers joined with commas).
    public var prefer: String?
    /// The `Accept` header.
    public var accept: String?
    /// The `Range` header, e.g. `0-9` or `items=0-9`.
    public var range: String?
    /// The raw JSON body (object or array) for POST/PATCH/PUT and RPC.
    public var body: [UInt8]?
    /// Most rows one response may hold (PostgREST's `db-max-rows`): a larger or missing `limit` is cut
    /// to it, and `Content-Range` still tells the client where to go on. nil: no bound.
    public var maxRows: Int?

    /// Creates a request.
    public init(method: Method, target: Target, schema: String? = nil, query: [(name: String, value: String)] = [],
                prefer: String? = nil, accept: String? = nil, range: String? = nil, body: [UInt8]? = nil) {
        self.method = method
        self.target = target
        self.schema = schema
        self.query = query
        self.prefer = prefer
        self.accept = accept
        self.range = range
        self.body = body
    }
}

/// The outline of a JSON request body: its top-level objects and their keys, so writes can
/// name columns and check them against the catalog before PostgreSQL parses the JSON itself.
struct RecordsRequestBody: Sendable, Equatable {
    /// One top-level object: where it sits in the body and the keys it has, in order.
    struct Object: Sendable, Equatable {
        /// Byte range of the object in the body.
        var range: Range<Int>
        /// Its keys, unescaped, first occurrence only.
        var keys: [String]
        /// Byte ranges of the values of `keys`, by position.
        var valueRanges: [Range<Int>]
    }

    /// Whether the body is an array (bulk) rather than a single object.
    var isArray: Bool
    /// The objects: the body itself, or the elements of the top-level array.
    var objects: [Object]
    /// The body as text, already checked to be valid UTF-8 and valid JSON.
    var text: String

    /// PostgREST's message for a body that is not JSON.
    static let invalidJSONMessage = "Empty or invalid json"

    /// Checks that `bytes` is JSON whose top level is an object or an array of objects.
    static func objects(in bytes: [UInt8]) throws(PostgRESTError) -> RecordsRequestBody {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw .invalidBody(invalidJSONMessage)
        }
        let result: Result<RecordsRequestBody, PostgRESTError> = bytes.withUnsafeBufferPointer { buffer in
            var scanner = RecordsJSONScanner(bytes: buffer)
            do throws(RecordsJSONScanner.Failure) {
                scanner.skipWhitespace()
                guard scanner.position < buffer.count else { return .failure(.invalidBody(invalidJSONMessage)) }
                var objects: [Object] = []
                var isArray = false
                switch buffer[scanner.position] {
                case UInt8(ascii: "{"):
                    let start = scanner.position
                    let (keys, values) = try scanner.object(collectingKeys: true)
                    objects.append(Object(range: start..<scanner.position, keys: keys, valueRanges: values))
                case UInt8(ascii: "["):
                    isArray = true
                    scanner.position += 1
                    scanner.skipWhitespace()
                    if scanner.peek == UInt8(ascii: "]") {
                        scanner.position += 1
                        break
                    }
                    while true {
                        scanner.skipWhitespace()
                        guard scanner.peek == UInt8(ascii: "{") else {
                            // Validate the whole body so a syntax error still reports as invalid JSON.
                            scanner.position = 0
                            try scanner.value()
                            scanner.skipWhitespace()
                            guard scanner.position == buffer.count else { throw .syntax }
                            return .failure(.invalidBody("All array elements must be JSON objects"))
                        }
                        let start = scanner.position
                        let (keys, values) = try scanner.object(collectingKeys: true)
                        objects.append(Object(range: start..<scanner.position, keys: keys, valueRanges: values))
                        scanner.skipWhitespace()
                        if scanner.peek == UInt8(ascii: ",") { scanner.position += 1; continue }
                        if scanner.peek == UInt8(ascii: "]") { scanner.position += 1; break }
                        throw .syntax
                    }
                default:
                    try scanner.value()
                    scanner.skipWhitespace()
                    guard scanner.position == buffer.count else { throw .syntax }
                    return .failure(.invalidBody("The body must be a JSON object or an array of JSON objects"))
                }
                scanner.skipWhitespace()
                guard scanner.position == buffer.count else { throw .syntax }
                return .success(RecordsRequestBody(isArray: isArray, objects: objects, text: text))
            } catch {
                return .failure(.invalidBody(invalidJSONMessage))
            }
        }
        return try result.get()
    }

    /// Checks that `bytes` is one JSON value of any kind and returns it as text (single-parameter RPC).
    static func anyValue(in bytes: [UInt8]) throws(PostgRESTError) -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw .invalidBody(invalidJSONMessage) }
        let valid = bytes.withUnsafeBufferPointer { buffer -> Bool in
            var scanner = RecordsJSONScanner(bytes: buffer)
            do throws(RecordsJSONScanner.Failure) {
                scanner.skipWhitespace()
                try scanner.value()
                scanner.skipWhitespace()
                return scanner.position == buffer.count
            } catch {
                return false
            }
        }
        guard valid else { throw .invalidBody(invalidJSONMessage) }
        return text
    }
}

/// A strict RFC 8259 scanner that validates JSON and collects object keys without building values.
struct RecordsJSONScanner {
    /// Why scanning stopped.
    enum Failure: Error { case syntax, tooDeep }

    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0
    var depth = 0
    /// Nesting deeper than this is refused rather than risking the stack.
    static let maximumDepth = 512

    init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    var peek: UInt8? { position < bytes.count ? bytes[position] : nil }

    mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    mutating func value() throws(Failure) {
        skipWhitespace()
        guard let byte = peek else { throw .syntax }
        switch byte {
        case UInt8(ascii: "{"): _ = try object(collectingKeys: false)
        case UInt8(ascii: "["): try array()
        case UInt8(ascii: "\""): _ = try string(decoding: false)
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default: try number()
        }
    }

    /// Scans an object starting at `{`; when asked to, returns its distinct keys in order and
    /// where each key's value sits (the last occurrence wins, as in PostgreSQL's json functions).
    mutating func object(collectingKeys: Bool) throws(Failure) -> (keys: [String], values: [Range<Int>]) {
        depth += 1
        guard depth <= Self.maximumDepth else { throw .tooDeep }
        defer { depth -= 1 }
        position += 1
        var keys: [String] = []
        var values: [Range<Int>] = []
        skipWhitespace()
        if peek == UInt8(ascii: "}") {
            position += 1
            return (keys, values)
        }
        while true {
            skipWhitespace()
            guard peek == UInt8(ascii: "\"") else { throw .syntax }
            let key = try string(decoding: collectingKeys)
            skipWhitespace()
            guard peek == UInt8(ascii: ":") else { throw .syntax }
            position += 1
            skipWhitespace()
            let valueStart = position
            try value()
            if collectingKeys, let key {
                if let existing = keys.firstIndex(of: key) {
                    values[existing] = valueStart..<position
                } else {
                    keys.append(key)
                    values.append(valueStart..<position)
                }
            }
            skipWhitespace()
            guard let next = peek else { throw .syntax }
            position += 1
            if next == UInt8(ascii: ",") { continue }
            if next == UInt8(ascii: "}") { return (keys, values) }
            throw .syntax
        }
    }

    mutating func array() throws(Failure) {
        depth += 1
        guard depth <= Self.maximumDepth else { throw .tooDeep }
        defer { depth -= 1 }
        position += 1
        skipWhitespace()
        if peek == UInt8(ascii: "]") {
            position += 1
            return
        }
        while true {
            try value()
            skipWhitespace()
            guard let next = peek else { throw .syntax }
            position += 1
            if next == UInt8(ascii: ",") { continue }
            if next == UInt8(ascii: "]") { return }
            throw .syntax
        }
    }

    /// Scans a string starting at `"`; returns its unescaped contents when `decoding`.
    mutating func string(decoding: Bool) throws(Failure) -> String? {
        position += 1
        let start = position
        var hasEscapes = false
        while true {
            guard let byte = peek else { throw .syntax }
            if byte == UInt8(ascii: "\"") { break }
            if byte < 0x20 { throw .syntax }
            if byte == UInt8(ascii: "\\") {
                hasEscapes = true
                position += 1
                guard let escaped = peek else { throw .syntax }
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                     UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    position += 1
                case UInt8(ascii: "u"):
                    position += 1
                    for _ in 0..<4 {
                        guard let hex = peek, Self.hexValue(hex) != nil else { throw .syntax }
                        position += 1
                    }
                default:
                    throw .syntax
                }
                continue
            }
            position += 1
        }
        let end = position
        position += 1
        guard decoding else { return nil }
        let raw = UnsafeBufferPointer(rebasing: bytes[start..<end])
        if !hasEscapes { return String(decoding: raw, as: UTF8.self) }
        return Self.unescape(raw)
    }

    static func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    /// Unescapes the contents of an already validated JSON string.
    static func unescape(_ raw: UnsafeBufferPointer<UInt8>) -> String {
        var scalars = String.UnicodeScalarView()
        var utf8: [UInt8] = []
        var index = 0
        func flush() {
            if !utf8.isEmpty {
                scalars.append(contentsOf: String(decoding: utf8, as: UTF8.self).unicodeScalars)
                utf8.removeAll(keepingCapacity: true)
            }
        }
        func hex4(_ at: Int) -> UInt32 {
            var value: UInt32 = 0
            for offset in 0..<4 { value = value << 4 | (hexValue(raw[at + offset]) ?? 0) }
            return value
        }
        while index < raw.count {
            let byte = raw[index]
            guard byte == UInt8(ascii: "\\") else {
                utf8.append(byte)
                index += 1
                continue
            }
            let escaped = raw[index + 1]
            index += 2
            switch escaped {
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var code = hex4(index)
                index += 4
                if (0xD800..<0xDC00).contains(code), index + 6 <= raw.count,
                   raw[index] == UInt8(ascii: "\\"), raw[index + 1] == UInt8(ascii: "u") {
                    let low = hex4(index + 2)
                    if (0xDC00..<0xE000).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        index += 6
                    }
                }
                flush()
                scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
            default: utf8.append(escaped)
            }
        }
        flush()
        return String(scalars)
    }

    mutating func literal(_ word: StaticString) throws(Failure) {
        let count = word.utf8CodeUnitCount
        guard position + count <= bytes.count else { throw .syntax }
        let expected = UnsafeBufferPointer(start: word.utf8Start, count: count)
        for offset in 0..<count where bytes[position + offset] != expected[offset] { throw .syntax }
        position += count
    }

    mutating func number() throws(Failure) {
        if peek == UInt8(ascii: "-") { position += 1 }
        guard let first = peek, first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") else { throw .syntax }
        position += 1
        if first != UInt8(ascii: "0") { skipDigits() }
        if peek == UInt8(ascii: ".") {
            position += 1
            guard skipDigits() > 0 else { throw .syntax }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            position += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { position += 1 }
            guard skipDigits() > 0 else { throw .syntax }
        }
    }

    @discardableResult
    mutating func skipDigits() -> Int {
        let start = position
        while let byte = peek, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { position += 1 }
        return position - start
    }
}
