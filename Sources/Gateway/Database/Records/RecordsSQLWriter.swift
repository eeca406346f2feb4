/// Appends SQL text and bind parameters; the only way request data reaches the statement.
/// A class over plain memory: appending is a bounds check and a copy, and emitting methods need
/// not mutate the statement (so they can borrow the parsed query instead of copying it).
final class RecordsSQLWriter {
    private var base: UnsafeMutablePointer<UInt8>
    /// Bytes written so far.
    private(set) var count = 0
    private var capacity: Int
    /// Parameter values in `$1...$n` order.
    var binds: [String?] = []
    /// Next `"t<n>"` alias.
    var nextTableAlias = 0
    /// Next `"e<n>"` alias.
    var nextEmbedAlias = 1

    init(capacity: Int = 1024) {
        self.capacity = capacity
        base = .allocate(capacity: capacity)
        binds.reserveCapacity(8)
    }

    deinit {
        base.deallocate()
    }

    @inline(__always)
    private func reserve(_ extra: Int) {
        if count + extra > capacity { grow(extra) }
    }

    @inline(never)
    private func grow(_ extra: Int) {
        var newCapacity = capacity * 2
        while newCapacity < count + extra { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    /// One byte of SQL text.
    @inline(__always)
    func appendByte(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    @inline(__always)
    private func append(_ bytes: UnsafePointer<UInt8>?, _ length: Int) {
        guard let bytes, length > 0 else { return }
        reserve(length)
        (base + count).update(from: bytes, count: length)
        count += length
    }

    /// Fixed SQL text of ours.
    @inline(__always)
    func append(_ text: StaticString) {
        append(text.utf8Start, text.utf8CodeUnitCount)
    }

    /// Bytes prepared earlier (quoted catalog names, cast suffixes).
    @inline(__always)
    func appendBytes(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { append($0.baseAddress, $0.count) }
    }

    /// Text from the catalog (type names) or validated by the parser (cast targets).
    func appendTrusted(_ text: String) {
        text.withUTF8Bytes { append($0.baseAddress, $0.count) }
    }

    /// A double-quoted identifier; `"` is doubled and NUL (which would end the statement) dropped.
    func appendIdentifier(_ name: String) {
        name.withUTF8Bytes { bytes in
            appendByte(UInt8(ascii: "\""))
            var plain = true
            for byte in bytes where byte == UInt8(ascii: "\"") || byte == 0 {
                plain = false
                break
            }
            if plain {
                append(bytes.baseAddress, bytes.count)
            } else {
                for byte in bytes {
                    if byte == 0 { continue }
                    if byte == UInt8(ascii: "\"") { appendByte(byte) }
                    appendByte(byte)
                }
            }
            appendByte(UInt8(ascii: "\""))
        }
    }

    /// `"schema"."name"`
    func appendQualified(_ schema: String, _ name: String) {
        appendIdentifier(schema)
        appendByte(UInt8(ascii: "."))
        appendIdentifier(name)
    }

    /// A non-negative decimal number.
    func appendNumber(_ number: Int) {
        if number < 10 {
            appendByte(UInt8(ascii: "0") + UInt8(number))
            return
        }
        appendNumber(number / 10)
        appendByte(UInt8(ascii: "0") + UInt8(number % 10))
    }

    /// A generated alias such as `"t3"` (table) or `"e2"` (embedding).
    func appendAlias(_ prefix: UInt8, _ number: Int) {
        if number < 10 {
            reserve(4)
            base[count] = UInt8(ascii: "\"")
            base[count + 1] = prefix
            base[count + 2] = UInt8(ascii: "0") + UInt8(number)
            base[count + 3] = UInt8(ascii: "\"")
            count += 4
            return
        }
        appendByte(UInt8(ascii: "\""))
        appendByte(prefix)
        appendNumber(number)
        appendByte(UInt8(ascii: "\""))
    }

    /// `$n::type` (or `$n::type[]`) for a new parameter holding `value`, cast to an expression's type.
    func appendBind(_ value: String?, cast type: RecordsExpressionType, asArray: Bool = false) {
        binds.append(value)
        appendByte(UInt8(ascii: "$"))
        appendNumber(binds.count)
        appendBytes(type.castSuffix)
        if asArray { append("[]") }
    }

    /// `$n::type` for a new parameter holding `value`.
    func appendBind(_ value: String?, type: String) {
        binds.append(value)
        appendByte(UInt8(ascii: "$"))
        appendNumber(binds.count)
        append("::")
        appendTrusted(type)
    }

    /// `$n::type` for a new parameter holding `value`.
    func appendBind(_ value: String?, type: StaticString) {
        binds.append(value)
        appendByte(UInt8(ascii: "$"))
        appendNumber(binds.count)
        append("::")
        append(type)
    }

    /// Appends a copy of bytes written earlier (the WHERE clause reused by the count).
    func appendCopy(of range: Range<Int>) {
        reserve(range.count)
        (base + count).update(from: base + range.lowerBound, count: range.count)
        count += range.count
    }

    /// The statement written so far.
    var sql: String {
        String(decoding: UnsafeBufferPointer(start: base, count: count), as: UTF8.self)
    }

    /// `"name"` with `"` doubled and NUL dropped, as bytes.
    static func quotedIdentifier(_ name: String) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(ascii: "\"")]
        bytes.reserveCapacity(name.utf8.count + 2)
        for byte in name.utf8 where byte != 0 {
            if byte == UInt8(ascii: "\"") { bytes.append(byte) }
            bytes.append(byte)
        }
        bytes.append(UInt8(ascii: "\""))
        return bytes
    }

    /// `::type` as bytes.
    static func castSuffix(_ type: String) -> [UInt8] {
        [UInt8(ascii: ":"), UInt8(ascii: ":")] + Array(type.utf8)
    }
}

/// The SQL type of an emitted expression: what a bind compared with it is cast to.
struct RecordsExpressionType {
    /// The type name, e.g. `integer`.
    var name: String
    /// `::name` as bytes.
    var castSuffix: [UInt8]

    init(name: String, castSuffix: [UInt8]) {
        self.name = name
        self.castSuffix = castSuffix
    }

    init(_ name: String) {
        self.init(name: name, castSuffix: RecordsSQLWriter.castSuffix(name))
    }

    static let text = RecordsExpressionType("text")
    static let jsonb = RecordsExpressionType("jsonb")

    /// The type of a catalog column.
    static func of(_ column: SchemaCatalog.Column) -> RecordsExpressionType {
        RecordsExpressionType(name: column.type, castSuffix: column.castSuffix)
    }
}

/// Prefix of generated table aliases (`"t0"`).
let aliasTable = UInt8(ascii: "t")
/// Prefix of generated embedding aliases (`"e1"`).
let aliasEmbed = UInt8(ascii: "e")
