/// Splits SQL text into statements and classifies them, for the raw-SQL route: a pure lexer that
/// knows quotes, quoted identifiers, dollar quotes and comments, so a `;` inside them does not split.
public enum SQLStatements {
    /// One statement and what it starts with.
    public struct Statement: Sendable, Equatable {
        public var text: String
        /// The first keyword, upper-cased (`SELECT`, `INSERT`, `CREATE` ...).
        public var keyword: String
        /// Schema-qualified names `schema.` seen outside strings and comments, lower-cased.
        public var schemas: Set<String>
        /// Whether `RETURNING` appears (as a word, outside strings).
        public var hasReturning: Bool
        /// Every word outside strings and comments, upper-cased.
        public var words: Set<String> = []
        /// `schema.name` pairs seen (lower-cased), e.g. `auth.uid`.
        public var qualifiedNames: Set<String> = []

        /// Schemas whose objects the statement names, except the SQL helpers RLS policies call (`auth.uid()` ...).
        public var touchedSchemas: Set<String> {
            let helpers: Set<String> = ["auth.uid", "auth.role", "auth.email", "auth.jwt"]
            var out = Set<String>()
            for name in qualifiedNames where !helpers.contains(name) {
                if let dot = name.firstIndex(of: ".") { out.insert(String(name[..<dot])) }
            }
            // A qualifier with nothing after it (`"system".` then a quoted name) still counts.
            return out.union(schemas.filter { s in !qualifiedNames.contains { $0.hasPrefix(s + ".") } })
        }

        /// Whether any word makes it write (a data-modifying CTE, `EXPLAIN ANALYZE DELETE` ...).
        public var writes: Bool { !words.isDisjoint(with: SQLStatements.writingWords) }
    }

    /// Words that make a statement change something.
    public static let writingWords: Set<String> = ["INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "DROP", "ALTER", "CREATE",
                                                   "GRANT", "REVOKE", "COMMENT", "CALL", "REINDEX", "CLUSTER", "SECURITY", "OWNER"]

    /// Why the text cannot be split (an unterminated quote or comment), or the statements (empty ones dropped).
    public static func split(_ sql: String) -> Result<[Statement], SplitError> {
        let s = Array(sql.utf8)
        var out: [Statement] = []
        var start = 0
        var i = 0
        var words: [String] = []
        var schemas = Set<String>()
        var word: [UInt8] = []
        var qualifier: String?
        var qualified = Set<String>()
        func endWord(nextIsDot: Bool) {
            guard !word.isEmpty else { return }
            let w = String(decoding: word, as: UTF8.self).uppercased()
            words.append(w)
            if let q = qualifier { qualified.insert("\(q).\(w.lowercased())"); qualifier = nil }
            if nextIsDot { schemas.insert(w.lowercased()); qualifier = w.lowercased() }
            word.removeAll()
        }
        func flush(_ end: Int) {
            endWord(nextIsDot: false)
            let text = String(decoding: s[start..<end], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !text.isEmpty, let first = words.first {
                out.append(Statement(text: text, keyword: first, schemas: schemas, hasReturning: words.contains("RETURNING"),
                                     words: Set(words), qualifiedNames: qualified))
            }
            words.removeAll()
            schemas.removeAll()
            qualified.removeAll()
            qualifier = nil
        }
        while i < s.count {
            let c = s[i]
            switch c {
            case UInt8(ascii: "'"):
                endWord(nextIsDot: false)
                i += 1
                while i < s.count, !(s[i] == UInt8(ascii: "'") && !(i + 1 < s.count && s[i + 1] == UInt8(ascii: "'"))) {
                    i += s[i] == UInt8(ascii: "'") ? 2 : 1
                }
                guard i < s.count else { return .failure(.unterminated("string")) }
                i += 1
            case UInt8(ascii: "\""):
                endWord(nextIsDot: false)
                var j = i + 1
                var name: [UInt8] = []
                while j < s.count, !(s[j] == UInt8(ascii: "\"") && !(j + 1 < s.count && s[j + 1] == UInt8(ascii: "\""))) {
                    name.append(s[j])
                    j += s[j] == UInt8(ascii: "\"") ? 2 : 1
                }
                guard j < s.count else { return .failure(.unterminated("quoted identifier")) }
                if j + 1 < s.count, s[j + 1] == UInt8(ascii: ".") { schemas.insert(String(decoding: name, as: UTF8.self).lowercased()) }
                i = j + 1
            case UInt8(ascii: "-") where i + 1 < s.count && s[i + 1] == UInt8(ascii: "-"):
                endWord(nextIsDot: false)
                while i < s.count, s[i] != UInt8(ascii: "\n") { i += 1 }
            case UInt8(ascii: "/") where i + 1 < s.count && s[i + 1] == UInt8(ascii: "*"):
                endWord(nextIsDot: false)
                var depth = 1
                i += 2
                while i < s.count, depth > 0 {
                    if s[i] == UInt8(ascii: "/"), i + 1 < s.count, s[i + 1] == UInt8(ascii: "*") { depth += 1; i += 2 }
                    else if s[i] == UInt8(ascii: "*"), i + 1 < s.count, s[i + 1] == UInt8(ascii: "/") { depth -= 1; i += 2 }
                    else { i += 1 }
                }
                guard depth == 0 else { return .failure(.unterminated("comment")) }
            case UInt8(ascii: "$") where word.isEmpty:
                // $tag$ ... $tag$ (a parameter like $1 is not a dollar quote).
                var j = i + 1
                while j < s.count, s[j] == UInt8(ascii: "_") || (s[j] >= 65 && s[j] <= 90) || (s[j] >= 97 && s[j] <= 122) || (s[j] >= 48 && s[j] <= 57 && j > i + 1) { j += 1 }
                if j < s.count, s[j] == UInt8(ascii: "$"), !(i + 1 < s.count && s[i + 1] >= 48 && s[i + 1] <= 57) {
                    let tag = Array(s[i...j])
                    var k = j + 1
                    var found = false
                    while k + tag.count <= s.count {
                        if Array(s[k..<(k + tag.count)]) == tag { found = true; break }
                        k += 1
                    }
                    guard found else { return .failure(.unterminated("dollar-quoted string")) }
                    i = k + tag.count
                } else {
                    i += 1
                }
            case UInt8(ascii: ";"):
                flush(i)
                i += 1
                start = i
            default:
                let isWordChar = c == UInt8(ascii: "_") || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c >= 0x80
                if isWordChar {
                    word.append(c)
                } else {
                    endWord(nextIsDot: c == UInt8(ascii: "."))
                }
                i += 1
            }
        }
        flush(s.count)
        return .success(out)
    }

    /// Why SQL text could not be split.
    public enum SplitError: Error, Equatable {
        case unterminated(String)
    }

    /// Statements whose rows come back (`SELECT`, `WITH`, `VALUES`, `TABLE`, `SHOW`, `EXPLAIN`, or DML with `RETURNING`).
    public static func returnsRows(_ statement: Statement) -> Bool {
        ["SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN"].contains(statement.keyword)
            || (["INSERT", "UPDATE", "DELETE"].contains(statement.keyword) && statement.hasReturning)
    }
}
