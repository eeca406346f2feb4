import EventStore
import Foundation

/// Spans of JSON text that was already validated: the elements of an array, a member of an
/// object. Lets a message payload go to Postgres as the client wrote it (a round trip through
/// `JSONValue` would turn large integers into doubles and reorder keys).
enum RawJSON {
    /// The elements of the array `text`, as text; nil when `text` is not an array.
    static func elements(ofArray text: Substring) -> [Substring]? {
        children(of: text, open: UInt8(ascii: "["))?.map(\.value)
    }

    /// The value of member `key` of the object `text`, as text; nil when absent or not an object.
    static func member(_ key: String, ofObject text: Substring) -> Substring? {
        guard let members = children(of: text, open: UInt8(ascii: "{")) else { return nil }
        return members.last { $0.key.map(unquote) == key }?.value  // the last one wins, as in JSON.parse
    }

    /// The top-level children of an array or object: (key text for objects, value text).
    private static func children(of text: Substring, open: UInt8) -> [(key: Substring?, value: Substring)]? {
        let utf8 = text.utf8
        var i = utf8.startIndex
        func skipSpace() { while i < utf8.endIndex, [0x20, 0x09, 0x0A, 0x0D].contains(utf8[i]) { i = utf8.index(after: i) } }
        /// Moves `i` past one value (string, number, literal, array or object).
        func skipValue() {
            guard i < utf8.endIndex else { return }
            if utf8[i] == UInt8(ascii: "\"") { skipString(); return }
            var depth = 0
            while i < utf8.endIndex {
                let c = utf8[i]
                if c == UInt8(ascii: "\"") { skipString(); continue }
                if c == UInt8(ascii: "[") || c == UInt8(ascii: "{") { depth += 1 }
                if c == UInt8(ascii: "]") || c == UInt8(ascii: "}") {
                    if depth == 0 { return }
                    depth -= 1
                    if depth == 0 { i = utf8.index(after: i); return }
                }
                if depth == 0, c == UInt8(ascii: ",") || [0x20, 0x09, 0x0A, 0x0D].contains(c) { return }
                i = utf8.index(after: i)
            }
        }
        func skipString() {
            i = utf8.index(after: i)
            while i < utf8.endIndex, utf8[i] != UInt8(ascii: "\"") {
                if utf8[i] == UInt8(ascii: "\\") { i = utf8.index(after: i) }
                if i < utf8.endIndex { i = utf8.index(after: i) }
            }
            if i < utf8.endIndex { i = utf8.index(after: i) }
        }
        skipSpace()
        guard i < utf8.endIndex, utf8[i] == open else { return nil }
        i = utf8.index(after: i)
        var out: [(key: Substring?, value: Substring)] = []
        while true {
            skipSpace()
            guard i < utf8.endIndex else { return nil }
            if utf8[i] == UInt8(ascii: "]") || utf8[i] == UInt8(ascii: "}") { return out }
            var key: Substring?
            if open == UInt8(ascii: "{") {
                let start = i
                skipString()
                key = Substring(text.utf8[start..<i])
                skipSpace()
                guard i < utf8.endIndex, utf8[i] == UInt8(ascii: ":") else { return nil }
                i = utf8.index(after: i)
                skipSpace()
            }
            let start = i
            skipValue()
            out.append((key, Substring(text.utf8[start..<i])))
            skipSpace()
            guard i < utf8.endIndex else { return nil }
            if utf8[i] == UInt8(ascii: ",") { i = utf8.index(after: i) }
        }
    }

    /// A JSON string literal's value.
    private static func unquote(_ literal: Substring) -> String? {
        try? JSONCoding.decoder.decode(String.self, from: Data(literal.utf8))
    }
}
