import Hummingbird

extension Request {
    /// An integer query parameter within `range`; 400 `INVALID_INPUT` naming it otherwise.
    func queryInt(_ name: String, default fallback: Int64, range: ClosedRange<Int64>) throws -> Int64 {
        guard let raw = uri.queryParameters[name[...]] else { return fallback }
        guard let value = Int64(raw), range.contains(value) else {
            throw APIError.invalidInput("\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    /// A string query parameter, if present and not empty.
    func queryString(_ name: String) -> String? {
        guard let raw = uri.queryParameters[name[...]], !raw.isEmpty else { return nil }
        return String(raw)
    }
}
