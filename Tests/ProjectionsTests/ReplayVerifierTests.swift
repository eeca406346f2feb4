import EventStore
import Foundation
import PostgresNIO
import Projections
import Testing
import TestSupport

@Suite("Replay --verify")
struct ReplayVerifierTests {
    /// Applies the async projections by hand up to the head and records their checkpoints.
    static func catchUp(_ store: EventStore) async throws {
        try await store.client.withConnection { connection in
            try await connection.query("BEGIN", logger: TestDatabase.logger)
            let events = try await EventStore.readAll(on: connection, after: 0, limit: 100_000, filter: .all)
            for projection in ProjectionCatalog.async {
                try await projection.apply(events, in: ProjectionContext(connection: connection, logger: TestDatabase.logger))
                try await connection.query("""
                    INSERT INTO system.checkpoints (projection, position) VALUES (\(projection.name), \(events.last?.position ?? 0))
                    ON CONFLICT (projection) DO UPDATE SET position = excluded.position
                    """, logger: TestDatabase.logger)
            }
            try await connection.query("COMMIT", logger: TestDatabase.logger)
        }
    }

    static func issue(_ store: EventStore, _ kind: ApiKeyKind, fingerprint: String, grace: Date? = nil) async throws {
        let event = ApiKeyIssued(kind: kind, keyId: UUID(), ciphertext: "c-\(fingerprint)", fingerprint: fingerprint,
                                 reason: "test", previousValidUntil: grace)
        try await store.append([try EventData(event)], to: kind.streamId)
    }

    static var verifier: ReplayVerifier { ReplayVerifier(projections: ProjectionCatalog.all, batchSize: 7, logger: TestDatabase.logger) }
    static var inline: Set<String> { Set(ProjectionCatalog.inline.map(\.name)) }

    @Test func replayMatchesTheLiveReadModels() async throws {
        try await withEventStore(inline: ProjectionCatalog.inline) { store, _ in
            try await Self.issue(store, .admin, fingerprint: "a1")
            try await Self.issue(store, .anon, fingerprint: "n1")
            try await Self.issue(store, .admin, fingerprint: "a2", grace: Date().addingTimeInterval(3600))
            for i in 0..<40 { try await store.append([EventData(type: "Other\(i % 3)", data: "{}")], to: "misc-\(i % 5)") }
            try await Self.catchUp(store)
            // Events after the async checkpoint do not count against it.
            try await store.append([EventData(type: "Later", data: "{}")], to: "misc-9")

            let report = try await Self.verifier.verify(inline: Self.inline, client: store.client)
            #expect(report.matches)
            #expect(report.head == 44)
            let expected = ProjectionCatalog.all.flatMap(\.tables).map { "\($0.schema).\($0.name)" }.sorted()
            #expect(report.tables.map(\.table).sorted() == expected)
            #expect(expected.contains("system.api_keys") && expected.contains("auth.users"))
            let keys = try #require(report.tables.first { $0.table == "system.api_keys" })
            #expect(keys.liveRows == 2)
            let previous = try await scalar(store.client, "SELECT previous_fingerprint FROM system.api_keys WHERE kind = 'admin'",
                                            as: String.self)
            #expect(previous == "a1")
            // The scratch schema went away with the rollback.
            #expect(try await scalar(store.client, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'replay_%'", as: Int64.self) == 0)
        }
    }

    @Test func replayDetectsATamperedReadModel() async throws {
        try await withEventStore(inline: ProjectionCatalog.inline) { store, _ in
            try await Self.issue(store, .admin, fingerprint: "a1")
            for i in 0..<10 { try await store.append([EventData(type: "Other", data: "{}")], to: "misc-\(i)") }
            try await Self.catchUp(store)
            #expect(try await Self.verifier.verify(inline: Self.inline, client: store.client).matches)

            try await store.client.query("UPDATE system.event_stats SET count = count + 1 WHERE type = 'Other'")
            let stats = try await Self.verifier.verify(inline: Self.inline, client: store.client)
            #expect(!stats.matches)
            #expect(stats.tables.filter { !$0.matches }.map(\.table) == ["system.event_stats"])

            try await store.client.query("UPDATE system.event_stats SET count = count - 1 WHERE type = 'Other'")
            try await store.client.query("UPDATE system.api_keys SET fingerprint = 'forged'")
            let keys = try await Self.verifier.verify(inline: Self.inline, client: store.client)
            #expect(keys.tables.filter { !$0.matches }.map(\.table) == ["system.api_keys"])
        }
    }
}
