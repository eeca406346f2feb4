import Crypto
import Foundation
import Logging
import PostgresNIO

/// One numbered SQL file from `schema/`.
public struct Migration: Sendable, Hashable {
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

    /// SHA-256 hex of the file's text: an applied migration must never change.
    public var checksum: String { SHA256.hash(data: Data(sql.utf8)).hexString }
}

/// Why migrations could not run; the message is meant for the operator, as is.
public struct MigrationError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Applies `schema/*.sql` in order, each in its own transaction, recording them in
/// `system.migrations` with their checksums. Refuses to go on when an applied file was edited.
public struct Migrator: Sendable {
    public let migrations: [Migration]
    let logger: Logger

    public init(migrations: [Migration] = Migrator.bundled, logger: Logger) {
        self.migrations = migrations.sorted { $0.version < $1.version }
        self.logger = logger
    }

    /// The migrations shipped in this binary (the `schema/` folder, copied as a resource).
    public static var bundled: [Migration] {
        guard let folder = Bundle.module.url(forResource: "Migrations", withExtension: nil),
              let files = try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
        else { return [] }
        return files.compactMap { url -> Migration? in
            let name = url.lastPathComponent
            guard name.hasSuffix(".sql"), let version = Int(name.prefix { $0.isNumber }),
                  let sql = try? String(contentsOf: url, encoding: .utf8) else { return nil }
            return Migration(version: version, name: name, sql: sql)
        }
    }

    /// Applies what is missing; returns the names applied now.
    @discardableResult
    public func migrate(_ client: PostgresClient) async throws -> [String] {
        guard !migrations.isEmpty else { throw MigrationError(description: "no migrations found in the binary's resources") }
        return try await client.withConnection { connection in try await migrate(on: connection) }
    }

    /// Applies what is missing over one connection.
    @discardableResult
    public func migrate(on connection: PostgresConnection) async throws -> [String] {
        do {
            // One migrator at a time across every process on this database.
            try await connection.query("SELECT pg_advisory_lock(7130000)", logger: logger)
            do {
                let done = try await apply(on: connection)
                try await connection.query("SELECT pg_advisory_unlock(7130000)", logger: logger)
                return done
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(7130000)", logger: logger)
                throw error
            }
        }
    }

    private func apply(on connection: PostgresConnection) async throws -> [String] {
        do {
            try await connection.query("""
                CREATE SCHEMA IF NOT EXISTS system;
                """, logger: logger)
            try await connection.query("""
                CREATE TABLE IF NOT EXISTS system.migrations (
                    version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
            try await connection.query("""
                CREATE OR REPLACE FUNCTION pg_temp.run_migration(sql text) RETURNS void LANGUAGE plpgsql AS $$
                BEGIN EXECUTE sql; END $$
                """, logger: logger)
            var applied: [Int: (name: String, checksum: String)] = [:]
            for try await (version, name, checksum) in try await connection.query(
                "SELECT version, name, checksum FROM system.migrations", logger: logger
            ).decode((Int, String, String).self) {
                applied[version] = (name, checksum)
            }
            var done: [String] = []
            for migration in migrations {
                if let existing = applied[migration.version] {
                    guard existing.checksum == migration.checksum else {
                        throw MigrationError(description: """
                            migration \(migration.name) was edited after it was applied (checksum \(existing.checksum.prefix(12)) \
                            in system.migrations, \(migration.checksum.prefix(12)) in this binary); refusing to start. \
                            Put schema changes in a new numbered file in schema/ instead.
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
    }
}
