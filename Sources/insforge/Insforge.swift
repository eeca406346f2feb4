import ArgumentParser
import EventStore
import Foundation
import Gateway
import Logging
import Metrics
import Prometheus
import Projections
import ServiceLifecycle

/// The `insforge` command: the server and its operator tools.
@main
struct Insforge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "insforge",
        abstract: "Event-sourced backend-as-a-service (InsForge-compatible API).",
        subcommands: [Serve.self, Migrate.self, Events.self, Keys.self],
        defaultSubcommand: Serve.self)
}

/// Reads the configuration and sets up logging; a bad environment is one clear line and exit 1.
func prepare() -> (ServerConfiguration, Logger) {
    let configuration: ServerConfiguration
    do {
        configuration = try ServerConfiguration.fromEnvironment()
    } catch {
        FileHandle.standardError.write(Data("insforge: \(error)\n".utf8))
        Foundation.exit(1)
    }
    let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
    LoggingSystem.bootstrap { label in StandardErrorLogHandler(label: label, level: level) }
    return (configuration, Logger(label: "insforge"))
}

/// Opens the database (embedded or configured) and applies migrations; failures are one clear line.
func openDatabase(_ configuration: ServerConfiguration, _ logger: Logger) async -> Database {
    do {
        let database = try await Database.open(configuration, logger: logger)
        do {
            _ = try await database.withSingleConnection { try await Migrator(logger: logger).migrate(on: $0) }
        } catch {
            database.close()
            throw error
        }
        return database
    } catch {
        FileHandle.standardError.write(Data("insforge: \(error)\n".utf8))
        Foundation.exit(1)
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server (the default).")

    func run() async throws {
        let (configuration, logger) = prepare()
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let database = await openDatabase(configuration, logger)
        do {
            let core = try ServerCore(configuration: configuration, database: database, logger: logger)
            let app = try await buildApplication(core: core, registry: registry, logger: logger)
            // SIGTERM/SIGINT stop the services in turn; if that cannot finish (say, a service waits
            // for a database that went away), the process exits anyway after 30 s.
            let group = ServiceGroupConfiguration(services: [app, ShutdownDeadline(limit: .seconds(30), logger: logger)],
                                                  gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            try await ServiceGroup(configuration: group).run()
        } catch {
            logger.error("server stopped: \(error)")
            database.close()
            throw ExitCode.failure
        }
        database.close()
    }
}

/// Bounds a graceful shutdown: once it starts, the process exits (status 1) after `limit` even if
/// some service never finishes. A normal stop ends the process long before.
struct ShutdownDeadline: Service {
    let limit: Duration
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        let (limit, logger) = (limit, logger)
        Task.detached {
            try? await Task.sleep(for: limit)
            logger.error("the server did not stop within \(limit.components.seconds) s of the signal; exiting")
            _exit(1)  // not exit(): its clean-up can wait on the very threads that are stuck
        }
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply the schema migrations and exit.")

    func run() async throws {
        let (configuration, logger) = prepare()
        let database = await openDatabase(configuration, logger)
        database.close()
        print("migrations applied")
    }
}

struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read, export, verify and count the event log.",
        subcommands: [Tail.self, Export.self, Replay.self, Stats.self])

    /// Runs `body` with the store's pool up (no HTTP server).
    static func withCore<T: Sendable>(_ body: @Sendable @escaping (ServerCore, Logger) async throws -> T) async throws -> T {
        let (configuration, logger) = prepare()
        let database = await openDatabase(configuration, logger)
        defer { database.close() }
        let core = try ServerCore(configuration: configuration, database: database, logger: logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { await core.database.client.run(); return nil }
            group.addTask { try await core.store.run(); return nil }
            group.addTask { try await body(core, logger) }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let result { return result }
            }
            throw CancellationError()
        }
    }

    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print events as NDJSON as they are appended (Ctrl-C to stop).")
        @Option(help: "Start after this position (default: the current head).") var after: Int64?
        @Option(help: "Only this category (the part of the stream id before '-').") var category: String?

        func run() async throws {
            let after = self.after, category = self.category
            try await Events.withCore { core, _ in
                let start: Int64
                if let after { start = after } else { start = try await core.store.headPosition() }
                for try await event in core.store.subscribe(after: start, filter: EventFilter(category: category)) {
                    FileHandle.standardOutput.write(Data((event.envelopeJSON() + "\n").utf8))
                }
            }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write the log as NDJSON (or an LZ4 frame of it).")
        @Option(help: "Start after this position.") var after: Int64 = 0
        @Option(help: "ndjson or ndjson.lz4.") var format: String = "ndjson"
        @Option(name: .shortAndLong, help: "Output file (default: standard output).") var output: String?

        func validate() throws {
            guard format == "ndjson" || format == "ndjson.lz4" else { throw ValidationError("--format must be ndjson or ndjson.lz4") }
        }

        func run() async throws {
            let after = self.after, compressed = format == "ndjson.lz4", output = self.output
            try await Events.withCore { core, _ in
                let head = try await core.store.headPosition()
                let handle: FileHandle
                if let output {
                    guard FileManager.default.createFile(atPath: output, contents: nil) else {
                        throw ValidationError("cannot write \(output)")
                    }
                    handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
                } else {
                    handle = FileHandle.standardOutput
                }
                let bar = ProgressBar(label: "export", total: head - after, enabled: output != nil)
                try await LogExport(store: core.store, after: after, until: head)
                    .write(compressed: compressed, progress: { bar.update($0 - after) }) { bytes in handle.write(Data(bytes)) }
                bar.finish()
                if output != nil { try handle.close() }
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rebuild every read model from position 0 into a scratch schema and compare with the live one.")
        @Flag(help: "Compare row counts and checksums; exit 1 on any difference.") var verify = false

        func validate() throws {
            guard verify else { throw ValidationError("only --verify is supported: replay never overwrites live read models") }
        }

        func run() async throws {
            let matches = try await Events.withCore { core, logger in
                let head = try await core.store.headPosition()
                let bar = ProgressBar(label: "replay", total: head, enabled: true)
                let report = try await ReplayVerifier(projections: ProjectionCatalog.all, logger: logger)
                    .verify(inline: Set(ProjectionCatalog.inline.map(\.name)), client: core.store.client) { done, _ in bar.update(done) }
                bar.finish()
                for table in report.tables {
                    print("\(table.matches ? "ok  " : "DIFF") \(table.table): live \(table.liveRows) rows \(table.liveChecksum), "
                          + "replayed \(table.replayedRows) rows \(table.replayedChecksum)")
                }
                let seconds = Double(report.duration.components.seconds) + Double(report.duration.components.attoseconds) / 1e18
                print("replayed \(report.eventsReplayed) events up to position \(report.head) in \(String(format: "%.2f", seconds)) s: "
                      + (report.matches ? "read models match the log" : "read models DIFFER from the log"))
                return report.matches
            }
            if !matches { throw ExitCode.failure }
        }
    }

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Counts per category and type, and where each projection is.")
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let json = self.json
            try await Events.withCore { core, _ in
                let stats = try await LogStats.read(store: core.store)
                if json {
                    print(try JSONCoding.encodeString(stats))
                    return
                }
                print("head position: \(stats.head)   parked events: \(stats.parkedEvents)")
                for t in stats.types { print("  \(t.category)/\(t.type): \(t.count) (last at \(t.lastPosition))") }
                for p in stats.projections { print("  projection \(p.name): checkpoint \(p.checkpoint), lag \(p.lag)") }
            }
        }
    }
}

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The API keys.", subcommands: [Show.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the admin API key and the anon key (from the database, decrypted with this server's secrets).")

        func run() async throws {
            try await Events.withCore { core, _ in
                for kind in ApiKeyKind.allCases {
                    print("\(kind.rawValue): \(try await core.issuer.currentKey(kind) ?? "(not issued yet: start the server once)")")
                }
            }
        }
    }
}

/// A one-line progress bar on standard error (only when it is a terminal or output goes to a file).
final class ProgressBar: @unchecked Sendable {
    let label: String
    let total: Int64
    let enabled: Bool
    private var lastDrawn = -1
    private let lock = NSLock()

    init(label: String, total: Int64, enabled: Bool) {
        self.label = label
        self.total = max(total, 1)
        self.enabled = enabled && isatty(2) == 1
    }

    func update(_ done: Int64) {
        guard enabled else { return }
        let percent = Int(min(100, done * 100 / total))
        lock.lock(); defer { lock.unlock() }
        guard percent != lastDrawn else { return }
        lastDrawn = percent
        let filled = percent * 30 / 100
        let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: 30 - filled)
        FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(percent)% \(done)/\(total)".utf8))
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\n".utf8))
    }
}
