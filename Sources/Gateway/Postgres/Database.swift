import Crypto
import EventStore
import Foundation
import Logging
import NIOPosix
import PostgresNIO
import Projections

/// The PostgreSQL this process uses: the configured server, or the embedded cluster
/// (started here and stopped by `close()` when this process started it).
public final class Database: Sendable {
    /// The server's pool: auth, the event log, admin requests, system work.
    public let client: PostgresClient
    public let settings: DatabaseSettings
    let embedded: EmbeddedPostgres?
    let logger: Logger

    /// Starts the embedded cluster when nothing is configured, makes sure the database exists, builds the pool.
    public static func open(_ configuration: ServerConfiguration, logger: Logger) async throws -> Database {
        switch configuration.database {
        case .external(let settings):
            return Database(client: makeClient(settings, poolSize: configuration.databasePoolSize, logger: logger),
                            settings: settings, embedded: nil, logger: logger)
        case .embedded(let port):
            let cluster = EmbeddedPostgres(dataFolder: DataFolder(configuration.dataDirectory), preferredPort: port, logger: logger)
            let running = try cluster.start()
            try await createDatabaseIfMissing(running.settings, logger: logger)
            return Database(client: makeClient(running.settings, poolSize: configuration.databasePoolSize, logger: logger),
                            settings: running.settings, embedded: running.startedHere ? cluster : nil, logger: logger)
        }
    }

    init(client: PostgresClient, settings: DatabaseSettings, embedded: EmbeddedPostgres?, logger: Logger) {
        self.client = client
        self.settings = settings
        self.embedded = embedded
        self.logger = logger
    }

    /// Stops the embedded cluster if this process started it.
    public func close() {
        embedded?.stop()
    }

    /// Connections the server holds for as long as it runs, on top of `DB_POOL_SIZE` (the connections
    /// requests share): one per async projection runner (it owns its projection through an advisory
    /// lock), the webhook dispatcher's (the same) and the log watcher's LISTEN. Counted inside the
    /// pool, a small pool was all held and the server never answered.
    static var heldConnections: Int { ProjectionCatalog.async.count + 2 }

    /// The pool records requests of `anon` and `authenticated` callers run on: `CALLER_POOL_SIZE`
    /// connections whose statements end after `CALLER_STATEMENT_TIMEOUT_MS`, so slow or many anonymous
    /// reads cannot take the connections sign-in and the log need. They log in as `login`
    /// (insforge_authenticator) when given, else as the server.
    public func makeCallersClient(_ configuration: ServerConfiguration, login: RoleLogin?) -> PostgresClient {
        makeRequestClient(poolSize: configuration.callerPoolSize, statementTimeout: configuration.callerStatementTimeout, login: login)
    }

    /// The pool admin records requests run on (`DB_POOL_SIZE` connections, no statement timeout), logged
    /// in as `login` (insforge_admin_login) when given, else as the server.
    public func makeAdminsClient(_ configuration: ServerConfiguration, login: RoleLogin?) -> PostgresClient {
        makeRequestClient(poolSize: configuration.databasePoolSize, statementTimeout: nil, login: login)
    }

    func makeRequestClient(poolSize: Int, statementTimeout: Duration?, login: RoleLogin?) -> PostgresClient {
        var settings = self.settings
        if let login {
            settings.username = login.role
            settings.password = login.password
        }
        var options = Self.clientConfiguration(settings)
        options.options.maximumConnections = poolSize
        options.options.minimumConnections = 1
        if let statementTimeout {
            options.options.additionalStartupParameters = [("statement_timeout", "\(statementTimeout / .milliseconds(1))")]
        }
        return PostgresClient(configuration: options, backgroundLogger: logger)
    }

    static func clientConfiguration(_ settings: DatabaseSettings) -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: settings.host, port: settings.port, username: settings.username, password: settings.password,
            database: settings.database, tls: settings.requireTLS ? .require(.makeClientConfiguration()) : .disable)
        configuration.options.connectTimeout = .seconds(10)
        return configuration
    }

    static func makeClient(_ settings: DatabaseSettings, poolSize: Int, logger: Logger) -> PostgresClient {
        var configuration = clientConfiguration(settings)
        configuration.options.maximumConnections = poolSize + heldConnections
        configuration.options.minimumConnections = 2
        return PostgresClient(configuration: configuration, backgroundLogger: logger)
    }

    /// How the restricted raw-SQL route logs in: as `project_admin` itself, with a password derived
    /// from the server's secret (the same on every node sharing it). nil when the role could not be
    /// given one (a server role without the right to): the route then switches role inside a pooled
    /// connection, as before.
    public struct RoleLogin: Sendable {
        public var role: String
        public var password: String
    }

    /// Gives each of `roles` LOGIN and a password derived from `secret` (the same on every node sharing
    /// it), on one connection. A role missing from the answer could not be given one (the server's role
    /// may not): its requests then switch role on the server's connections.
    public func prepareLogins(_ roles: [String], secret: String) async -> [String: RoleLogin] {
        var logins: [String: RoleLogin] = [:]
        do {
            try await withSingleConnection { connection in
                for role in roles {
                    let password = Self.derivedPassword(secret: secret, purpose: "\(role) login")
                    // Nodes starting together change the same cluster-wide role ("tuple concurrently updated"): retried.
                    for attempt in 1...5 {
                        do {
                            // The role is one of ours and the password hex, so both are safe to write into the
                            // statement (ALTER ROLE takes no parameters).
                            try await connection.query(PostgresQuery(unsafeSQL: "ALTER ROLE \(role) WITH LOGIN PASSWORD '\(password)'"),
                                                       logger: logger)
                            logins[role] = RoleLogin(role: role, password: password)
                            break
                        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "XX000" && attempt < 5 {
                            try? await Task.sleep(for: .milliseconds(50 * attempt))
                        } catch {
                            logger.warning("\(role) cannot be given a login; its requests switch role on the server's connections",
                                           metadata: ["error": "\(String(reflecting: error))"])
                            break
                        }
                    }
                }
            }
        } catch {
            logger.warning("no request role could be given a login", metadata: ["error": "\(String(reflecting: error))"])
        }
        return logins
    }

    static func derivedPassword(secret: String, purpose: String) -> String {
        HMAC<SHA256>.authenticationCode(for: Data(purpose.utf8), using: SymmetricKey(data: Data(secret.utf8)))
            .map { String(format: "%02x", $0) }.joined()
    }

    /// Runs `body` on a new connection that logs in as `login`, then closes it (nothing it set or
    /// prepared outlives the call).
    public func withLogin<T>(_ login: RoleLogin, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        var as_ = settings
        as_.username = login.role
        as_.password = login.password
        return try await Self.withConnection(as_, database: settings.database, logger: logger, body)
    }

    /// Runs `body` on one connection of its own (outside the pool), then closes it.
    public func withSingleConnection<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await Self.withConnection(settings, database: settings.database, logger: logger, body)
    }

    static func withConnection<T>(_ settings: DatabaseSettings, database: String, logger: Logger,
                                  _ body: (PostgresConnection) async throws -> T) async throws -> T {
        let configuration = PostgresConnection.Configuration(
            host: settings.host, port: settings.port, username: settings.username, password: settings.password,
            database: database, tls: settings.requireTLS ? .require(try .init(configuration: .makeClientConfiguration())) : .disable)
        let connection = try await PostgresConnection.connect(
            on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration, id: 1, logger: logger).get()
        do {
            let result = try await body(connection)
            try? await connection.close().get()
            return result
        } catch {
            try? await connection.close().get()
            throw error
        }
    }

    private static func createDatabaseIfMissing(_ settings: DatabaseSettings, logger: Logger) async throws {
        try await withConnection(settings, database: "postgres", logger: logger) { connection in
        var exists = false
        for try await _ in try await connection.query("SELECT 1 FROM pg_database WHERE datname = \(settings.database)", logger: logger) {
            exists = true
        }
        if !exists {
            try await connection.query("CREATE DATABASE \(unescaped: SQLIdentifier.quote(settings.database))", logger: logger)
        }
        }
    }
}
