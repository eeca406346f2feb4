/// The `Prefer` header preferences the records API honours.
public struct RecordsPreferences: Sendable, Equatable {
    /// `return=`
    public enum Return: String, Sendable {
        /// No body (the default for writes).
        case minimal
        /// No body, but the primary key for a `Location` header.
        case headersOnly = "headers-only"
        /// The written rows.
        case representation
    }

    /// `return=minimal|headers-only|representation`, if given.
    public var returnPreference: Return?
    /// `count=exact|planned|estimated`, if given.
    public var count: String?
    /// `resolution=merge-duplicates|ignore-duplicates`, if given.
    public var resolution: String?
    /// `missing=default`: keys absent from a bulk insert row take the column default.
    public var missingDefault: Bool = false
    /// `missing=` was given (either value), so it is echoed in Preference-Applied.
    var missingGiven: Bool = false
    /// `handling=strict|lenient`, if given.
    public var handling: String?
    /// `params=single-object`: pass the whole body as the function's one json argument.
    public var singleObjectParameter: Bool = false

    /// Creates preferences.
    public init() {}

    /// Parses a `Prefer` header: comma-separated `key=value` tokens. Unknown tokens are ignored,
    /// unless `handling=strict` is among them (then 400 PGRST122).
    public static func parse(_ header: String?) throws(PostgRESTError) -> RecordsPreferences {
        var preferences = RecordsPreferences()
        guard let header, !header.isEmpty else { return preferences }
        var invalid: [String] = []
        for rawToken in header.split(separator: ",") {
            let token = rawToken.trimmingSpaces
            if token.isEmpty { continue }
            switch token {
            case "return=minimal": preferences.returnPreference = .minimal
            case "return=headers-only": preferences.returnPreference = .headersOnly
            case "return=representation": preferences.returnPreference = .representation
            case "count=exact", "count=planned", "count=estimated":
                preferences.count = String(token.dropFirst("count=".count))
            case "resolution=merge-duplicates", "resolution=ignore-duplicates":
                preferences.resolution = String(token.dropFirst("resolution=".count))
            case "missing=default":
                preferences.missingDefault = true
                preferences.missingGiven = true
            case "missing=null":
                preferences.missingDefault = false
                preferences.missingGiven = true
            case "handling=strict", "handling=lenient":
                preferences.handling = String(token.dropFirst("handling=".count))
            case "params=single-object":
                preferences.singleObjectParameter = true
            case "tx=commit", "tx=rollback":
                break
            default:
                if token.hasPrefix("timezone=") || token.hasPrefix("max-affected=") { break }
                invalid.append(token)
            }
        }
        if preferences.handling == "strict", !invalid.isEmpty {
            throw .invalidPreferences(invalid)
        }
        return preferences
    }
}

/// The `Range` request header (`0-9`, `items=0-9`, `10-`), as PostgREST reads it.
public struct RecordsRangeHeader: Sendable, Equatable {
    /// First row index.
    public var lower: Int
    /// Last row index, inclusive; nil for an open range.
    public var upper: Int?

    /// Creates a range.
    public init(lower: Int, upper: Int?) {
        self.lower = lower
        self.upper = upper
    }

    /// Parses the header; nil for headers that are not a row range (PostgREST ignores those).
    /// A range whose upper bound is below its lower bound is 416 PGRST103.
    public static func parse(_ header: String?) throws(PostgRESTError) -> RecordsRangeHeader? {
        guard var text = header?[...].trimmingSpaces, !text.isEmpty else { return nil }
        if let equals = text.firstIndex(of: "=") {
            text = String(text[text.index(after: equals)...])
        }
        guard let dash = text.firstIndex(of: "-") else { return nil }
        guard let lower = Int(text[..<dash]), lower >= 0 else { return nil }
        let upperText = text[text.index(after: dash)...]
        if upperText.isEmpty { return RecordsRangeHeader(lower: lower, upper: nil) }
        guard let upper = Int(upperText), upper >= 0 else { return nil }
        guard upper >= lower else {
            throw .invalidRange("The lower boundary must be lower than or equal to the upper boundary in the Range header.")
        }
        return RecordsRangeHeader(lower: lower, upper: upper)
    }
}

/// What the `Accept` header asks for.
enum RecordsAcceptedMedia: Equatable {
    /// A JSON array of rows.
    case json
    /// `application/vnd.pgrst.object+json`: one object (the executor unwraps it).
    case singleObject

    /// Picks the first acceptable media type; 406 PGRST107 when none is.
    static func parse(_ header: String?) throws(PostgRESTError) -> RecordsAcceptedMedia {
        guard let header, !header.isEmpty else { return .json }
        for part in header.split(separator: ",") {
            let type = (part.split(separator: ";", maxSplits: 1).first.map { $0.trimmingSpaces } ?? "").lowercased()
            switch type {
            case "application/json", "application/*", "*/*", "application/vnd.pgrst.array+json", "application/vnd.pgrst.array":
                return .json
            case "application/vnd.pgrst.object+json", "application/vnd.pgrst.object":
                return .singleObject
            default:
                continue
            }
        }
        throw .unacceptableMediaType(header)
    }
}
