import EventStore
import Foundation
import PostgresNIO
import Synchronization
import Testing
import TestSupport

@Suite("Global order and subscriptions")
struct EventOrderingTests {
    @Test func aLateCommittingTransactionIsNeverSkipped() async throws {
        try await withEventStore(pollInterval: .milliseconds(50)) { store, db in
            try await store.append([EventData(type: "Early", data: "{}")], to: "early-1")
            // Another session appends position 2 and keeps its transaction open.
            let held = try await db.connect()
            try await held.query("BEGIN", logger: TestDatabase.logger)
            try await held.query("""
                SELECT * FROM system.append_events('late-1', NULL, ARRAY[gen_random_uuid()], ARRAY['Late'],
                                                   ARRAY['{}'::jsonb], ARRAY['{}'::jsonb])
                """, logger: TestDatabase.logger)

            let consumer = Task {
                var seen: [RecordedEvent] = []
                for try await event in store.subscribe(after: 0) {
                    seen.append(event)
                    if seen.count == 3 { break }
                }
                return seen
            }
            let laterDone = Atomic(false)
            let later = Task {
                try await store.append([EventData(type: "Later", data: "{}")], to: "later-1")
                laterDone.store(true, ordering: .sequentiallyConsistent)
            }
            try await Task.sleep(for: .milliseconds(600))
            // The later append cannot commit ahead of the open one, so nothing past 1 is visible.
            #expect(laterDone.load(ordering: .sequentiallyConsistent) == false)
            #expect(try await store.readAll(after: 1).isEmpty)

            try await held.query("COMMIT", logger: TestDatabase.logger)
            try await held.close().get()
            try await later.value
            let seen = try await consumer.value
            #expect(seen.map(\.type) == ["Early", "Late", "Later"])
            #expect(seen.map(\.position) == [1, 2, 3])
        }
    }

    @Test func queuedEventsEnterTheLogInCommitOrderAndOnlyOnce() async throws {
        try await withEventStore(pollInterval: .seconds(30)) { store, db in
            let queue = "SELECT system.queue_event($1, 'Queued', jsonb_build_object('n', $2::int))"
            // A writer queues an event and keeps its transaction open.
            let held = try await db.connect()
            try await held.query("BEGIN", logger: TestDatabase.logger)
            try await held.query(PostgresQuery(unsafeSQL: queue, binds: bindings("row-1", 1)), logger: TestDatabase.logger)
            // Two more commit (the queue order is 1, 2, 3; the commit order 2, 3, then 1).
            let other = try await db.connect()
            for n in 2...3 {
                try await other.query(PostgresQuery(unsafeSQL: queue, binds: bindings("row-\(n)", n)), logger: TestDatabase.logger)
            }
            await store.sequencer.flush()
            let first = try await store.readAll(after: 0)
            #expect(first.map(\.streamId) == ["row-2", "row-3"])
            #expect(first.map(\.position) == [1, 2])

            try await held.query("COMMIT", logger: TestDatabase.logger)
            // Flushes racing each other move the event once.
            await withDiscardingTaskGroup { group in
                for _ in 0..<4 { group.addTask { await store.sequencer.flush() } }
            }
            let all = try await store.readAll(after: 0)
            #expect(all.map(\.streamId) == ["row-2", "row-3", "row-1"])
            #expect(all.map(\.position) == [1, 2, 3])
            #expect(all.map(\.streamVersion) == [1, 1, 1])
            #expect(all.last?.data == #"{"n": 1}"#)
            let pending = try await other.query("SELECT count(*)::int FROM system.pending_events", logger: TestDatabase.logger)
            for try await count in pending.decode(Int.self) { #expect(count == 0) }
            try await held.close().get()
            try await other.close().get()
        }
    }

    /// Every moved event leaves a dead row in the queue; the sequencer vacuums it every few thousand, so
    /// under a stream of writes the queue reuses its pages instead of growing until autovacuum comes.
    @Test func theQueueReusesItsPagesUnderAStreamOfWrites() async throws {
        try await withEventStore(pollInterval: .seconds(30)) { store, db in
            let writer = try await db.connect()
            defer { Task { try? await writer.close().get() } }
            let size: PostgresQuery = "SELECT pg_relation_size('system.pending_events')"
            var sizes: [Int64] = []
            for _ in 0..<(3 * PendingEventSequencer.vacuumEvery / 1000) {
                // One row back: the statement (and its commit) is over when the call returns.
                try await writer.query("""
                    SELECT count(system.queue_event('bulk-1', 'Queued', jsonb_build_object('n', g))) FROM generate_series(1, 1000) g
                    """, logger: TestDatabase.logger)
                await store.sequencer.flush()
                sizes.append(try await scalar(store.client, size, as: Int64.self))
            }
            let head = try await store.headPosition()
            #expect(head == Int64(3 * PendingEventSequencer.vacuumEvery))
            // Without the vacuums the queue grows with every round (15 rounds: 15 times the first).
            let roundsPerVacuum = PendingEventSequencer.vacuumEvery / 1000
            #expect(sizes.last! <= sizes[roundsPerVacuum] + sizes[0], "queue sizes by round: \(sizes)")
        }
    }

    private func bindings(_ stream: String, _ n: Int) -> PostgresBindings {
        var b = PostgresBindings()
        b.append(stream)
        b.append(n)
        return b
    }

    @Test func subscriptionIsWokenByNotifyNotByPolling() async throws {
        try await withEventStore(pollInterval: .seconds(30)) { store, _ in
            try await store.append([EventData(type: "Before", data: "{}")], to: "x-1")
            let head = try await store.headPosition()
            let consumer = Task { () -> RecordedEvent? in
                for try await event in store.subscribe(after: head) { return event }
                return nil
            }
            try await Task.sleep(for: .milliseconds(300))  // the consumer is now waiting on the signal
            let started = ContinuousClock.now
            try await store.append([EventData(type: "After", data: "{}")], to: "x-1")
            let event = try await consumer.value
            #expect(event?.type == "After")
            #expect(ContinuousClock.now - started < .seconds(5))
        }
    }

    @Test func subscriptionFiltersByCategoryInLogOrder() async throws {
        try await withEventStore { store, _ in
            for i in 0..<10 {
                try await store.append([EventData(type: "Tick", data: "{\"i\":\(i)}")], to: i % 2 == 0 ? "even-\(i)" : "odd-\(i)")
            }
            var seen: [RecordedEvent] = []
            for try await event in store.subscribe(after: 0, filter: EventFilter(category: "odd"), batchSize: 2) {
                seen.append(event)
                if seen.count == 5 { break }
            }
            #expect(seen.map(\.category) == Array(repeating: "odd", count: 5))
            #expect(seen.map(\.position) == [2, 4, 6, 8, 10])
        }
    }

    /// A follower filtered by type moves past unwanted events (its cursor goes to the head it read
    /// with), and still gets every wanted one, in order, once, whether it was caught up or not.
    @Test func typeFilteredSubscriptionGetsEveryWantedEventOnceAcrossWakeUps() async throws {
        try await withEventStore(pollInterval: .milliseconds(50)) { store, _ in
            for i in 0..<7 { try await store.append([EventData(type: "Noise", data: "{\"i\":\(i)}")], to: "noise-\(i)") }
            try await store.append([EventData(type: "Wanted", data: "{\"n\":0}")], to: "wanted-0")
            let consumer = Task { () -> [Int64] in
                var seen: [Int64] = []
                for try await event in store.subscribe(after: 0, filter: EventFilter(types: ["Wanted"]), batchSize: 2) {
                    #expect(event.type == "Wanted")
                    seen.append(event.position)
                    if seen.count == 4 { break }
                }
                return seen
            }
            // Live: noise and wanted events interleaved, while the follower waits between them.
            var wanted: [Int64] = [8]
            for n in 1...3 {
                try await Task.sleep(for: .milliseconds(60))
                for i in 0..<5 { try await store.append([EventData(type: "Noise", data: "{\"i\":\(i)}")], to: "noise-\(n)-\(i)") }
                let result = try await store.append([EventData(type: "Wanted", data: "{\"n\":\(n)}")], to: "wanted-\(n)")
                wanted.append(result.positions[0])
            }
            #expect(try await consumer.value == wanted)
        }
    }

    @Test func envelopeJSONIsValidAndComplete() async throws {
        try await withEventStore { store, _ in
            let metadata = EventMetadata(actor: .init(type: .admin), requestId: "r-1")
            try await store.append([EventData(type: "Quoted", data: "{\"s\":\"a\\\"b\\n\"}", metadata: metadata)], to: "q-1")
            let event = try #require(try await store.readAll(after: 0).first)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(event.envelopeJSON().utf8)) as? [String: Any])
            #expect(object["position"] as? Int == 1)
            #expect(object["streamId"] as? String == "q-1")
            #expect((object["data"] as? [String: Any])?["s"] as? String == "a\"b\n")
            #expect(((object["metadata"] as? [String: Any])?["actor"] as? [String: Any])?["type"] as? String == "admin")
            #expect((object["recordedAt"] as? String)?.hasSuffix("Z") == true)
        }
    }
}
