import Foundation
import Hummingbird

extension Request {
    /// An integer query parameter within `range`; 400 `INVALID_INPUT` naming it otherwise.
    func queryInt(_ name: String, default fallback: Int64, range: ClosedRange<Int64>) throws -> Int64 {
        guard let raw = queryString(name) else { return fallback }
        guard let value = Int64(raw), range.contains(value) else {
            throw APIError.invalidInput("\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    /// A UUID query parameter, if present; 400 `INVALID_INPUT` naming it when it is not a UUID.
    func queryUUID(_ name: String) throws -> UUID? {
        try queryString(name).map { raw in
            guard let id = UUID(uuidString: raw) else { throw APIError.invalidInput("\(name) must be a UUID") }
            return id
        }
    }

    /// A string query parameter, if present and not empty. Decoded as forms are (`+` is a space,
    /// then percent escapes), which is how browsers and the JS SDK encode query strings.
    func queryString(_ name: String) -> String? {
        guard let query = uri.query, let value = Self.formPairs(query).first(where: { $0.name == name })?.value else { return nil }
        return value.isEmpty ? nil : value
    }

    /// The `name=value` pairs of a query string or an `application/x-www-form-urlencoded` body, in
    /// order and with repeats kept, each side decoded with `formDecode`.
    static func formPairs(_ text: String) -> [(name: String, value: String)] {
        text.split(separator: "&").map { pair in
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (formDecode(kv[0]), kv.count > 1 ? formDecode(kv[1]) : "")
        }
    }

    /// `formPairs` as a dictionary (the last of repeated names wins).
    static func formFields(_ text: String) -> [String: String] {
        formPairs(text).reduce(into: [:]) { $0[$1.name] = $1.value }
    }

    /// `+` is a space, then `%XX` escapes are bytes; a string whose escapes are malformed or do not
    /// decode to UTF-8 comes back with only the `+`s replaced. Works on the UTF-8 bytes (this runs
    /// for every query item of every records request).
    static func formDecode(_ s: Substring) -> String {
        let utf8 = s.utf8
        guard utf8.contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "%") }) else { return String(s) }
        var spaced = [UInt8](utf8)
        for i in spaced.indices where spaced[i] == UInt8(ascii: "+") { spaced[i] = UInt8(ascii: " ") }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(spaced.count)
        var i = 0
        while i < spaced.count {
            let byte = spaced[i]
            if byte == UInt8(ascii: "%") {
                guard i + 2 < spaced.count, let high = hexValue(spaced[i + 1]), let low = hexValue(spaced[i + 2]) else {
                    return String(decoding: spaced, as: UTF8.self)
                }
                decoded.append(high << 4 | low)
                i += 3
            } else {
                decoded.append(byte)
                i += 1
            }
        }
        return String(validating: decoded, as: UTF8.self) ?? String(decoding: spaced, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
