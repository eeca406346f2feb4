/// Rules for stream ids (`<category>-<id>`) and event type names.
public enum StreamID {
    /// The category of a stream id: the part before the first `-`.
    public static func category(of streamId: String) -> String {
        guard let dash = streamId.firstIndex(of: "-") else { return streamId }
        return String(streamId[..<dash])
    }

    /// `nil` when valid, else why not: category `[a-z][a-z0-9_]*`, a `-`, then 1...200 printable characters.
    public static func problem(with streamId: String) -> String? {
        guard streamId.utf8.count <= 256 else { return "stream id is longer than 256 bytes" }
        guard let dash = streamId.firstIndex(of: "-") else { return "stream id must look like <category>-<id>" }
        let category = streamId[..<dash]
        let id = streamId[streamId.index(after: dash)...]
        if let problem = categoryProblem(with: String(category)) { return "stream \(problem)" }
        guard !id.isEmpty else { return "stream id must not be empty after the category" }
        guard id.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {  // bytes of multi-byte characters are >= 0x80
            return "stream id must not contain spaces or control characters"
        }
        return nil
    }

    /// `nil` when valid, else why not: a category is `[a-z][a-z0-9_]*`, at most 100 characters.
    public static func categoryProblem(with category: String) -> String? {
        guard let first = category.unicodeScalars.first, ("a"..."z").contains(first), category.utf8.count <= 100,
              category.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" })
        else { return "category must match [a-z][a-z0-9_]*" }
        return nil
    }

    /// Categories the server writes itself: auth, keys, storage, realtime, schema and record changes,
    /// and the platform features. The API's append route refuses them, so that no caller, admins
    /// included, can forge what the server's own history says.
    public static let serverCategories: Set<String> = [
        "apikey", "authcode", "authconfig", "bucket", "channel", "oauthcode", "oauthprovider", "realtime", "schema",
        "session", "sql", "table", "user", "object", "delivery", "function", "secret", "schedule", "email", "ai", "logs",
        "seal", "system", "metadata",
    ]

    /// Whether `streamId` belongs to a category the server writes itself.
    public static func isServerStream(_ streamId: String) -> Bool { serverCategories.contains(category(of: streamId)) }

    /// `nil` when valid, else why not: PascalCase `[A-Z][A-Za-z0-9]*`, at most 100 characters.
    public static func typeProblem(with type: String) -> String? {
        guard !type.isEmpty, type.utf8.count <= 100 else { return "event type must have 1 to 100 characters" }
        guard let first = type.unicodeScalars.first, ("A"..."Z").contains(first),
              type.unicodeScalars.allSatisfy({ ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) })
        else { return "event type must be PascalCase ([A-Z][A-Za-z0-9]*)" }
        return nil
    }
}
