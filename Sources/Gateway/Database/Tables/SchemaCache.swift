import EventStore
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The records API's view of the database catalog (tables, columns, keys, functions of the exposed
/// schemas), read once at start-up and again after every DDL: ours (tables API), a raw-SQL one, or
/// one made on another node (followed from the log).
public final class SchemaCache: Sendable {
    private let current = Mutex(SchemaCatalog(tables: [:], functions: [:], exposedSchemas: ["public"]))
    let client: PostgresClient?
    let exposedSchemas: [String]

    public init(client: PostgresClient? = nil, exposedSchemas: [String] = ["public"]) {
        self.client = client
        self.exposedSchemas = exposedSchemas
    }

    /// The catalog as last read.
    public var catalog: SchemaCatalog { current.withLock { $0 } }

    /// Reads the catalog again.
    public func reload() async throws {
        guard let client else { return }
        let catalog = try await Self.read(client, schemas: exposedSchemas)
        current.withLock { $0 = catalog }
    }

    static func read(_ client: PostgresClient, schemas: [String]) async throws -> SchemaCatalog {
        var tables: [String: SchemaCatalog.Table] = [:]
        for try await (schema, name, kind) in try await client.query("""
            SELECT n.nspname, c.relname, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = ANY(\(schemas)) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
            """).decode((String, String, String).self) {
            tables["\(schema).\(name)"] = SchemaCatalog.Table(schema: schema, name: name, columns: [], primaryKey: [], foreignKeys: [],
                                                              isView: kind == "v" || kind == "m")
        }
        for try await (schema, table, column, type, notNull, hasDefault) in try await client.query("""
            SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = ANY(\(schemas)) AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY n.nspname, c.relname, a.attnum
            """).decode((String, String, String, String, Bool, Bool).self) {
            tables["\(schema).\(table)"]?.columns.append(.init(name: column, type: type, nullable: !notNull, hasDefault: hasDefault))
        }
        for try await (schema, table, columns) in try await client.query("""
            SELECT n.nspname, c.relname,
                   array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum ORDER BY k.ord)
            FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE i.indisprimary AND n.nspname = ANY(\(schemas))
            """).decode((String, String, [String]).self) {
            tables["\(schema).\(table)"]?.primaryKey = columns
        }
        for try await (schema, table, name, columns, refSchema, refTable, refColumns) in try await client.query("""
            SELECT n.nspname, c.relname, f.conname,
                   array(SELECT a.attname FROM unnest(f.conkey) WITH ORDINALITY k(attnum, ord)
                         JOIN pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.attnum ORDER BY k.ord),
                   rn.nspname, rc.relname,
                   array(SELECT a.attname FROM unnest(f.confkey) WITH ORDINALITY k(attnum, ord)
                         JOIN pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = k.attnum ORDER BY k.ord)
            FROM pg_constraint f
            JOIN pg_class c ON c.oid = f.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_class rc ON rc.oid = f.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
            WHERE f.contype = 'f' AND n.nspname = ANY(\(schemas))
            """).decode((String, String, String, [String], String, String, [String]).self) {
            tables["\(schema).\(table)"]?.foreignKeys.append(.init(name: name, columns: columns, referencedSchema: refSchema,
                                                                   referencedTable: refTable, referencedColumns: refColumns))
        }
        var functions: [String: SchemaCatalog.Function] = [:]
        for try await (schema, name, argNames, argTypes, defaults, returnType, returnsSet, composite, volatile) in try await client.query("""
            SELECT n.nspname, p.proname,
                   -- IN (and INOUT/VARIADIC) argument names only: OUT columns of RETURNS TABLE are listed too
                   coalesce(array(SELECT a.n FROM unnest(p.proargnames, coalesce(p.proargmodes,
                                      array_fill('i'::"char", ARRAY[coalesce(cardinality(p.proargnames), 0)]))) AS a(n, m)
                                  WHERE a.m IN ('i', 'b', 'v')), '{}'),
                   array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) t),
                   p.pronargdefaults::int, pg_get_function_result(p.oid), p.proretset,
                   (SELECT t.typtype IN ('c') OR t.typrelid <> 0 FROM pg_type t WHERE t.oid = p.prorettype) OR p.prorettype = 'record'::regtype,
                   p.provolatile = 'v'
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = ANY(\(schemas)) AND p.prokind = 'f'
            """).decode((String, String, [String], [String], Int, String, Bool, Bool, Bool).self) {
            let count = argTypes.count
            let arguments = (0..<count).map { i in
                (name: i < argNames.count ? argNames[i] : "", type: argTypes[i], hasDefault: i >= count - defaults)
            }
            functions["\(schema).\(name)"] = SchemaCatalog.Function(schema: schema, name: name, arguments: arguments, returnType: returnType,
                                                                    returnsSet: returnsSet, returnsTable: composite, isVolatile: volatile)
        }
        return SchemaCatalog(tables: tables, functions: functions, exposedSchemas: schemas)
    }
}
