import Actors
import ArgumentParser
import EventStore
import Foundation
import Gateway
import Logging
import PostgresNIO
import Projections

/// Prints the figures of issue 2 in one run on one PostgreSQL, each with its baseline and ratio:
/// appends from 64 writers (store vs. one INSERT per transaction), catch-up of an async
/// projection over the log, `replay --verify`, and memory (server idle, this process under load).
/// Point DATABASE_URL at a scratch database (or leave it unset for the embedded cluster in DATA_DIR).
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "insforge-bench")

    @Option(help: "Concurrent writers.") var writers = 64
    @Option(help: "Appends per writer in each append run.") var appendsPerWriter = 2000
    @Option(help: "Log size for the catch-up and replay figures.") var logSize = 1_000_000
    @Flag(help: "Skip the baseline run (for profiling the store alone).") var skipBaseline = false
    @Option(help: "Path of the insforge binary for the idle-memory figure (default: beside this one).") var server: String?
    @Flag(help: "Only measure the records query parser + SQL builder on one core (issue 4), then exit.") var recordsParser = false

    func run() async throws {
        if recordsParser {
            let (rate, sample) = RecordsBenchmark.run(seconds: 3)
            print(String(format: "records parser + SQL builder, one core: %.0f queries/s (target >= 200,000/s)", rate))
            print("  sample: \(sample.sql.prefix(160))...")
            return
        }
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let configuration = try ServerConfiguration.fromEnvironment()
        let database = try await Database.open(configuration, logger: logger)
        defer { database.close() }
        _ = try await database.withSingleConnection { try await Migrator(logger: logger).migrate(on: $0) }
        let core = try ServerCore(configuration: configuration, database: database, logger: logger)
        let writers = self.writers, perWriter = self.appendsPerWriter, logSize = self.logSize, skipBaseline = self.skipBaseline
        let serverPath = server ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("insforge").path

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await core.database.client.run() }
            group.addTask { try await core.store.run() }
            defer { group.cancelAll() }

            print("== appends: \(writers) writers x \(perWriter) single-event appends")
            let (baseline, ceilings) = skipBaseline ? (Run(events: 1, duration: .seconds(1), latencies: [.zero]), [])
                : try await Self.baseline(database.settings, writers: writers, perWriter: perWriter, logger: logger)
            print(baseline.line("baseline (one INSERT per transaction)"))
            if !skipBaseline { print(baseline.cpuLine) }
            for (connections, run) in ceilings {
                print(run.line("batching alone, \(writers / 2)-row INSERTs into the same table, \(connections) connection\(connections == 1 ? "" : "s")"
                               + (connections == 1 ? " (commits in series, as under the log lock)" : "")))
                print(run.cpuLine)
            }
            let rss = RSSSampler()
            let store = try await Self.storeAppends(core.store, writers: writers, perWriter: perWriter, rss: rss)
            print(store.line("event store (group commit)"))
            print(store.cpuLine)
            let stats = core.store.appendStatistics
            print(String(format: "  %d batches, %.1f commands per batch, %.0f%% of versions from the cache, writer busy %.2f s of %.2f s",
                         stats.batches, Double(stats.commands) / Double(max(stats.batches, 1)),
                         100 * Double(stats.knownVersions) / Double(max(stats.commands, 1)), stats.busySeconds, store.duration.seconds))
            print(String(format: "ratio: %.2fx the baseline (target >= 5x, >= 20,000 events/s, p99 <= 25 ms)",
                         store.eventsPerSecond / baseline.eventsPerSecond))
            print(String(format: "memory: this process peaked at %.0f MB RSS during the store appends (target <= 300 MB)", rss.peakMB))
            let exact = try await Self.storeAppends(core.store, writers: writers, perWriter: perWriter, rss: rss, expectingVersions: true)
            print(exact.line("event store, each append expecting its stream's exact version"))

            print("== catch-up and replay over \(logSize) events")
            try await Self.fill(core.store, to: Int64(logSize))
            // Measure the steady state, not a race with autovacuum waking up after the fill.
            try await database.client.query("VACUUM ANALYZE system.events")
            let head = try await core.store.headPosition()
            let runner = ProjectionRunner(projection: EventStatsProjection(), store: core.store, logger: logger)
            let started = ContinuousClock.now
            let runnerTask = Task { try await runner.run() }
            while await runner.status().checkpoint < head { try await Task.sleep(for: .milliseconds(20)) }
            let catchUp = ContinuousClock.now - started
            runnerTask.cancel()
            _ = try? await runnerTask.value
            let scanned = try await Self.rawScan(database.client)
            print(String(format: "catch-up: event_stats projection read %lld events in %.2f s = %.0f events/s (target >= 200,000/s); "
                         + "raw SELECT of the same rows: %.0f rows/s (ratio %.2f)",
                         head, catchUp.seconds, Double(head) / catchUp.seconds, scanned, Double(head) / catchUp.seconds / scanned))
            let report = try await ReplayVerifier(projections: ProjectionCatalog.all, logger: logger)
                .verify(inline: Set(ProjectionCatalog.inline.map(\.name)), client: database.client)
            print(String(format: "replay --verify: %lld events in %.2f s, %@ (target <= 60 s)",
                         report.eventsReplayed, report.duration.seconds, report.matches ? "read models match" : "MISMATCH"))
        }

        if FileManager.default.isExecutableFile(atPath: serverPath) {
            let idle = try await Self.idleServerRSS(serverPath, configuration: configuration, settings: database.settings)
            print(String(format: "memory: server idle RSS %.0f MB (target <= 100 MB)", idle))
        } else {
            print("memory: server binary not found at \(serverPath); idle RSS not measured")
        }
    }

    struct Run {
        var events: Int
        var duration: Duration
        var latencies: [Duration]
        /// CPU the run took: the whole machine's and this process's.
        var cpu = CPUTime()
        var eventsPerSecond: Double { Double(events) / duration.seconds }
        var p99: Duration {
            let sorted = latencies.sorted()
            return sorted.isEmpty ? .zero : sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.99))]
        }
        func line(_ label: String) -> String {
            String(format: "%@: %.0f events/s, p50 %.2f ms, p99 %.2f ms", label, eventsPerSecond,
                   latencies.sorted()[latencies.count / 2].seconds * 1000, p99.seconds * 1000)
        }
        /// What the run cost in CPU per event, and the rate that cost allows when every core is busy.
        var cpuLine: String {
            let perEvent = cpu.machine / Double(events) * 1e6
            return String(format: "  CPU: %.0f µs per event (this process %.0f µs, the rest, PostgreSQL above all, %.0f µs); "
                          + "the machine was %.0f%% busy; with all %d cores busy this cost allows at most %.0f events/s",
                          perEvent, cpu.process / Double(events) * 1e6, (cpu.machine - cpu.process) / Double(events) * 1e6,
                          100 * cpu.machine / duration.seconds / Double(CPUTime.cores), CPUTime.cores,
                          Double(CPUTime.cores) / (cpu.machine / Double(events)))
        }
    }

    /// 64 writers, one INSERT per transaction into a table shaped like the log. Then, for scale, what
    /// batching alone does with the same rows: multi-row INSERTs of a lane's share of the writers, one
    /// transaction each, from one connection (commits in series: the most a store that holds the log
    /// lock through commit can do with such batches) and from two (commits overlapping).
    static func baseline(_ settings: DatabaseSettings, writers: Int, perWriter: Int,
                         logger: Logger) async throws -> (baseline: Run, ceilings: [(connections: Int, run: Run)]) {
        var configuration = PostgresClient.Configuration(host: settings.host, port: settings.port, username: settings.username,
                                                         password: settings.password, database: settings.database, tls: .disable)
        configuration.options.maximumConnections = writers
        configuration.options.minimumConnections = writers
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: (baseline: Run, ceilings: [(connections: Int, run: Run)])?.self) { group in
            group.addTask { await client.run(); return nil }
            defer { group.cancelAll() }
            try await client.query("DROP TABLE IF EXISTS public.bench_plain_events")
            try await client.query("""
                CREATE TABLE public.bench_plain_events (
                    position bigserial PRIMARY KEY, stream_id text NOT NULL, stream_version bigint NOT NULL,
                    event_id uuid NOT NULL UNIQUE, type text NOT NULL, data jsonb NOT NULL, metadata jsonb NOT NULL,
                    recorded_at timestamptz NOT NULL DEFAULT now(), UNIQUE (stream_id, stream_version))
                """)
            for _ in 0..<writers { try await client.query("SELECT 1") }  // warm the pool
            let run = try await measure(writers: writers, perWriter: perWriter) { writer, i in
                try await client.query("""
                    INSERT INTO public.bench_plain_events (stream_id, stream_version, event_id, type, data, metadata)
                    VALUES (\("plain-\(writer)"), \(Int64(i + 1)), \(EventID.next()), 'BenchAppended', \("{\"n\":\(i)}")::jsonb, '{}'::jsonb)
                    """)
            }
            let batch = max(1, writers / 2)
            var ceilings: [(connections: Int, run: Run)] = []
            for connections in [1, 2] {
                let ops = max(1, writers * perWriter / batch / connections)
                let timed = try await measure(writers: connections, perWriter: ops) { connection, i in
                    let streams = (0..<batch).map { "batch-\(connections)x\(connection)x\(i)x\($0)" }
                    let ids = (0..<batch).map { _ in EventID.next() }, data = (0..<batch).map { "{\"n\":\($0)}" }
                    try await client.query("""
                        INSERT INTO public.bench_plain_events (stream_id, stream_version, event_id, type, data, metadata)
                        SELECT u.s, 1, u.id, 'BenchAppended', u.d::jsonb, '{}'::jsonb FROM unnest(\(streams), \(ids), \(data)) AS u(s, id, d)
                        """)
                }
                ceilings.append((connections, Run(events: timed.events * batch, duration: timed.duration, latencies: timed.latencies,
                                                  cpu: timed.cpu)))
            }
            try await client.query("DROP TABLE public.bench_plain_events")
            return (run, ceilings)
        }!
    }

    /// Each writer appends to a stream of its own, accepting any version or (`expectingVersions`)
    /// expecting the version its previous append left (optimistic concurrency).
    static func storeAppends(_ store: EventStore, writers: Int, perWriter: Int, rss: RSSSampler,
                             expectingVersions: Bool = false) async throws -> Run {
        let stream = UUID().uuidString.prefix(8).lowercased()
        let sampler = Task { while !Task.isCancelled { rss.sample(); try? await Task.sleep(for: .milliseconds(50)) } }
        defer { sampler.cancel() }
        return try await measure(writers: writers, perWriter: perWriter) { writer, i in
            try await store.append([EventData(type: "BenchAppended", data: "{\"n\":\(i)}")], to: "bench-\(stream)\(writer)",
                                   expected: expectingVersions ? .exact(Int64(i)) : .any)
        }
    }

    static func measure(writers: Int, perWriter: Int, _ body: @Sendable @escaping (Int, Int) async throws -> Void) async throws -> Run {
        let cpuBefore = CPUTime.now()
        let started = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
            for writer in 0..<writers {
                group.addTask {
                    var own: [Duration] = []
                    own.reserveCapacity(perWriter)
                    for i in 0..<perWriter {
                        let t0 = ContinuousClock.now
                        try await body(writer, i)
                        own.append(ContinuousClock.now - t0)
                    }
                    return own
                }
            }
            var all: [Duration] = []
            for try await own in group { all += own }
            return all
        }
        return Run(events: writers * perWriter, duration: ContinuousClock.now - started, latencies: latencies,
                   cpu: CPUTime.now().since(cpuBefore))
    }

    /// Tops the log up to `target` events in 10,000-event appends of 100 streams.
    static func fill(_ store: EventStore, to target: Int64) async throws {
        var head = try await store.headPosition()
        var round = 0
        while head < target {
            let n = Int(min(10_000, target - head))
            let thisRound = round
            try await withThrowingTaskGroup(of: Void.self) { group in
                for s in 0..<10 {
                    let events = (0..<(n / 10 + (s < n % 10 ? 1 : 0))).map { i in
                        EventData(type: "BenchFilled", data: "{\"round\":\(thisRound),\"i\":\(i)}")
                    }
                    if events.isEmpty { continue }
                    group.addTask {
                        for chunk in stride(from: 0, to: events.count, by: 1000) {
                            try await store.append(Array(events[chunk..<min(chunk + 1000, events.count)]), to: "fill-\(thisRound)x\(s)")
                        }
                    }
                }
                try await group.waitForAll()
            }
            round += 1
            head = try await store.headPosition()
        }
    }

    /// Rows per second of a plain SELECT of the whole log in 1,000-row pages (the read ceiling).
    static func rawScan(_ client: PostgresClient) async throws -> Double {
        let started = ContinuousClock.now
        var cursor: Int64 = 0, total = 0
        while true {
            let page = try await EventStore.readAll(on: client, after: cursor, limit: 1000, filter: .all)
            guard let last = page.last else { break }
            cursor = last.position
            total += page.count
        }
        return Double(total) / (ContinuousClock.now - started).seconds
    }

    static func idleServerRSS(_ path: String, configuration: ServerConfiguration, settings: DatabaseSettings) async throws -> Double {
        var environment = ProcessInfo.processInfo.environment
        let password = settings.password.map { ":\($0)" } ?? ""
        environment["DATABASE_URL"] = "postgres://\(settings.username)\(password)@\(settings.host):\(settings.port)/\(settings.database)"
        environment["HOST"] = "127.0.0.1"
        environment["PORT"] = "0"
        environment["DATA_DIR"] = configuration.dataDirectory.path
        environment["LOG_LEVEL"] = "warning"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["serve"]
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        try await Task.sleep(for: .seconds(5))
        let rss = RSSSampler.read(pid: process.processIdentifier)
        process.terminate()
        process.waitUntilExit()
        return rss
    }
}

/// Samples resident memory from /proc.
final class RSSSampler: @unchecked Sendable {
    private let lock = NSLock()
    private var peak = 0.0

    var peakMB: Double { lock.withLock { peak } }

    func sample() {
        let now = Self.read(pid: getpid())
        lock.withLock { peak = max(peak, now) }
    }

    /// VmRSS of `pid` in MB.
    static func read(pid: Int32) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return kb / 1024
    }
}

/// CPU seconds used so far: by the whole machine (every core, from /proc/stat) and by this process.
struct CPUTime {
    var machine = 0.0
    var process = 0.0

    static let cores = ProcessInfo.processInfo.activeProcessorCount

    static func now() -> CPUTime {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let process = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        // First line: "cpu user nice system idle iowait irq softirq steal ...", in clock ticks.
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let first = stat.split(separator: "\n").first else { return CPUTime(machine: 0, process: process) }
        let ticks = first.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard ticks.count >= 8 else { return CPUTime(machine: 0, process: process) }
        let busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
        return CPUTime(machine: busy / Double(sysconf(Int32(_SC_CLK_TCK))), process: process)
    }

    func since(_ earlier: CPUTime) -> CPUTime { CPUTime(machine: machine - earlier.machine, process: process - earlier.process) }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
