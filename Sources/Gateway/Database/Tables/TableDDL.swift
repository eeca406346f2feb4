import Foundation

/// A column as the tables API describes it (InsForge's field names).
public struct ColumnDefinition: Codable, Sendable, Equatable {
    public var columnName: String
    /// `string|date|datetime|integer|float|boolean|uuid|json` or a PostgreSQL type name.
    public var type: String
    public var defaultValue: String?
    public var isPrimaryKey: Bool?
    public var isNullable: Bool?
    public var isUnique: Bool?
    public var foreignKey: ForeignKeyTarget?
}

/// Where a foreign key points.
public struct ForeignKeyTarget: Codable, Sendable, Equatable {
    public var referenceTable: String
    public var referenceColumn: String
    /// `CASCADE`, `SET NULL`, `SET DEFAULT`, `RESTRICT`, `NO ACTION`.
    public var onDelete: String?
    public var onUpdate: String?
}

/// A foreign key listed beside the columns: `{columnName, referenceTable, referenceColumn, onDelete?, onUpdate?}`.
public struct ForeignKeyDefinition: Codable, Sendable, Equatable {
    public var columnName: String
    public var referenceTable: String
    public var referenceColumn: String
    public var onDelete: String?
    public var onUpdate: String?
}

/// Pure DDL generation for the tables API: every identifier validated and quoted, every type
/// resolved to a known PostgreSQL type, every default either a known expression or a quoted literal.
public enum TableDDL {
    /// Columns every API-made table gets.
    public static let automaticColumns = ["id", "created_at", "updated_at"]

    /// `nil` when `name` may name a table or column: `[A-Za-z_][A-Za-z0-9_]*`, at most 63 bytes, not `pg_*`.
    public static func identifierProblem(_ name: String, what: String) -> String? {
        guard let first = name.unicodeScalars.first, name.utf8.count <= 63,
              first == "_" || ("a"..."z").contains(first) || ("A"..."Z").contains(first),
              name.unicodeScalars.allSatisfy({ $0 == "_" || ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) })
        else { return "\(what) must match [A-Za-z_][A-Za-z0-9_]* (at most 63 characters)" }
        if name.lowercased().hasPrefix("pg_") { return "\(what) must not start with pg_" }
        return nil
    }

    /// `"name"`.
    public static func quote(_ name: String) -> String { "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

    /// The PostgreSQL type for an API type name; nil for names to resolve in the database (`to_regtype`).
    public static func builtinType(_ apiType: String) -> String? {
        switch apiType.lowercased() {
        case "string", "text": "text"
        case "date": "date"
        case "datetime", "timestamp", "timestamptz": "timestamptz"
        case "integer", "int", "int4": "integer"
        case "bigint", "int8": "bigint"
        case "float", "double", "float8": "double precision"
        case "boolean", "bool": "boolean"
        case "uuid": "uuid"
        case "json", "jsonb": "jsonb"
        default: nil
        }
    }

    /// Whether `type` may be passed to `to_regtype` (a type name, possibly with modifiers and `[]`).
    public static func isPlausibleTypeName(_ type: String) -> Bool {
        (1...64).contains(type.utf8.count) && type.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                || " _(),[].".unicodeScalars.contains($0)
        }
    }

    static let referentialActions = ["CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION"]

    /// A `DEFAULT` clause body: known functions and constants as they are, anything else as a string literal cast to `type`.
    public static func defaultExpression(_ value: String, type: String) -> String {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        switch trimmed.lowercased() {
        case "now()", "current_timestamp", "current_date", "gen_random_uuid()", "auth.uid()", "auth.email()", "true", "false", "null":
            return trimmed.lowercased()
        default:
            if Double(trimmed) != nil, trimmed.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) || ".-+eE".unicodeScalars.contains($0) }) {
                return "\(literal(trimmed))::\(type)"
            }
            return "\(literal(trimmed))::\(type)"
        }
    }

    /// A SQL string literal.
    public static func literal(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "''") + "'" }

    /// `ON DELETE x ON UPDATE y` from validated actions.
    static func actions(onDelete: String?, onUpdate: String?) throws -> String {
        var out = ""
        for (clause, value) in [("ON DELETE", onDelete), ("ON UPDATE", onUpdate)] {
            guard let value else { continue }
            let action = value.uppercased().replacingOccurrences(of: "_", with: " ")
            guard referentialActions.contains(action) else {
                throw DomainError.invalidInput("\(clause.lowercased()) must be one of \(referentialActions.joined(separator: ", "))")
            }
            out += " \(clause) \(action)"
        }
        return out
    }

    /// One column's definition; `resolvedType` is the checked PostgreSQL type.
    static func columnSQL(_ column: ColumnDefinition, resolvedType: String, inlinePrimaryKey: Bool) throws -> String {
        var sql = "\(quote(column.columnName)) \(resolvedType)"
        if column.isNullable == false { sql += " NOT NULL" }
        if column.isUnique == true { sql += " UNIQUE" }
        if inlinePrimaryKey, column.isPrimaryKey == true { sql += " PRIMARY KEY" }
        if let value = column.defaultValue { sql += " DEFAULT \(defaultExpression(value, type: resolvedType))" }
        return sql
    }

    /// The foreign-key constraint clause for `column`.
    static func foreignKeySQL(column: String, target: ForeignKeyTarget) throws -> String {
        if let problem = identifierProblem(target.referenceTable, what: "referenceTable") { throw DomainError.invalidInput(problem) }
        if let problem = identifierProblem(target.referenceColumn, what: "referenceColumn") { throw DomainError.invalidInput(problem) }
        return "FOREIGN KEY (\(quote(column))) REFERENCES public.\(quote(target.referenceTable)) (\(quote(target.referenceColumn)))"
            + (try actions(onDelete: target.onDelete, onUpdate: target.onUpdate))
    }
}
