import Foundation
import Logging

/// A private PostgreSQL cluster under `<data>/postgres`, made with the machine's own
/// `initdb`/`pg_ctl`, listening on 127.0.0.1 only, with a generated password.
///
/// As root (how CI runs) PostgreSQL refuses to start, so the cluster then belongs to the
/// `postgres` system user and its commands run through `runuser`.
public struct EmbeddedPostgres: Sendable {
    /// Why the cluster could not be used; printed as is.
    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    public let dataFolder: DataFolder
    public let preferredPort: Int?
    let logger: Logger

    public init(dataFolder: DataFolder, preferredPort: Int?, logger: Logger) {
        self.dataFolder = dataFolder
        self.preferredPort = preferredPort
        self.logger = logger
    }

    var clusterDirectory: URL { dataFolder.url.appendingPathComponent("postgres") }
    var logFile: URL { dataFolder.url.appendingPathComponent("postgres.log") }
    static let username = "insforge"
    static let database = "insforge"

    /// A running cluster: how to connect, and whether this process started it (and must stop it).
    public struct Running: Sendable {
        public var settings: DatabaseSettings
        public var startedHere: Bool
    }

    /// Starts the cluster (creating it the first time), or joins the one already running.
    public func start() throws -> Running {
        let bin = try Self.binaries()
        try dataFolder.create()
        let password = try dataFolder.secret("postgres-password") { DataFolder.randomHex(bytes: 24) }
        let runAsPostgres = getuid() == 0
        if !FileManager.default.fileExists(atPath: clusterDirectory.appendingPathComponent("PG_VERSION").path) {
            try initialize(bin: bin, password: password, runAsPostgres: runAsPostgres)
        }
        if let port = runningPort() {
            logger.info("joining the embedded PostgreSQL already running on 127.0.0.1:\(port)")
            return Running(settings: settings(port: port, password: password), startedHere: false)
        }
        let port = try freePort()
        if !FileManager.default.fileExists(atPath: logFile.path) {
            _ = FileManager.default.createFile(atPath: logFile.path, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        if runAsPostgres { try run("/bin/chown", ["postgres", logFile.path]) }
        try runPG(bin.appendingPathComponent("pg_ctl").path, [
            "-D", clusterDirectory.path, "-l", logFile.path, "-w", "-t", "60",
            "-o", "-c listen_addresses=127.0.0.1 -c port=\(port) -c unix_socket_directories='' -c max_connections=200",
            "start",
        ], asPostgres: runAsPostgres)
        logger.info("started the embedded PostgreSQL on 127.0.0.1:\(port) (\(clusterDirectory.path))")
        return Running(settings: settings(port: port, password: password), startedHere: true)
    }

    /// Stops the cluster (fast shutdown: open transactions roll back, committed data stays).
    public func stop() {
        guard let bin = try? Self.binaries() else { return }
        do {
            try runPG(bin.appendingPathComponent("pg_ctl").path,
                      ["-D", clusterDirectory.path, "-m", "fast", "-w", "stop"], asPostgres: getuid() == 0)
            logger.info("stopped the embedded PostgreSQL")
        } catch {
            logger.warning("could not stop the embedded PostgreSQL: \(error)")
        }
    }

    private func settings(port: Int, password: String) -> DatabaseSettings {
        DatabaseSettings(host: "127.0.0.1", port: port, username: Self.username, password: password, database: Self.database)
    }

    private func initialize(bin: URL, password: String, runAsPostgres: Bool) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: clusterDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let pwfile = dataFolder.url.appendingPathComponent(".initdb-pw")
        _ = fm.createFile(atPath: pwfile.path, contents: Data(password.utf8), attributes: [.posixPermissions: 0o600])
        defer { try? fm.removeItem(at: pwfile) }
        if runAsPostgres {
            try run("/bin/chown", ["-R", "postgres", clusterDirectory.path, pwfile.path])
        }
        logger.info("creating the embedded PostgreSQL cluster in \(clusterDirectory.path)")
        try runPG(bin.appendingPathComponent("initdb").path, [
            "-D", clusterDirectory.path, "-U", Self.username, "--pwfile", pwfile.path,
            "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--no-instructions",
        ], asPostgres: runAsPostgres)
    }

    /// The port of a cluster already running from this folder (its postmaster.pid names it).
    private func runningPort() -> Int? {
        let pidFile = clusterDirectory.appendingPathComponent("postmaster.pid")
        guard let text = try? String(contentsOf: pidFile, encoding: .utf8) else { return nil }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count > 3, let pid = Int32(lines[0]), kill(pid, 0) == 0, let port = Int(lines[3]) else { return nil }
        return port
    }

    private func freePort() throws -> Int {
        let candidates = preferredPort.map { [$0] } ?? Array(54329...54400)
        for port in candidates where Self.isFree(port) { return port }
        throw Problem(description: "no free port for the embedded PostgreSQL (tried \(candidates.first!)...\(candidates.last!))")
    }

    static func isFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return result == 0
    }

    /// Where the server binaries are: `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`.
    static func binaries() throws -> URL {
        let fm = FileManager.default
        if let out = try? capture("/usr/bin/env", ["pg_config", "--bindir"]),
           fm.isExecutableFile(atPath: out + "/initdb"), fm.isExecutableFile(atPath: out + "/pg_ctl") {
            return URL(fileURLWithPath: out)
        }
        let root = "/usr/lib/postgresql"
        let versions = ((try? fm.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted(by: >)
        for version in versions where fm.isExecutableFile(atPath: "\(root)/\(version)/bin/initdb") {
            return URL(fileURLWithPath: "\(root)/\(version)/bin")
        }
        throw Problem(description: """
            PostgreSQL server binaries (initdb, pg_ctl) not found: install them with `apt-get install -y postgresql`, \
            or set DATABASE_URL to use an existing server.
            """)
    }

    private func runPG(_ path: String, _ arguments: [String], asPostgres: Bool) throws {
        if asPostgres {
            try run("/sbin/runuser", ["-u", "postgres", "--", path] + arguments)
        } else {
            try run(path, arguments)
        }
    }

    private func run(_ path: String, _ arguments: [String]) throws {
        // Output goes to a file, not a pipe: `pg_ctl start` leaves the server holding its stdout,
        // so a pipe would never reach end-of-file. posix_spawn + waitpid rather than Foundation's
        // Process, which can miss the exit of a child whose own child lives on.
        let outputFile = FileManager.default.temporaryDirectory.appendingPathComponent("insforge-pg-\(UUID().uuidString).out")
        defer { try? FileManager.default.removeItem(at: outputFile) }
        let status = try Self.spawnAndWait(path, arguments, output: outputFile.path)
        let text = (try? String(contentsOf: outputFile, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw Problem(description: "\(URL(fileURLWithPath: path).lastPathComponent) \(arguments.prefix(3).joined(separator: " ")) failed: \(text.suffix(800))")
        }
    }

    /// Runs a program with stdout and stderr sent to `output`; returns its exit status.
    static func spawnAndWait(_ path: String, _ arguments: [String], output: String) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard spawned == 0 else { throw Problem(description: "cannot run \(path): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    private static func capture(_ path: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
