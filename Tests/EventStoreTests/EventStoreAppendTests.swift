import EventStore
import Foundation
import PostgresNIO
import Testing
import TestSupport

@Suite("Appending to the log")
struct EventStoreAppendTests {
    static func event(_ type: String = "ThingHappened", _ n: Int = 0, id: UUID = UUID()) -> EventData {
        EventData(eventId: id, type: type, data: "{\"n\":\(n)}")
    }

    @Test func appendsAndReadsAStreamInVersionOrder() async throws {
        try await withEventStore { store, _ in
            let first = try await store.append([Self.event(), Self.event()], to: "order-1", expected: .noStream)
            #expect(first.positions == [1, 2])
            #expect(first.nextExpectedVersion == 2)
            let second = try await store.append([Self.event()], to: "order-1", expected: .exact(2))
            #expect(second.positions == [3])
            let events = try await store.readStream("order-1")
            #expect(events.map(\.streamVersion) == [1, 2, 3])
            #expect(events.map(\.position) == [1, 2, 3])
            #expect(events.allSatisfy { $0.category == "order" && $0.type == "ThingHappened" })
            #expect(try await store.headPosition() == 3)
        }
    }

    @Test func wrongExpectedVersionIsAConflictAndWritesNothing() async throws {
        try await withEventStore { store, _ in
            try await store.append([Self.event()], to: "order-1", expected: .noStream)
            for expected: ExpectedVersion in [.noStream, .exact(0), .exact(5)] {
                let error = await #expect(throws: EventStoreError.self) {
                    try await store.append([Self.event()], to: "order-1", expected: expected)
                }
                #expect(error?.code == .wrongExpectedVersion)
                #expect(error?.currentVersion == 1)
            }
            let missing = await #expect(throws: EventStoreError.self) {
                try await store.append([Self.event()], to: "order-2", expected: .streamExists)
            }
            #expect(missing?.code == .wrongExpectedVersion)
            try await store.append([Self.event()], to: "order-1", expected: .streamExists)
            try await store.append([Self.event()], to: "order-1", expected: .exact(2))
            #expect(try await store.headPosition() == 3)
        }
    }

    @Test func retriedAppendIsIdempotent() async throws {
        try await withEventStore { store, _ in
            let ids = [UUID(), UUID()]
            let events = ids.map { Self.event(id: $0) }
            let first = try await store.append(events, to: "order-1", expected: .noStream)
            let retry = try await store.append(events, to: "order-1", expected: .noStream)
            #expect(!first.wasDuplicate)
            #expect(retry.wasDuplicate)
            #expect(retry.positions == first.positions)
            #expect(retry.nextExpectedVersion == 2)
            #expect(try await store.headPosition() == 2)
            // The same id in another stream, or only some of the ids again, is a conflict.
            let reused = await #expect(throws: EventStoreError.self) {
                try await store.append([Self.event(id: ids[0])], to: "order-2")
            }
            #expect(reused?.code == .eventIdReused)
            let partial = await #expect(throws: EventStoreError.self) {
                try await store.append([Self.event(id: ids[0]), Self.event()], to: "order-1")
            }
            #expect(partial?.code == .eventIdReused)
        }
    }

    @Test func invalidAppendsAreRefusedBeforeTheLog() async throws {
        try await withEventStore { store, _ in
            for (events, stream) in [([Self.event()], "nodash"), ([Self.event()], "Order-1"), ([Self.event()], "order-"),
                                     ([Self.event("lowercase")], "order-1"), ([], "order-1")] {
                let error = await #expect(throws: EventStoreError.self) { try await store.append(events, to: stream) }
                #expect(error?.code == .invalidEvent)
            }
            let id = UUID()
            await #expect(throws: EventStoreError.self) {
                try await store.append([Self.event(id: id), Self.event(id: id)], to: "order-1")
            }
            let head = try await store.headPosition()
            #expect(head == 0)
        }
    }

    @Test func concurrentAppendsKeepDenseVersionsAndPositions() async throws {
        try await withEventStore { store, _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<32 {
                    group.addTask {
                        for i in 0..<20 { try await store.append([Self.event("Counted", i)], to: "counter-\(writer % 4)") }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await store.headPosition() == 640)
            let all = try await store.readAll(after: 0, limit: 1000)
            #expect(all.map(\.position) == Array(1...640))
            for s in 0..<4 {
                let stream = try await store.readStream("counter-\(s)")
                #expect(stream.map(\.streamVersion) == Array(1...160))
                #expect(stream.map(\.position) == stream.map(\.position).sorted())
            }
        }
    }

    @Test func optimisticConcurrencyLetsExactlyOneWriterWin() async throws {
        try await withEventStore { store, _ in
            let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<20 {
                    group.addTask {
                        do {
                            try await store.append([Self.event()], to: "seat-1", expected: .exact(0))
                            return true
                        } catch let error as EventStoreError where error.code == .wrongExpectedVersion {
                            return false
                        }
                    }
                }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 }.count == 1)
            #expect(try await store.readStream("seat-1").count == 1)
        }
    }

    @Test func aFailingCommandDoesNotFailItsNeighbours() async throws {
        try await withEventStore { store, _ in
            // Bad JSON reaches the database (the store does not parse payloads): its batch fails,
            // and is retried command by command so only the bad one fails.
            let results = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
                for i in 0..<40 {
                    group.addTask {
                        let data = i == 17 ? "{not json" : "{\"i\":\(i)}"
                        do {
                            try await store.append([EventData(type: "Mixed", data: data)], to: "mixed-\(i)")
                            return (i, true)
                        } catch {
                            return (i, false)
                        }
                    }
                }
                return try await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
            }
            #expect(results[17] == false)
            #expect(results.filter { $0.value }.count == 39)
            #expect(try await store.headPosition() == 39)
        }
    }

    @Test func cachedVersionsAreNeverTrustedAcrossAnotherWriter() async throws {
        try await withEventStore { store, _ in
            // The writer now caches version 1 of cache-1 at head 1.
            try await store.append([Self.event()], to: "cache-1", expected: .noStream)
            // Another writer (SQL, a trigger, another node) appends to the same stream.
            _ = try await scalar(store.client,
                "SELECT system.write_event(gen_random_uuid(), 'cache-1', 'External', '{}'::jsonb)", as: Int64.self)
            // The head moved, so the cache is not used: version 2 is seen, not 1.
            let next = try await store.append([Self.event()], to: "cache-1", expected: .exact(2))
            #expect(next.nextExpectedVersion == 3)
            let stale = await #expect(throws: EventStoreError.self) {
                try await store.append([Self.event()], to: "cache-1", expected: .exact(1))
            }
            #expect(stale?.currentVersion == 3)
            // Concurrent appends from many writers with the cache warm keep versions dense. A stream is in
            // one batch in flight at most, so no batch's cached version goes stale under it (a second
            // batch could take the log lock first): none is written twice.
            let retriesBefore = store.appendStatistics.staleRetries
            for round in 0..<4 {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<50 { group.addTask { try await store.append([Self.event()], to: "cache-1") } }
                    try await group.waitForAll()
                }
                let versions = try await store.readStream("cache-1", limit: 10_000).map(\.streamVersion)
                #expect(versions == Array(1...(53 + 50 * Int64(round))))
            }
            #expect(store.appendStatistics.staleRetries == retriesBefore)
        }
    }

    @Test func cachedVersionsSurviveAppendsToOtherStreams() async throws {
        try await withEventStore { store, _ in
            try await store.append([Self.event()], to: "kept-1", expected: .noStream)
            try await store.append([Self.event()], to: "moved-1", expected: .noStream)
            // Others append after the cache was filled: to an unrelated stream and to moved-1.
            for stream in ["other-1", "other-2", "moved-1"] {
                _ = try await scalar(store.client,
                    "SELECT system.write_event(gen_random_uuid(), \(stream), 'External', '{}'::jsonb)", as: Int64.self)
            }
            let before = store.appendStatistics.knownVersions, retriesBefore = store.appendStatistics.staleRetries
            // kept-1 was not touched since: its cached version is used. moved-1 was: its cached version is
            // refused by the log and the batch is written again with it looked up, so an append that
            // accepts any version still gets the next version, not a duplicate.
            let kept = try await store.append([Self.event()], to: "kept-1")
            #expect(kept.nextExpectedVersion == 2)
            #expect(store.appendStatistics.knownVersions == before + 1)
            #expect(store.appendStatistics.staleRetries == retriesBefore)
            let moved = try await store.append([Self.event()], to: "moved-1")
            #expect(moved.nextExpectedVersion == 3)
            #expect(store.appendStatistics.knownVersions == before + 1)
            #expect(store.appendStatistics.staleRetries == retriesBefore + 1)
            #expect(try await store.readStream("moved-1").map(\.streamVersion) == [1, 2, 3])
            #expect(try await store.readAll(after: 0, limit: 100).map(\.position) == Array(1...7))
        }
    }

    /// Runs `batch` (one text column) while another session holds the log lock with an append to
    /// `stream`; that append commits once the batch waits for the lock (in `function`). Only this test's
    /// database counts: tests run in parallel, each in a database of its own on one cluster.
    static func race(_ batch: PostgresQuery, waitingIn function: String, against stream: String, store: EventStore,
                     db: TestDatabase) async throws -> String {
        let held = try await db.connect()
        try await held.query("BEGIN", logger: TestDatabase.logger)
        try await held.query("SELECT system.write_event(gen_random_uuid(), \(stream), 'External', '{}'::jsonb)", logger: TestDatabase.logger)
        let result = Task { try await scalar(store.client, batch, as: String.self) }
        let waiting = try await eventually {
            try await scalar(store.client, """
                SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%' || \(function) || '%'
                  AND pid <> pg_backend_pid() AND datname = current_database()
                """, as: Int64.self) == 1
        }
        #expect(waiting)
        try await held.query("COMMIT", logger: TestDatabase.logger)
        try await held.close().get()
        return try await result.value
    }

    /// `append_known` looks up, under the log lock, the versions the caller does not know: a stream
    /// appended to while the batch waits for the lock is counted with that append.
    @Test func anUnknownVersionIsLookedUpUnderTheLock() async throws {
        try await withEventStore { store, db in
            _ = try await store.append([Self.event()], to: "race-1", expected: .noStream)
            let result = try await Self.race("""
                SELECT (s.versions[1], s.known, s.start_head)::text FROM system.append_known(
                    ARRAY['race-1'], ARRAY[1], ARRAY[1], ARRAY[gen_random_uuid()], ARRAY['Raced'],
                    ARRAY['{}'::jsonb], ARRAY['{}'::jsonb], ARRAY[-1::int8]) s
                """, waitingIn: "append_known", against: "race-1", store: store, db: db)
            // Version 2 was taken by the other session: the batch's stream stood at 2, looked up, not known.
            #expect(result == "(2,0,2)")
            #expect(try await store.readStream("race-1").map(\.streamVersion) == [1, 2, 3])
            #expect(try await store.readStream("race-1").map(\.type) == ["ThingHappened", "External", "Raced"])
        }
    }

    /// A version given as known that went stale while the batch waited for the lock is refused by the
    /// log's unique (stream, version) index: nothing of the batch is written, nothing is overwritten.
    @Test func aStaleKnownVersionIsRefusedByTheLog() async throws {
        try await withEventStore { store, db in
            _ = try await store.append([Self.event()], to: "race-3", expected: .noStream)
            _ = try await store.append([Self.event()], to: "other-3", expected: .noStream)
            await #expect(throws: PSQLError.self) {
                _ = try await Self.race("""
                    SELECT (s.versions[1], s.known, s.start_head)::text FROM system.append_known(
                        ARRAY['other-3', 'race-3'], ARRAY[1, 2], ARRAY[1, 1], ARRAY[gen_random_uuid(), gen_random_uuid()],
                        ARRAY['Raced', 'Raced'], ARRAY['{}'::jsonb, '{}'::jsonb], ARRAY['{}'::jsonb, '{}'::jsonb], ARRAY[1::int8, 1::int8]) s
                    """, waitingIn: "append_known", against: "race-3", store: store, db: db)
            }
            #expect(try await store.readStream("race-3").map(\.type) == ["ThingHappened", "External"])
            #expect(try await store.readStream("other-3").map(\.type) == ["ThingHappened"])
            #expect(try await store.headPosition() == 3)
        }
    }

    /// The same race for a batch with expected versions (`append_batch`): the version its expectation
    /// is checked against is the one after the other session's append.
    @Test func anExpectationIsCheckedAgainstAnAppendMadeWhileTheBatchWaitedForTheLock() async throws {
        try await withEventStore { store, db in
            let first = try await store.append([Self.event()], to: "race-2", expected: .noStream)
            // Expects version 2, which only exists once the other session commits.
            let result = try await Self.race("""
                SELECT (b.outcome, b.last_version)::text FROM system.append_batch(
                    ARRAY['race-2'], ARRAY[2::int8], ARRAY[1], ARRAY[gen_random_uuid()], ARRAY['Raced'],
                    ARRAY['{}'], ARRAY['{}'], ARRAY[1::int8], ARRAY[\(first.positions[0])::int8]) b
                """, waitingIn: "append_batch", against: "race-2", store: store, db: db)
            #expect(result == "(appended,3)")
            #expect(try await store.readStream("race-2").map(\.type) == ["ThingHappened", "External", "Raced"])
        }
    }

    @Test func theLogRejectsUpdateDeleteAndTruncate() async throws {
        try await withEventStore { store, _ in
            try await store.append([Self.event()], to: "order-1")
            for statement: PostgresQuery in ["UPDATE system.events SET type = 'Changed'", "DELETE FROM system.events",
                                             "TRUNCATE system.events"] {
                await #expect(throws: PSQLError.self) { try await store.client.query(statement) }
            }
            #expect(try await store.readStream("order-1").first?.type == "ThingHappened")
        }
    }

    @Test func sqlCanAppendThroughWriteEvent() async throws {
        try await withEventStore { store, _ in
            let position = try await scalar(store.client, """
                SELECT system.write_event(gen_random_uuid(), 'audit-1', 'RowAudited', '{"ok":true}'::jsonb)
                """, as: Int64.self)
            #expect(position == 1)
            let conflict = await #expect(throws: PSQLError.self) {
                // The error arrives with the rows, so read them.
                _ = try await scalar(store.client,
                    "SELECT system.write_event(gen_random_uuid(), 'audit-1', 'RowAudited', '{}'::jsonb, '{}'::jsonb, 0)",
                    as: Int64.self)
            }
            #expect(conflict?.serverInfo?[.sqlState] == "40001")
            #expect(try await store.readStream("audit-1").map(\.type) == ["RowAudited"])
        }
    }
}
