import Crypto
import Foundation
import Logging
import PostgresNIO

/// A file of `schema/`.
public protocol SchemaFile: Sendable {
    /// The file's text, as stored.
    var sql: String { get }
}

extension SchemaFile {
    /// SHA-256 hex of the file's text, recorded when it is applied: it tells whether the file changed since.
    public var checksum: String { SHA256.hash(data: Data(sql.utf8)).hexString }
}

/// One numbered file of `schema/migrations/` (tables, indexes, grants, policies): applied once, in
/// order, and never edited afterwards.
public struct Migration: SchemaFile, Hashable {
    /// The leading number of the file name.
    public var version: Int
    /// The file name.
    public var name: String
    public var sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }
}

/// One file of `schema/functions/<area>/`: one function (`CREATE OR REPLACE`) with what needs it at
/// creation (its triggers, grants, policies), applied again whenever its text changes.
public struct FunctionFile: SchemaFile, Hashable {
    /// The path below `schema/functions/`, e.g. `log/append_events.sql`.
    public var path: String
    public var sql: String

    public init(path: String, sql: String) {
        self.path = path
        self.sql = sql
    }
}

/// The schema this binary carries: `schema/` at the repository root, compiled in at build time by
/// the EmbedSchema plugin, so the binary needs no files beside it wherever it runs from.
public enum BundledSchema {
    /// `schema/migrations/*.sql`, in order.
    public static let migrations: [Migration] = EmbeddedSchema.files.compactMap { file in
        guard file.path.hasPrefix("migrations/") else { return nil }
        let name = String(file.path.dropFirst("migrations/".count))
        // The plugin fails the build on a file without a version number.
        guard let version = Int(name.prefix { $0.isNumber }) else { return nil }
        return Migration(version: version, name: name, sql: file.text)
    }.sorted { $0.version < $1.version }

    /// `schema/functions/**/*.sql`, in path order.
    public static let functions: [FunctionFile] = EmbeddedSchema.files.compactMap { file in
        guard file.path.hasPrefix("functions/") else { return nil }
        return FunctionFile(path: String(file.path.dropFirst("functions/".count)), sql: file.text)
    }
}

/// What one run of the migrator applied.
public struct AppliedSchema: Sendable, Equatable {
    /// The migrations' file names, in the order applied.
    public var migrations: [String] = []
    /// The function files' paths (below `schema/functions/`), in the order applied.
    public var functions: [String] = []

    public init(migrations: [String] = [], functions: [String] = []) {
        self.migrations = migrations
        self.functions = functions
    }

    /// Whether the database was up to date.
    public var isEmpty: Bool { migrations.isEmpty && functions.isEmpty }
}

/// Why migrations could not run; the message is meant for the operator, as is.
public struct MigrationError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Brings a database up to this binary's schema. First the pending migrations, in order, each in its
/// own transaction, recorded in `system.migrations` with their checksums; it refuses to go on when an
/// applied one was edited. Then the function files whose text changed since they were last applied
/// (`system.schema_functions`), in path order, in one transaction: functions come after the tables
/// they use, and a function changes by editing its one file.
public struct Migrator: Sendable {

    public let migrations: [Migration]
    public let functions: [FunctionFile]
    let logger: Logger

    public init(migrations: [Migration] = BundledSchema.migrations, functions: [FunctionFile] = BundledSchema.functions,
                logger: Logger) {
        self.migrations = migrations.sorted { $0.version < $1.version }
        self.functions = functions.sorted { Array($0.path.utf8).lexicographicallyPrecedes(Array($1.path.utf8)) }
        self.logger = logger
    }

    /// Applies what is missing or changed.
    @discardableResult
    public func migrate(_ client: PostgresClient) async throws -> AppliedSchema {
        guard !migrations.isEmpty else {
            throw MigrationError(description: "this binary carries no migrations (schema/migrations/ was empty when it was built)")
        }
        return try await client.withConnection { connection in try await migrate(on: connection) }
    }

    /// Applies what is missing or changed over one connection.
    @discardableResult
    public func migrate(on connection: PostgresConnection) async throws -> AppliedSchema {
        try await connection.query("SELECT pg_advisory_lock(\(ClusterLock.migrations.key))", logger: logger)
        do {
            try await prepare(on: connection)
            let migrations = try await applyMigrations(on: connection)
            let functions = try await applyFunctions(on: connection)  // after: they use the migrations' tables
            let applied = AppliedSchema(migrations: migrations, functions: functions)
            try await connection.query("SELECT pg_advisory_unlock(\(ClusterLock.migrations.key))", logger: logger)
            return applied
        } catch {
            _ = try? await connection.query("SELECT pg_advisory_unlock(\(ClusterLock.migrations.key))", logger: logger)
            throw error
        }
    }

    /// The bookkeeping tables, and a way to run a file of many statements with the file as one
    /// bound parameter (the extended protocol takes one statement per query).
    private func prepare(on connection: PostgresConnection) async throws {
        try await connection.query("CREATE SCHEMA IF NOT EXISTS system", logger: logger)
        try await connection.query("""
            CREATE TABLE IF NOT EXISTS system.migrations (
                version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())
            """, logger: logger)
        try await connection.query("""
            CREATE TABLE IF NOT EXISTS system.schema_functions (
                path text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())
            """, logger: logger)
        try await connection.query("""
            CREATE OR REPLACE FUNCTION pg_temp.run_migration(sql text) RETURNS void LANGUAGE plpgsql AS $$
            BEGIN EXECUTE sql; END $$
            """, logger: logger)
    }

    private func applyMigrations(on connection: PostgresConnection) async throws -> [String] {
        var applied: [Int: (name: String, checksum: String)] = [:]
        for try await (version, name, checksum) in try await connection.query(
            "SELECT version, name, checksum FROM system.migrations", logger: logger
        ).decode((Int, String, String).self) {
            applied[version] = (name, checksum)
        }
        var done: [String] = []
        for migration in migrations {
            if let existing = applied[migration.version] {
                guard existing.name == migration.name else {
                    throw MigrationError(description: """
                        system.migrations has \(existing.name) as migration \(migration.version) where this binary has \
                        \(migration.name): the database was made from another schema history (from before \
                        schema/migrations/ was squashed into baselines, or another branch's); refusing to start. \
                        It cannot be brought to this schema in place: recreate it.
                        """)
                }
                guard existing.checksum == migration.checksum else {
                    throw MigrationError(description: """
                        migration \(migration.name) was edited after it was applied (checksum \(existing.checksum.prefix(12)) \
                        in system.migrations, \(migration.checksum.prefix(12)) in this binary); refusing to start. \
                        Put schema changes in a new numbered file in schema/migrations/ instead (a function changes \
                        in its own file in schema/functions/).
                        """)
                }
                continue
            }
            do {
                try await connection.inTransaction(logger: logger) {
                    try await connection.query("SELECT pg_temp.run_migration(\(migration.sql))", logger: logger)
                    try await connection.query("""
                        INSERT INTO system.migrations (version, name, checksum)
                        VALUES (\(migration.version), \(migration.name), \(migration.checksum))
                        """, logger: logger)
                }
            } catch {
                throw MigrationError(description: "migration \(migration.name) failed: \(String(reflecting: error))")
            }
            logger.info("applied migration \(migration.name)")
            done.append(migration.name)
        }
        return done
    }

    private func applyFunctions(on connection: PostgresConnection) async throws -> [String] {
        var recorded: [String: String] = [:]
        for try await (path, checksum) in try await connection.query(
            "SELECT path, checksum FROM system.schema_functions", logger: logger
        ).decode((String, String).self) {
            recorded[path] = checksum
        }
        let changed = functions.filter { recorded[$0.path] != $0.checksum }
        guard !changed.isEmpty else { return [] }
        try await connection.inTransaction(logger: logger) {
            // Bodies are not checked as each file goes in, so functions may refer to each other in any
            // order; they are checked once all are in.
            try await connection.query("SET LOCAL check_function_bodies = off", logger: logger)
            for file in changed {
                do {
                    try await connection.query("SELECT pg_temp.run_migration(\(file.sql))", logger: logger)
                } catch {
                    throw MigrationError(description: """
                        schema/functions/\(file.path) failed (nothing of this run was applied): \(String(reflecting: error))
                        """)
                }
                try await connection.query("""
                    INSERT INTO system.schema_functions (path, checksum) VALUES (\(file.path), \(file.checksum))
                    ON CONFLICT (path) DO UPDATE SET checksum = excluded.checksum, applied_at = now()
                    """, logger: logger)
            }
            try await connection.query("SET LOCAL check_function_bodies = on", logger: logger)
            do {
                try await connection.query(Self.checkFunctionBodies, logger: logger)
            } catch {
                throw MigrationError(description: """
                    schema/functions/: a function's body does not compile (nothing of this run was applied): \
                    \(String(reflecting: error))
                    """)
            }
        }
        for file in changed { logger.info("applied schema/functions/\(file.path)") }
        return changed.map(\.path)
    }

    /// Runs each language's validator over every function of the server's schemas, as CREATE FUNCTION
    /// does with `check_function_bodies` on.
    static let checkFunctionBodies: PostgresQuery = """
        DO $$
        DECLARE f record;
        BEGIN
            FOR f IN SELECT p.oid, vn.nspname AS validator_schema, v.proname AS validator
                       FROM pg_catalog.pg_proc p
                       JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                       JOIN pg_catalog.pg_language l ON l.oid = p.prolang
                       JOIN pg_catalog.pg_proc v ON v.oid = l.lanvalidator
                       JOIN pg_catalog.pg_namespace vn ON vn.oid = v.pronamespace
                      WHERE n.nspname IN ('system', 'auth', 'realtime', 'storage')
            LOOP
                EXECUTE pg_catalog.format('SELECT %I.%I($1)', f.validator_schema, f.validator) USING f.oid;
            END LOOP;
        END $$
        """
}
