/// A JSON Schema, as much of it as the OpenAPI document needs to describe request bodies: enough for
/// a generator (schemathesis) to make valid and invalid bodies for every route that takes one.
indirect enum JSONSchema: Sendable {
    case string(format: String? = nil, pattern: String? = nil, minLength: Int? = nil, maxLength: Int? = nil, oneOf: [String]? = nil)
    case integer(minimum: Int? = nil, maximum: Int? = nil)
    case number
    case boolean
    /// Any JSON value.
    case any
    case array(JSONSchema, maxItems: Int? = nil)
    /// An object with these properties; `required` must be present.
    case object([String: JSONSchema], required: [String] = [])
    /// Any of these shapes.
    case anyOf([JSONSchema])

    static let email = JSONSchema.string(format: "email", maxLength: 254)
    static let text = JSONSchema.string()
    static let name = JSONSchema.string(pattern: "^[A-Za-z_][A-Za-z0-9_]{0,62}$")

    /// The schema as JSON-compatible values.
    var document: [String: Any] {
        switch self {
        case .string(let format, let pattern, let minLength, let maxLength, let oneOf):
            var out: [String: Any] = ["type": "string"]
            if let format { out["format"] = format }
            if let pattern { out["pattern"] = pattern }
            if let minLength { out["minLength"] = minLength }
            if let maxLength { out["maxLength"] = maxLength }
            if let oneOf { out["enum"] = oneOf }
            return out
        case .integer(let minimum, let maximum):
            var out: [String: Any] = ["type": "integer"]
            if let minimum { out["minimum"] = minimum }
            if let maximum { out["maximum"] = maximum }
            return out
        case .number: return ["type": "number"]
        case .boolean: return ["type": "boolean"]
        case .any: return [:]
        case .array(let items, let maxItems):
            var out: [String: Any] = ["type": "array", "items": items.document]
            if let maxItems { out["maxItems"] = maxItems }
            return out
        case .object(let properties, let required):
            var out: [String: Any] = ["type": "object", "properties": properties.mapValues(\.document)]
            if !required.isEmpty { out["required"] = required.sorted() }
            return out
        case .anyOf(let shapes):
            return ["anyOf": shapes.map(\.document)]
        }
    }
}
