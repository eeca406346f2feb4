import Actors
import EventStore
import Foundation
import PostgresNIO
import Projections
import Testing
import TestSupport

@Suite("Projection runners")
struct ProjectionRunnerTests {
    static var fast: ProjectionRunner.Options {
        var options = ProjectionRunner.Options()
        options.batchSize = 50
        options.initialBackoff = .milliseconds(10)
        options.maxBackoff = .milliseconds(50)
        options.ownershipRetry = .milliseconds(100)
        options.maxAttempts = 3
        return options
    }

    static func count(_ client: PostgresClient, _ type: String) async throws -> Int64 {
        try await scalar(client, "SELECT coalesce(sum(count), 0)::int8 FROM system.event_stats WHERE type = \(type)", as: Int64.self)
    }

    static func append(_ store: EventStore, _ n: Int, type: String = "Counted") async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<n { group.addTask { try await store.append([EventData(type: type, data: "{}")], to: "c-\(i % 7)") } }
            try await group.waitForAll()
        }
    }

    static func caughtUp(_ runner: ProjectionRunner, _ store: EventStore) async throws -> Bool {
        let head = try await store.headPosition()
        return try await eventually { await runner.status().checkpoint >= head }
    }

    @Test func resumesFromItsCheckpointWithoutApplyingTwice() async throws {
        try await withEventStore { store, _ in
            try await Self.append(store, 120)
            let first = ProjectionRunner(projection: EventStatsProjection(), store: store, options: Self.fast, logger: TestDatabase.logger)
            let task1 = Task { try await first.run() }
            #expect(try await Self.caughtUp(first, store))
            task1.cancel()
            _ = try? await task1.value
            #expect(try await Self.count(store.client, "Counted") == 120)

            try await Self.append(store, 30)
            let second = ProjectionRunner(projection: EventStatsProjection(), store: store, options: Self.fast, logger: TestDatabase.logger)
            let task2 = Task { try await second.run() }
            #expect(try await Self.caughtUp(second, store))
            task2.cancel()
            _ = try? await task2.value
            #expect(try await Self.count(store.client, "Counted") == 150)
            #expect(try await scalar(store.client, "SELECT position FROM system.checkpoints WHERE projection = 'event_stats'",
                                     as: Int64.self) == 150)
        }
    }

    @Test func twoRunnersApplyEachEventOnceAndTakeOver() async throws {
        try await withEventStore { store, db in
            // The second runner uses its own pool, as a second server process would.
            let otherClient = db.makeClient(poolSize: 4)
            let poolTask = Task { await otherClient.run() }
            defer { poolTask.cancel() }
            let otherStore = EventStore(client: otherClient, logger: TestDatabase.logger, pollInterval: .milliseconds(100))
            let otherStoreTask = Task { try await otherStore.run() }
            defer { otherStoreTask.cancel() }

            let a = ProjectionRunner(projection: EventStatsProjection(), store: store, options: Self.fast, logger: TestDatabase.logger)
            let b = ProjectionRunner(projection: EventStatsProjection(), store: otherStore, options: Self.fast, logger: TestDatabase.logger)
            let taskA = Task { try await a.run() }
            let taskB = Task { try await b.run() }
            try await Self.append(store, 200)
            let caughtUp = try await eventually {
                let (ca, cb) = (await a.status().checkpoint, await b.status().checkpoint)
                return ca >= 200 || cb >= 200
            }
            #expect(caughtUp)
            let owners = [await a.status().isOwner, await b.status().isOwner]
            #expect(owners.filter { $0 }.count == 1)
            #expect(try await Self.count(store.client, "Counted") == 200)

            // The owner goes away; the other takes over and carries on, still exactly once.
            let (owner, survivor, ownerTask) = owners[0] ? (a, b, taskA) : (b, a, taskB)
            ownerTask.cancel()
            _ = try? await ownerTask.value
            #expect(await owner.status().isOwner == false)
            try await Self.append(store, 50)
            #expect(try await eventually { await survivor.status().isOwner })
            #expect(try await eventually { await survivor.status().checkpoint >= 250 })
            #expect(try await Self.count(store.client, "Counted") == 250)
            taskA.cancel()
            taskB.cancel()
        }
    }

    /// Fails on any event whose payload says so; records what it applied.
    struct FlakyProjection: Projection {
        static let table = ReadModelTable(schema: "public", name: "flaky_seen", keyColumns: ["position"])
        var name: String { "flaky" }
        var tables: [ReadModelTable] { [Self.table] }
        var eventTypes: Set<String>? { ["Flaky"] }

        struct Poisoned: Error {}

        func apply(_ events: [RecordedEvent], in context: ProjectionContext) async throws {
            for event in events {
                if event.data.contains("poison") { throw Poisoned() }
                try await context.connection.query(
                    "INSERT INTO \(unescaped: context.name(of: Self.table)) (position) VALUES (\(event.position))",
                    logger: context.logger)
            }
        }
    }

    @Test func aPoisonEventIsParkedAndTheRestIsApplied() async throws {
        try await withEventStore { store, _ in
            try await store.client.query("CREATE TABLE public.flaky_seen (position bigint PRIMARY KEY)")
            for i in 1...12 {
                try await store.append([EventData(type: i % 4 == 0 ? "Other" : "Flaky", data: i == 5 ? "{\"poison\":true}" : "{}")],
                                       to: "f-\(i)")
            }
            let runner = ProjectionRunner(projection: FlakyProjection(), store: store, options: Self.fast, logger: TestDatabase.logger)
            let task = Task { try await runner.run() }
            #expect(try await Self.caughtUp(runner, store))
            task.cancel()
            _ = try? await task.value
            let seen = try await store.client.query("SELECT position FROM public.flaky_seen ORDER BY position")
            var positions: [Int64] = []
            for try await p in seen.decode(Int64.self) { positions.append(p) }
            #expect(positions == [1, 2, 3, 6, 7, 9, 10, 11])
            let parked = try await scalar(store.client, "SELECT position FROM system.parked_events WHERE projection = 'flaky'", as: Int64.self)
            #expect(parked == 5)
            #expect(try await scalar(store.client, "SELECT attempts FROM system.parked_events", as: Int32.self) == 3)
        }
    }

    /// Reads no payload (so its events carry no id) and refuses one type.
    struct HeaderOnlyRefusing: Projection {
        var name: String { "header_only" }
        var tables: [ReadModelTable] { [] }
        var eventTypes: Set<String>? { nil }
        var needsPayload: Bool { false }
        struct Refused: Error {}
        func apply(_ events: [RecordedEvent], in context: ProjectionContext) async throws {
            if events.contains(where: { $0.type == "Refused" }) { throw Refused() }
        }
    }

    @Test func aParkedEventKeepsItsRealIdEvenWithoutPayloadReads() async throws {
        try await withEventStore { store, _ in
            let id = UUID()
            try await store.append([EventData(type: "Fine", data: "{}")], to: "h-1")
            try await store.append([EventData(eventId: id, type: "Refused", data: "{}")], to: "h-2")
            try await store.append([EventData(type: "Fine", data: "{}")], to: "h-3")
            let runner = ProjectionRunner(projection: HeaderOnlyRefusing(), store: store, options: Self.fast, logger: TestDatabase.logger)
            let task = Task { try await runner.run() }
            #expect(try await Self.caughtUp(runner, store))
            task.cancel()
            _ = try? await task.value
            let parked = try await scalar(store.client, "SELECT event_id FROM system.parked_events WHERE projection = 'header_only'",
                                          as: UUID.self)
            #expect(parked == id)
        }
    }
}
