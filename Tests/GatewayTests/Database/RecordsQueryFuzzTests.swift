import Foundation
import Testing
@testable import Gateway

/// A property test over the PostgREST parser and SQL builder, with random and mutated query strings:
/// neither may crash or hang, every refusal is a 4xx in PostgREST's shape, and every statement that is
/// built names only what the schema cache knows (a quoted identifier in the SQL is a catalog name, one of
/// the builder's own aliases `t<n>`/`e<n>`, or an output label after `AS`). Deterministic from its seed; the number of
/// cases is `RECORDS_FUZZ_ITERATIONS` (20,000 by default; `scripts/fuzz-records.sh` runs more).
struct RecordsQueryFuzzTests {
    /// SplitMix64: small, fast and reproducible across runs and machines.
    struct Random: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let catalog: SchemaCatalog = {
        typealias Column = SchemaCatalog.Column
        func key(_ name: String, _ columns: [String], _ table: String) -> SchemaCatalog.ForeignKey {
            .init(name: name, columns: columns, referencedSchema: "public", referencedTable: table, referencedColumns: ["id"])
        }
        return SchemaCatalog(tables: [
            .init(schema: "public", name: "users", columns: [
                Column(name: "id", type: "integer", nullable: false, hasDefault: true), Column(name: "name", type: "text"),
                Column(name: "age", type: "integer"), Column(name: "data", type: "jsonb"), Column(name: "tags", type: "text[]"),
            ], primaryKey: ["id"]),
            .init(schema: "public", name: "posts", columns: [
                Column(name: "id", type: "integer"), Column(name: "author_id", type: "integer"), Column(name: "title", type: "text"),
            ], primaryKey: ["id"], foreignKeys: [key("posts_author_id_fkey", ["author_id"], "users")]),
            .init(schema: "public", name: "comments", columns: [
                Column(name: "id", type: "integer"), Column(name: "post_id", type: "integer"), Column(name: "body", type: "text"),
            ], primaryKey: ["id"], foreignKeys: [key("comments_post_id_fkey", ["post_id"], "posts")]),
        ], functions: [
            .init(schema: "public", name: "add_them", arguments: [("a", "integer", false), ("b", "integer", false)], returnType: "integer",
                  returnsSet: false, returnsTable: false, isVolatile: false),
        ], exposedSchemas: ["public"])
    }()

    static let known: Set<String> = {
        var names: Set<String> = ["public"]
        for table in catalog.tables.values {
            names.insert(table.name)
            for column in table.columns { names.insert(column.name) }
            for key in table.foreignKeys { names.insert(key.name) }
        }
        for function in catalog.functions.values {
            names.insert(function.name)
            for argument in function.arguments { names.insert(argument.name) }
        }
        return names
    }()

    static let words = ["id", "name", "age", "data", "tags", "title", "author_id", "users", "posts", "comments", "body", "post_id",
                        "nope", "select", "order", "limit", "offset", "or", "and", "not", "eq", "neq", "gt", "lt", "in", "is", "like",
                        "ilike", "cs", "cd", "ov", "fts", "null", "true", "desc", "asc", "nullsfirst", "inner", "left", "count",
                        "author", "x\"y", "é", "a b", "1", "-1", "99999999999999999999", ""]
    static let symbols = ["(", ")", ",", ".", ":", "::", "!", "*", "->", "->>", "\"", "'", "\\", "...", "{", "}", "[", "]", "%", " ",
                          "\u{0}", "$1", ";", "--", "/*"]
    static let names = ["select", "order", "limit", "offset", "or", "and", "not.or", "id", "name", "data->a", "posts.order",
                        "posts.limit", "on_conflict", "columns", "author.name", "tags", "age", "x"]

    static func fragment(_ random: inout Random, depth: Int = 0) -> String {
        switch Int.random(in: 0..<10, using: &random) {
        case 0...3: return words.randomElement(using: &random)!
        case 4...5: return symbols.randomElement(using: &random)!
        case 6 where depth < 30:
            return (words.randomElement(using: &random)!) + "(" + fragments(&random, depth: depth + 1) + ")"
        case 7 where depth < 30:
            return "(" + fragments(&random, depth: depth + 1) + ")"
        case 8: return words.randomElement(using: &random)! + "." + words.randomElement(using: &random)!
        default: return String(UnicodeScalar(UInt8.random(in: 0x20...0x7E, using: &random)))
        }
    }

    static func fragments(_ random: inout Random, depth: Int = 0) -> String {
        (0..<Int.random(in: 1...6, using: &random)).map { _ in fragment(&random, depth: depth) }.joined()
    }

    static let columns = ["id", "name", "age", "data", "tags", "title", "author_id", "post_id", "body", "nope", "*"]
    static let operators = ["eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "is", "in", "cs", "cd", "ov", "fts", "match", "imatch"]
    static let values = ["1", "abc", "null", "true", "(1,2)", "{a,b}", "%a*", "2020-01-01", "\"q,\"", "", "-5", "1e309"]

    /// A query item from PostgREST's grammar (selects with embeddings, filters, logic trees, orders, ranges).
    static func grammatical(_ random: inout Random) -> (name: String, value: String) {
        func column() -> String { columns.randomElement(using: &random)! }
        func path() -> String { column() + (Int.random(in: 0..<4, using: &random) == 0 ? "->a->>b" : "") }
        func filter() -> String {
            (Bool.random(using: &random) ? "not." : "") + operators.randomElement(using: &random)! + "." + values.randomElement(using: &random)!
        }
        func select(_ depth: Int) -> String {
            (0..<Int.random(in: 1...3, using: &random)).map { _ in
                switch Int.random(in: 0..<6, using: &random) {
                case 0 where depth < 20:
                    let relation = ["users", "posts", "comments", "author", "nope"].randomElement(using: &random)!
                    let hint = Int.random(in: 0..<4, using: &random) == 0 ? "!inner" : ""
                    return relation + hint + "(" + select(depth + 1) + ")"
                case 1: return "alias:" + path()
                case 2: return path() + "::text"
                default: return path()
                }
            }.joined(separator: ",")
        }
        func logic(_ depth: Int) -> String {
            "(" + (0..<Int.random(in: 1...3, using: &random)).map { _ in
                depth < 20 && Int.random(in: 0..<3, using: &random) == 0
                    ? (Bool.random(using: &random) ? "and" : "or") + logic(depth + 1) : path() + "." + filter()
            }.joined(separator: ",") + ")"
        }
        switch Int.random(in: 0..<6, using: &random) {
        case 0: return ("select", select(0))
        case 1: return (Bool.random(using: &random) ? "or" : "and", logic(0))
        case 2: return ("order", path() + [".asc", ".desc", ".desc.nullslast", ""].randomElement(using: &random)!)
        case 3: return (["limit", "offset"].randomElement(using: &random)!, String(Int.random(in: -2...1000, using: &random)))
        default: return (path(), filter())
        }
    }

    /// `text` with a few random characters inserted, removed or replaced.
    static func mutated(_ text: String, _ random: inout Random) -> String {
        var chars = Array(text)
        for _ in 0..<Int.random(in: 0...3, using: &random) {
            let position = chars.isEmpty ? 0 : Int.random(in: 0..<chars.count, using: &random)
            switch Int.random(in: 0..<3, using: &random) {
            case 0: chars.insert(contentsOf: symbols.randomElement(using: &random)!, at: position)
            case 1 where !chars.isEmpty: chars.remove(at: position)
            default: if !chars.isEmpty { chars[position] = Character(UnicodeScalar(UInt8.random(in: 0x20...0x7E, using: &random))) }
            }
        }
        return String(chars)
    }

    /// Quoted identifiers in `sql` outside string literals, each with whether it stands right after `AS `.
    static func quotedIdentifiers(_ sql: String) -> [(name: String, isLabel: Bool)] {
        let bytes = Array(sql.utf8)
        var out: [(String, Bool)] = []
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "'") {
                i += 1
                while i < bytes.count, !(bytes[i] == UInt8(ascii: "'") && !(i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "'"))) {
                    i += bytes[i] == UInt8(ascii: "'") ? 2 : 1
                }
                i += 1
            } else if bytes[i] == UInt8(ascii: "\"") {
                let label = i >= 3 && String(decoding: bytes[(i - 3)..<i], as: UTF8.self) == "AS "
                var name: [UInt8] = []
                var j = i + 1
                while j < bytes.count, !(bytes[j] == UInt8(ascii: "\"") && !(j + 1 < bytes.count && bytes[j + 1] == UInt8(ascii: "\""))) {
                    name.append(bytes[j])
                    j += bytes[j] == UInt8(ascii: "\"") ? 2 : 1
                }
                out.append((String(decoding: name, as: UTF8.self), label))
                i = j + 1
            } else {
                i += 1
            }
        }
        return out
    }

    static func attempt(_ request: RecordsRequest) -> Result<GeneratedSQL, PostgRESTError> {
        do {
            return .success(try RecordsSQLBuilder.build(request, catalog: catalog))
        } catch {
            return .failure(error)
        }
    }

    @Test func randomQueriesNeverCrashAndNameOnlyWhatTheCatalogKnows() throws {
        let iterations = ProcessInfo.processInfo.environment["RECORDS_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 20_000
        let seed = ProcessInfo.processInfo.environment["RECORDS_FUZZ_SEED"].flatMap(UInt64.init) ?? 0x1A5F_0E5D
        var random = Random(state: seed)
        var built = 0
        var refused = 0
        let methods: [RecordsRequest.Method] = [.get, .get, .get, .delete, .patch, .post]
        for iteration in 0..<iterations {
            let items = (0..<Int.random(in: 1...4, using: &random)).map { _ -> (name: String, value: String) in
                switch Int.random(in: 0..<4, using: &random) {
                case 0: return (Self.names.randomElement(using: &random)!, Self.fragments(&random))
                case 1:
                    let (name, value) = Self.grammatical(&random)
                    return (Self.mutated(name, &random), Self.mutated(value, &random))
                default: return Self.grammatical(&random)
                }
            }
            let method = methods.randomElement(using: &random)!
            let target: RecordsRequest.Target = Int.random(in: 0..<10, using: &random) == 0
                ? .rpc("add_them") : .table(["users", "posts", "comments", "nope"].randomElement(using: &random)!)
            let body: [UInt8]? = [.post, .patch].contains(method) ? Array(#"{"name":"x","age":1}"#.utf8) : nil
            let request = RecordsRequest(method: method, target: target, schema: nil, query: items, prefer: nil, accept: nil, range: nil,
                                         body: body)
            switch Self.attempt(request) {
            case .success(let generated):
                built += 1
                for (name, isLabel) in Self.quotedIdentifiers(generated.sql) where !isLabel {
                    // The builder's own aliases: t<n> for tables, e<n> for embeddings.
                    let builderAlias = (name.hasPrefix("t") || name.hasPrefix("e")) && Int(name.dropFirst()) != nil
                    #expect(Self.known.contains(name) || builderAlias,
                            "case \(iteration): \"\(name)\" is not in the catalog; query \(items); SQL \(generated.sql)")
                }
            case .failure(let refusal):
                refused += 1
                #expect((400..<500).contains(refusal.status), "case \(iteration): \(refusal.status) \(refusal.code) for \(items)")
                #expect(refusal.code.hasPrefix("PGRST") || refusal.code.count == 5, "case \(iteration): \(refusal.code)")
            }
        }
        print("records fuzz: \(iterations) cases (seed \(seed)): \(built) built, \(refused) refused")
        #expect(built > iterations / 40, "the generator should reach the builder")
    }
}
