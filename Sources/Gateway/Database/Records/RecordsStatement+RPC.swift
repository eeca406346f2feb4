// RPC: calling a function with named arguments and filtering its rows.

extension RecordsStatement {
    // MARK: - RPC

    /// Names of arguments the request gives (for a PGRST202 message).
    static func givenArgumentNames(_ request: RecordsRequest) -> [String] {
        if request.method == .post {
            guard let bytes = request.body, !bytes.isEmpty,
                  let body = try? RecordsRequestBody.objects(in: bytes), !body.isArray else { return [] }
            return body.objects.first?.keys ?? []
        }
        let reserved: Set<String> = ["select", "order", "limit", "offset", "columns", "on_conflict", "schema", "and", "or"]
        return request.query.map(\.name).filter { !reserved.contains($0) && !$0.contains(".") }
    }

    /// POST/GET /rpc/fn.
    mutating func buildCall(_ function: SchemaCatalog.Function) throws(PostgRESTError) {
        readOnly = request.method != .post
        let call = try functionCall(function)
        applyCountPreference()
        let result = resultTable(of: function)

        writer.append("WITH ")
        if let bodyArguments = call.bodyArguments {
            writer.append("pgrst_args AS (SELECT * FROM json_to_record(")
            writer.appendBind(bodyArguments.json, type: "json")
            writer.append(") AS _pgrst_a(")
            for (index, argument) in bodyArguments.columns.enumerated() {
                if index > 0 { writer.append(", ") }
                writer.appendIdentifier(argument.name)
                writer.append(" ")
                writer.appendTrusted(argument.type)
            }
            writer.append(")), ")
        }

        guard let resolved = result else {
            // A scalar (or set of scalars): the JSON value itself, or an array of them.
            if function.returnsSet {
                try checkScopes()
                let (limit, offset) = try rootRange()
                writer.append("pgrst_source AS (SELECT \"t0\".pgrst_scalar FROM ")
                emitCallSource(call)
                writer.append(" AS \"t0\"(pgrst_scalar)")
                emitRange(limit: limit, offset: offset)
                writer.append(") SELECT count(*) AS page_total, ")
                writer.append(countRequested != nil ? "count(*)" : "NULL::bigint")
                writer.append(" AS total, coalesce(json_agg(pgrst_scalar), '[]')::text AS body FROM pgrst_source")
            } else {
                singleObject = false
                writer.append("pgrst_source AS (SELECT ")
                emitCallExpression(call)
                writer.append(" AS pgrst_scalar")
                if call.bodyArguments != nil { writer.append(" FROM pgrst_args") }
                writer.append(") SELECT 1::bigint AS page_total, NULL::bigint AS total, ")
                if function.returnType == "void" {
                    writer.append("'null'::text AS body FROM pgrst_source")
                } else {
                    writer.append("coalesce(to_json(pgrst_scalar)::text, 'null') AS body FROM pgrst_source")
                }
            }
            if request.method == .head { returnMinimal = true }
            return
        }

        // Rows: select, filter, order and page them like a table.
        let (table, columnsKnown) = resolved
        let root = try plan(table, items: query.select, path: [], columnsKnown: columnsKnown)
        try checkScopes()
        var limit: Int?
        var offset = 0
        if function.returnsSet { (limit, offset) = try rootRange() }
        var source = ReadSource.function(call)
        if countRequested != nil {
            // Call once: the count and the page both read the materialized result.
            writer.append("pgrst_call AS MATERIALIZED (SELECT \"t0\".* FROM ")
            emitCallSource(call)
            writer.append(" AS \"t0\"), ")
            source = .function(call.readingMaterialized())
        }
        writer.append("pgrst_source AS (")
        pendingTotal = try emitRootSelect(root, source: source, limit: limit, offset: offset, withCount: countRequested != nil)
        if function.returnsSet {
            finishRead(emptyBody: request.method == .head)
        } else {
            // One composite value: PostgREST answers with the object, not an array.
            singleObject = false
            writer.append(" SELECT count(*) AS page_total, ")
            emitTotal()
            writer.append(" AS total, coalesce((json_agg(_pgrst_t)->0)::text, 'null') AS body FROM pgrst_source AS _pgrst_t")
            if request.method == .head { returnMinimal = true }
        }
    }

    /// The columns a function's rows have, and whether they are known; nil for scalar results.
    func resultTable(of function: SchemaCatalog.Function) -> (SchemaCatalog.Table, Bool)? {
        var type = function.returnType[...].trimmingSpaces
        if type.lowercased().hasPrefix("setof ") { type = String(type.dropFirst(6))[...].trimmingSpaces }
        if type.hasPrefix("TABLE(") || type.hasPrefix("table("), type.hasSuffix(")") {
            let inner = type.dropFirst(6).dropLast()
            let columns = Self.columnDefinitions(String(inner))
            return (SchemaCatalog.Table(schema: function.schema, name: function.name, columns: columns), true)
        }
        if let table = tableNamed(type, defaultSchema: function.schema) {
            return (table, true)
        }
        guard function.returnsTable else { return nil }
        return (SchemaCatalog.Table(schema: function.schema, name: function.name, columns: []), false)
    }

    /// The catalog table a type name (`posts`, `public.posts`, `"My Table"`) denotes.
    func tableNamed(_ type: String, defaultSchema: String) -> SchemaCatalog.Table? {
        let parts = Self.splitQualifiedName(type)
        switch parts.count {
        case 1:
            if let table = catalog.table(schema: defaultSchema, name: parts[0]) { return table }
            for exposed in catalog.exposedSchemas {
                if let table = catalog.table(schema: exposed, name: parts[0]) { return table }
            }
            return nil
        case 2:
            return catalog.table(schema: parts[0], name: parts[1])
        default:
            return nil
        }
    }

    /// Splits `a.b` / `"a"."b.c"` into unquoted parts.
    static func splitQualifiedName(_ text: String) -> [String] {
        var parts: [String] = []
        var current: [Character] = []
        var quoted = false
        var iterator = Array(text).makeIterator()
        var pending: Character?
        while let character = pending ?? iterator.next() {
            pending = nil
            if quoted {
                if character == "\"" {
                    if let next = iterator.next() {
                        if next == "\"" { current.append("\"") } else { quoted = false; pending = next }
                    } else {
                        quoted = false
                    }
                } else {
                    current.append(character)
                }
            } else if character == "\"" {
                quoted = true
            } else if character == "." {
                parts.append(String(current))
                current = []
            } else {
                current.append(character)
            }
        }
        parts.append(String(current))
        return parts
    }

    /// Parses `id integer, "Name" text, tags text[]` from `TABLE(...)`.
    static func columnDefinitions(_ text: String) -> [SchemaCatalog.Column] {
        var definitions: [String] = []
        var depth = 0
        var quoted = false
        var current = ""
        for character in text {
            if character == "\"" { quoted.toggle() }
            if !quoted {
                if character == "(" { depth += 1 }
                if character == ")" { depth -= 1 }
                if character == ",", depth == 0 {
                    definitions.append(current)
                    current = ""
                    continue
                }
            }
            current.append(character)
        }
        definitions.append(current)
        var columns: [SchemaCatalog.Column] = []
        for definition in definitions {
            let trimmed = definition[...].trimmingSpaces
            guard !trimmed.isEmpty else { continue }
            var name: String
            var rest: Substring
            if trimmed.hasPrefix("\"") {
                var characters = Array(trimmed.dropFirst())
                var index = 0
                name = ""
                while index < characters.count {
                    if characters[index] == "\"" {
                        if index + 1 < characters.count, characters[index + 1] == "\"" {
                            name.append("\"")
                            index += 2
                            continue
                        }
                        break
                    }
                    name.append(characters[index])
                    index += 1
                }
                characters = Array(characters.dropFirst(min(index + 1, characters.count)))
                rest = String(characters)[...]
            } else {
                let space = trimmed.firstIndex(of: " ") ?? trimmed.endIndex
                name = String(trimmed[..<space])
                rest = trimmed[space...]
            }
            columns.append(SchemaCatalog.Column(name: name, type: rest.trimmingSpaces))
        }
        return columns
    }

    /// How arguments reach a function call.
    struct RecordsFunctionCall {
        var function: SchemaCatalog.Function
        /// Named arguments from the query string: name, value, type.
        var queryArguments: [(name: String, values: [String], type: String)] = []
        /// The whole body as the single json argument.
        var singleArgument: (json: String, type: String)?
        /// The body as JSON and the argument columns to read from it through `json_to_record`.
        var bodyArguments: (json: String, columns: [(name: String, type: String)])?
        /// Read from the materialized `pgrst_call` instead of calling again.
        var materialized = false

        func readingMaterialized() -> RecordsFunctionCall {
            var copy = self
            copy.materialized = true
            return copy
        }
    }

    /// Checks the given arguments against the function (PGRST202 when they do not fit).
    func functionCall(_ function: SchemaCatalog.Function) throws(PostgRESTError) -> RecordsFunctionCall {
        var call = RecordsFunctionCall(function: function)
        let jsonTypes: Set<String> = ["json", "jsonb"]
        let onlyArgument = function.arguments.count == 1 ? function.arguments[0] : nil
        func notFound(_ given: [String]) -> PostgRESTError {
            .functionNotFound(schema: function.schema, name: function.name, arguments: given)
        }
        func checkRequired(_ given: [String]) throws(PostgRESTError) {
            for argument in function.arguments where !argument.hasDefault && !given.contains(argument.name) {
                throw notFound(given)
            }
        }
        if request.method == .post {
            let bytes = request.body ?? []
            let isEmpty = bytes.allSatisfy { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
            if let onlyArgument, jsonTypes.contains(onlyArgument.type),
               onlyArgument.name.isEmpty || preferences.singleObjectParameter {
                // One json argument: it takes the whole body (PostgREST's single unnamed json parameter).
                call.singleArgument = (isEmpty ? "{}" : try RecordsRequestBody.anyValue(in: bytes), onlyArgument.type)
                return call
            }
            var given: [String] = []
            var json = "{}"
            if !isEmpty {
                let body = try RecordsRequestBody.objects(in: bytes)
                guard !body.isArray, let object = body.objects.first else {
                    throw .invalidBody("The body of a function call must be a JSON object")
                }
                given = object.keys
                json = body.text
            }
            for name in given where name.isEmpty || !function.arguments.contains(where: { $0.name == name }) {
                throw notFound(given)
            }
            try checkRequired(given)
            if !given.isEmpty {
                let columns = function.arguments.filter { given.contains($0.name) }.map { (name: $0.name, type: $0.type) }
                call.bodyArguments = (json, columns)
            }
            return call
        }
        var given: [String] = []
        for argument in query.arguments {
            guard let declared = function.arguments.first(where: { $0.name == argument.name && !$0.name.isEmpty }) else {
                throw notFound(query.arguments.map(\.name))
            }
            if let index = call.queryArguments.firstIndex(where: { $0.name == argument.name }) {
                call.queryArguments[index].values.append(argument.value)
            } else {
                call.queryArguments.append((argument.name, [argument.value], declared.type))
                given.append(argument.name)
            }
        }
        try checkRequired(given)
        return call
    }

    /// `"schema"."fn"(args)` as a FROM item (prefixed by `pgrst_args, LATERAL` for body arguments),
    /// or `pgrst_call` when the result was materialized for a count.
    func emitCallSource(_ call: RecordsFunctionCall) {
        if call.materialized {
            writer.append("pgrst_call")
            return
        }
        if call.bodyArguments != nil { writer.append("pgrst_args, LATERAL ") }
        emitCallExpression(call)
    }

    /// `"schema"."fn"("a" => $1::integer, ...)`
    func emitCallExpression(_ call: RecordsFunctionCall) {
        writer.appendQualified(call.function.schema, call.function.name)
        writer.append("(")
        if let single = call.singleArgument {
            writer.appendBind(single.json, type: single.type)
        } else if let bodyArguments = call.bodyArguments {
            for (index, argument) in bodyArguments.columns.enumerated() {
                if index > 0 { writer.append(", ") }
                writer.appendIdentifier(argument.name)
                writer.append(" => pgrst_args.")
                writer.appendIdentifier(argument.name)
            }
        } else {
            for (index, argument) in call.queryArguments.enumerated() {
                if index > 0 { writer.append(", ") }
                writer.appendIdentifier(argument.name)
                writer.append(" => ")
                // Repeated `?arr=1&arr=2` builds an array argument.
                let value = argument.values.count > 1 && argument.type.hasSuffix("[]")
                    ? Self.arrayLiteral(argument.values) : argument.values[argument.values.count - 1]
                writer.appendBind(value, type: argument.type)
            }
        }
        writer.append(")")
    }
}
