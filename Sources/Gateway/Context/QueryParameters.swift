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

    /// A string query parameter, if present and not empty. Decoded as forms are (`+` is a space,
    /// then percent escapes), which is how browsers and the JS SDK encode query strings.
    func queryString(_ name: String) -> String? {
        guard let query = uri.query else { return nil }
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard Self.formDecode(kv[0]) == name else { continue }
            let value = kv.count > 1 ? Self.formDecode(kv[1]) : ""
            return value.isEmpty ? nil : value
        }
        return nil
    }

    static func formDecode(_ s: Substring) -> String {
        let spaced = s.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }
}
