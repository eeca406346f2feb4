// Writes: INSERT (with upsert), PUT, UPDATE and DELETE with their RETURNING.

extension RecordsStatement {
    // MARK: - Writes

    /// `return=` for a write: minimal unless asked otherwise, as in PostgREST.
    mutating func applyReturnPreference() -> RecordsPreferences.Return {
        let preference = preferences.returnPreference ?? .minimal
        if let given = preferences.returnPreference { preferenceApplied.append("return=" + given.rawValue) }
        returnMinimal = preference != .representation
        return preference
    }

    /// `RETURNING "t0".*`, the primary key (headers-only, for Location) or `1` (minimal).
    func emitReturning(_ preference: RecordsPreferences.Return, table: SchemaCatalog.Table) {
        switch preference {
        case .representation:
            writer.append(" RETURNING \"t0\".*")
        case .headersOnly where !table.primaryKey.isEmpty:
            writer.append(" RETURNING ")
            for (index, key) in table.primaryKey.enumerated() {
                if index > 0 { writer.append(", ") }
                writer.append("\"t0\".")
                writer.appendIdentifier(key)
            }
        default:
            // No columns: RLS SELECT policies do not apply to rows the caller cannot read back.
            writer.append(" RETURNING 1")
        }
    }

    /// The final SELECT after a write CTE named `pgrst_source`.
    mutating func finishWrite(_ preference: RecordsPreferences.Return, table: SchemaCatalog.Table) throws(PostgRESTError) {
        if preference == .representation {
            // Embeddings and renames apply to the returned rows; root filters were applied by the write.
            let root = try plan(table, items: query.select, path: [], includeConditions: false)
            try checkScopes()
            writer.append(", pgrst_result AS (")
            _ = try emitRootSelect(root, source: .written, limit: nil, offset: 0, withCount: false)
            writer.append(" SELECT count(*) AS page_total, ")
            if countRequested != nil { writer.append("(SELECT count(*) FROM pgrst_source)") } else { writer.append("NULL::bigint") }
            writer.append(" AS total, coalesce(json_agg(_pgrst_t), '[]')::text AS body FROM pgrst_result AS _pgrst_t")
            return
        }
        try checkScopes()
        writer.append(" SELECT count(*) AS page_total, ")
        writer.append(countRequested != nil ? "count(*)" : "NULL::bigint")
        if preference == .headersOnly, !table.primaryKey.isEmpty {
            writer.append(" AS total, coalesce(json_agg(_pgrst_t), '[]')::text AS body FROM pgrst_source AS _pgrst_t")
        } else {
            writer.append(" AS total, NULL::text AS body FROM pgrst_source")
        }
    }

    /// Checks that `name` is a column of `table` (PGRST204 otherwise).
    static func requireColumn(_ name: String, in table: SchemaCatalog.Table) throws(PostgRESTError) {
        guard table.column(named: name) != nil else { throw .columnNotFound(name, table: table.name) }
    }

    /// Parses and checks the body of an insert/upsert; returns its objects and the columns to write.
    func insertColumns(_ table: SchemaCatalog.Table) throws(PostgRESTError) -> (body: RecordsRequestBody, columns: [String]) {
        guard let bytes = request.body else { throw .invalidBody(RecordsRequestBody.invalidJSONMessage) }
        let body = try RecordsRequestBody.objects(in: bytes)
        var columns: [String] = []
        if let restricted = query.columns {
            for name in restricted {
                try Self.requireColumn(name, in: table)
                if !columns.contains(name) { columns.append(name) }
            }
        } else {
            // Like PostgREST: the objects of a bulk insert share one set of keys (unless absent keys
            // are asked to take their defaults).
            for object in body.objects {
                for key in object.keys where !columns.contains(key) {
                    try Self.requireColumn(key, in: table)
                    columns.append(key)
                }
            }
            if !preferences.missingDefault, let first = body.objects.first {
                let keys = Set(first.keys)
                if body.objects.dropFirst().contains(where: { Set($0.keys) != keys }) {
                    throw PostgRESTError(status: 400, code: "PGRST102", message: "All object keys must match", details: nil, hint: nil)
                }
            }
        }
        return (body, columns)
    }

    /// POST on a table: insert or upsert one object or an array.
    mutating func buildInsert(_ table: SchemaCatalog.Table) throws(PostgRESTError) {
        let (body, columns) = try insertColumns(table)
        let preference = applyReturnPreference()
        applyCountPreference()
        var conflict: (target: [String], merge: Bool)?
        if let resolution = preferences.resolution {
            let target = query.onConflict ?? table.primaryKey
            for name in target where table.column(named: name) == nil { throw .undefinedColumn(name, table: table.name) }
            if !target.isEmpty {
                conflict = (target, resolution == "merge-duplicates")
                preferenceApplied.append("resolution=" + resolution)
            }
        } else if let target = query.onConflict {
            // `on_conflict` alone: PostgREST still upserts, merging.
            for name in target where table.column(named: name) == nil { throw .undefinedColumn(name, table: table.name) }
            conflict = (target, true)
        }
        if preferences.missingGiven { preferenceApplied.append(preferences.missingDefault ? "missing=default" : "missing=null") }

        // With missing=default, rows with different keys are inserted by separate INSERTs so that
        // absent keys take the column default; otherwise absent keys are NULL (json_populate_recordset).
        var groups: [(columns: [String], objects: [Int])] = []
        if preferences.missingDefault {
            for (index, object) in body.objects.enumerated() {
                let present = columns.filter { object.keys.contains($0) }
                if let existing = groups.firstIndex(where: { $0.columns == present }) {
                    groups[existing].objects.append(index)
                } else {
                    groups.append((present, [index]))
                }
            }
        }
        if groups.count <= 1 {
            let groupColumns = groups.first?.columns ?? columns
            let json = body.isArray ? body.text : "[" + body.text + "]"
            writer.append("WITH pgrst_source AS (")
            emitInsert(table, columns: groupColumns, json: json, conflict: conflict, preference: preference)
            writer.append(")")
        } else {
            writer.append("WITH ")
            let bytes = request.body ?? []
            for (number, group) in groups.enumerated() {
                var json: [UInt8] = [UInt8(ascii: "[")]
                for (position, index) in group.objects.enumerated() {
                    if position > 0 { json.append(UInt8(ascii: ",")) }
                    json.append(contentsOf: bytes[body.objects[index].range])
                }
                json.append(UInt8(ascii: "]"))
                if number > 0 { writer.append(", ") }
                writer.append("pgrst_insert_")
                writer.appendNumber(number + 1)
                writer.append(" AS (")
                emitInsert(table, columns: group.columns, json: String(decoding: json, as: UTF8.self), conflict: conflict, preference: preference)
                writer.append(")")
            }
            writer.append(", pgrst_source AS (")
            for number in groups.indices {
                if number > 0 { writer.append(" UNION ALL ") }
                writer.append("SELECT * FROM pgrst_insert_")
                writer.appendNumber(number + 1)
            }
            writer.append(")")
        }
        try finishWrite(preference, table: table)
    }

    /// `INSERT INTO ... SELECT ... FROM json_populate_recordset(...) [ON CONFLICT ...] RETURNING ...`
    func emitInsert(_ table: SchemaCatalog.Table, columns: [String], json: String,
                             conflict: (target: [String], merge: Bool)?, preference: RecordsPreferences.Return) {
        writer.append("INSERT INTO ")
        writer.appendQualified(table.schema, table.name)
        writer.append(" AS \"t0\"")
        if !columns.isEmpty {
            writer.append(" (")
            for (index, column) in columns.enumerated() {
                if index > 0 { writer.append(", ") }
                writer.appendIdentifier(column)
            }
            writer.append(")")
        }
        writer.append(" SELECT ")
        for (index, column) in columns.enumerated() {
            if index > 0 { writer.append(", ") }
            writer.append("pgrst_body.")
            writer.appendIdentifier(column)
        }
        writer.append(" FROM json_populate_recordset(NULL::")
        writer.appendQualified(table.schema, table.name)
        writer.append(", ")
        writer.appendBind(json, type: "json")
        writer.append(") AS pgrst_body")
        if let conflict {
            writer.append(" ON CONFLICT (")
            for (index, column) in conflict.target.enumerated() {
                if index > 0 { writer.append(", ") }
                writer.appendIdentifier(column)
            }
            if conflict.merge, !columns.isEmpty {
                writer.append(") DO UPDATE SET ")
                for (index, column) in columns.enumerated() {
                    if index > 0 { writer.append(", ") }
                    writer.appendIdentifier(column)
                    writer.append(" = EXCLUDED.")
                    writer.appendIdentifier(column)
                }
            } else {
                writer.append(") DO NOTHING")
            }
        }
        emitReturning(preference, table: table)
    }

    /// PUT: upsert one row identified by `pk=eq.value` filters that match the body.
    mutating func buildPut(_ table: SchemaCatalog.Table) throws(PostgRESTError) {
        if query.limit != nil || query.offset != nil { throw .putLimitNotAllowed }
        guard !table.primaryKey.isEmpty else { throw .invalidPutFilters }
        var keyValues: [String: String] = [:]
        for scoped in query.conditions where scoped.path.isEmpty {
            guard case .filter(let filter) = scoped.condition, !filter.negated, filter.field.jsonPath.isEmpty,
                  case .binary(.eq, let value) = filter.operation, table.primaryKey.contains(filter.field.name),
                  keyValues[filter.field.name] == nil else {
                throw .invalidPutFilters
            }
            keyValues[filter.field.name] = value
        }
        guard keyValues.count == table.primaryKey.count else { throw .invalidPutFilters }
        let (body, columns) = try insertColumns(table)
        guard !body.isArray, let object = body.objects.first else {
            throw .invalidBody("PUT requires a single JSON object")
        }
        let bytes = request.body ?? []
        for key in table.primaryKey {
            guard let position = object.keys.firstIndex(of: key),
                  Self.jsonScalarText(bytes, object.valueRanges[position]) == keyValues[key] else {
                throw .putMatchingPrimaryKey
            }
        }
        let preference = applyReturnPreference()
        applyCountPreference()
        writer.append("WITH pgrst_source AS (")
        emitInsert(table, columns: columns, json: "[" + body.text + "]", conflict: (table.primaryKey, true), preference: preference)
        writer.append(")")
        try finishWrite(preference, table: table)
    }

    /// The text of a JSON scalar (strings unescaped, numbers and booleans as written); nil for null and containers.
    static func jsonScalarText(_ bytes: [UInt8], _ range: Range<Int>) -> String? {
        guard let first = range.first.map({ bytes[$0] }) else { return nil }
        switch first {
        case UInt8(ascii: "\""):
            return bytes[(range.lowerBound + 1)..<(range.upperBound - 1)].withUnsafeBufferPointer { RecordsJSONScanner.unescape($0) }
        case UInt8(ascii: "{"), UInt8(ascii: "["), UInt8(ascii: "n"):
            return nil
        default:
            return String(decoding: bytes[range], as: UTF8.self)
        }
    }

    /// The WHERE clause of a write: root conditions, or a ctid match when limit/order restrict the rows.
    func emitWriteFilter(_ table: SchemaCatalog.Table) throws(PostgRESTError) {
        let node = RecordsReadNode(table: table, alias: 0, path: [])
        if query.limit != nil || (query.offset ?? 0) > 0 {
            guard !table.isView else {
                throw PostgRESTError(status: 400, code: PostgRESTError.Code.queryParameter,
                                     message: "limit/offset on a view cannot be applied to a write")
            }
            writer.append(" WHERE \"t0\".ctid = ANY(ARRAY(SELECT \"t0\".ctid FROM ")
            writer.appendQualified(table.schema, table.name)
            writer.append(" AS \"t0\"")
            try emitConditions(node, allowEmbeds: false)
            for term in query.order { if let relation = term.relation { throw .notEmbedded(relation) } }
            try emitOrder(node)
            emitRange(limit: query.limit, offset: query.offset)
            writer.append("))")
            return
        }
        try emitConditions(node, allowEmbeds: false)
    }

    /// ` WHERE a AND b ...` from the query's conditions scoped to `node`.
    func emitConditions(_ node: RecordsReadNode, allowEmbeds: Bool) throws(PostgRESTError) {
        guard node.appliesConditions else { return }
        let conditions = query.conditions
        var count = 0
        for index in conditions.indices where conditions[index].path == node.path { count += 1 }
        var written = 0
        for index in conditions.indices where conditions[index].path == node.path {
            writer.append(written == 0 ? " WHERE " : " AND ")
            written += 1
            try emitCondition(conditions[index].condition, node: node, allowEmbeds: allowEmbeds, parenthesized: count > 1)
        }
    }

    /// PATCH: update the filtered rows with the body's keys.
    mutating func buildUpdate(_ table: SchemaCatalog.Table) throws(PostgRESTError) {
        guard let bytes = request.body else { throw .invalidBody(RecordsRequestBody.invalidJSONMessage) }
        let body = try RecordsRequestBody.objects(in: bytes)
        guard !body.isArray, let object = body.objects.first else {
            throw .invalidBody("A PATCH body must be a single JSON object")
        }
        var columns: [String] = []
        if let restricted = query.columns {
            for name in restricted {
                try Self.requireColumn(name, in: table)
                if !columns.contains(name) { columns.append(name) }
            }
        } else {
            for key in object.keys {
                try Self.requireColumn(key, in: table)
                columns.append(key)
            }
        }
        let preference = applyReturnPreference()
        applyCountPreference()
        if preferences.missingGiven { preferenceApplied.append(preferences.missingDefault ? "missing=default" : "missing=null") }
        writer.append("WITH pgrst_source AS (")
        if columns.isEmpty {
            // Nothing to set: PostgREST answers without touching any row.
            writer.append("SELECT \"t0\".* FROM ")
            writer.appendQualified(table.schema, table.name)
            writer.append(" AS \"t0\" WHERE false")
        } else {
            writer.append("UPDATE ")
            writer.appendQualified(table.schema, table.name)
            writer.append(" AS \"t0\" SET ")
            for (index, column) in columns.enumerated() {
                if index > 0 { writer.append(", ") }
                writer.appendIdentifier(column)
                if preferences.missingDefault, !object.keys.contains(column) {
                    writer.append(" = DEFAULT")
                    continue
                }
                writer.append(" = pgrst_body.")
                writer.appendIdentifier(column)
            }
            writer.append(" FROM json_populate_record(NULL::")
            writer.appendQualified(table.schema, table.name)
            writer.append(", ")
            writer.appendBind(body.text, type: "json")
            writer.append(") AS pgrst_body")
            try emitWriteFilter(table)
            emitReturning(preference, table: table)
        }
        writer.append(")")
        try finishWrite(preference, table: table)
    }

    /// DELETE: remove the filtered rows.
    mutating func buildDelete(_ table: SchemaCatalog.Table) throws(PostgRESTError) {
        let preference = applyReturnPreference()
        applyCountPreference()
        writer.append("WITH pgrst_source AS (DELETE FROM ")
        writer.appendQualified(table.schema, table.name)
        writer.append(" AS \"t0\"")
        try emitWriteFilter(table)
        emitReturning(preference, table: table)
        writer.append(")")
        try finishWrite(preference, table: table)
    }
}
