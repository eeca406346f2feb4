import EventStore
import PostgresNIO
import Testing
import TestSupport

@Suite("Migrator")
struct MigratorTests {
    let logger = TestDatabase.logger

    @Test func migrationsApplyOnceAndRefuseEditedFiles() async throws {
        try await TestDatabase.with(migrate: false) { client, _ in
            let migrator = Migrator(logger: logger)
            let applied = try await migrator.migrate(client)
            #expect(applied.migrations == migrator.migrations.map(\.name))
            #expect(applied.migrations.first == "001_log.sql")
            #expect(applied.functions == BundledSchema.functions.map(\.path))
            #expect(try await migrator.migrate(client).isEmpty)

            var edited = BundledSchema.migrations
            edited[0].sql += "\n-- one more line\n"
            let error = await #expect(throws: MigrationError.self) {
                try await Migrator(migrations: edited, logger: logger).migrate(client)
            }
            #expect(error?.description.contains("001_log.sql was edited after it was applied") == true)
            #expect(error?.description.contains("new numbered file in schema/migrations/") == true)
        }
    }

    @Test func aDatabaseFromAnotherSchemaHistoryIsRefused() async throws {
        try await TestDatabase.with { client, _ in
            // As a database migrated by a build from before the baselines: same number, another file.
            try await client.query("UPDATE system.migrations SET name = '001_event_log.sql' WHERE version = 1")
            let error = await #expect(throws: MigrationError.self) { try await Migrator(logger: logger).migrate(client) }
            #expect(error?.description.contains("another schema history") == true)
        }
    }

    @Test func aFailingMigrationLeavesNothingBehind() async throws {
        try await TestDatabase.with(migrate: false) { client, _ in
            let bad = Migrator(migrations: BundledSchema.migrations + [Migration(version: 999, name: "999_bad.sql",
                                                                                sql: "CREATE TABLE system.half (x int); SELECT 1/0;")],
                               logger: logger)
            await #expect(throws: MigrationError.self) { try await bad.migrate(client) }
            let recorded = try await scalar(client, "SELECT count(*) FROM system.migrations WHERE version = 999", as: Int64.self)
            let tableGone = try await scalar(client, "SELECT to_regclass('system.half') IS NULL", as: Bool.self)
            #expect(recorded == 0)
            #expect(tableGone)
        }
    }

    /// A function file that defines `system.<name>()` answering `answer`, and counts its runs.
    func functionFile(_ name: String, answer: Int) -> FunctionFile {
        FunctionFile(path: "test/\(name).sql", sql: """
            CREATE OR REPLACE FUNCTION system.\(name)() RETURNS int LANGUAGE sql AS $$ SELECT \(answer) $$;
            INSERT INTO system.test_runs VALUES ('\(name)');
            """)
    }

    @Test func aChangedFunctionFileIsAppliedAgainAndAnUnchangedOneIsNot() async throws {
        try await TestDatabase.with { client, _ in
            try await client.query("CREATE TABLE system.test_runs (name text NOT NULL)")
            let first = Migrator(functions: BundledSchema.functions + [functionFile("a", answer: 1), functionFile("b", answer: 1)],
                                 logger: logger)
            #expect(try await first.migrate(client) == AppliedSchema(functions: ["test/a.sql", "test/b.sql"]))
            #expect(try await first.migrate(client).isEmpty)

            let second = Migrator(functions: BundledSchema.functions + [functionFile("a", answer: 1), functionFile("b", answer: 2)],
                                  logger: logger)
            #expect(try await second.migrate(client) == AppliedSchema(functions: ["test/b.sql"]))
            #expect(try await scalar(client, "SELECT system.b()", as: Int.self) == 2)
            #expect(try await scalar(client, "SELECT count(*) FILTER (WHERE name = 'a') FROM system.test_runs", as: Int64.self) == 1)
            #expect(try await scalar(client, "SELECT count(*) FILTER (WHERE name = 'b') FROM system.test_runs", as: Int64.self) == 2)
            let recorded = try await scalar(client, "SELECT checksum FROM system.schema_functions WHERE path = 'test/b.sql'", as: String.self)
            #expect(recorded == functionFile("b", answer: 2).checksum)
        }
    }

    @Test func functionFilesMayReferToEachOtherInAnyOrder() async throws {
        try await TestDatabase.with { client, _ in
            // `first` is applied before `second` (path order) and calls it: a SQL function's body is
            // checked against the catalog, so this needs the bodies checked only once all are in.
            let files = [
                FunctionFile(path: "a/first.sql", sql: "CREATE OR REPLACE FUNCTION system.first() RETURNS int LANGUAGE sql AS $$ SELECT system.second() + 1 $$;"),
                FunctionFile(path: "b/second.sql", sql: "CREATE OR REPLACE FUNCTION system.second() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;"),
            ]
            try await Migrator(functions: BundledSchema.functions + files, logger: logger).migrate(client)
            #expect(try await scalar(client, "SELECT system.first()", as: Int.self) == 2)
        }
    }

    @Test func aFunctionThatDoesNotCompileIsRefusedWithNothingApplied() async throws {
        try await TestDatabase.with { client, _ in
            let files = [
                FunctionFile(path: "test/bad.sql", sql: """
                    CREATE OR REPLACE FUNCTION system.bad() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1 END $$;
                    """),
                FunctionFile(path: "test/good.sql", sql: "CREATE OR REPLACE FUNCTION system.good() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;"),
            ]
            let error = await #expect(throws: MigrationError.self) {
                try await Migrator(functions: BundledSchema.functions + files, logger: logger).migrate(client)
            }
            #expect(error?.description.contains("does not compile") == true)
            let goodGone = try await scalar(client, "SELECT to_regprocedure('system.good()') IS NULL", as: Bool.self)
            let recorded = try await scalar(client, "SELECT count(*) FROM system.schema_functions WHERE path LIKE 'test/%'", as: Int64.self)
            #expect(goodGone)
            #expect(recorded == 0)
        }
    }
}
