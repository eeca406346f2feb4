import EventStore
import Foundation
import Logging
import NIOPosix
import PostgresNIO

/// A fresh, migrated database on the test server (`TEST_DATABASE_URL`, an admin URL), dropped afterwards.
public struct TestDatabase: Sendable {
    public let name: String
    public let host: String
    public let port: Int
    public let username: String
    public let password: String?
    public static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    static var adminURL: URLComponents {
        URLComponents(string: ProcessInfo.processInfo.environment["TEST_DATABASE_URL"]
                      ?? "postgres://postgres@127.0.0.1:55432/postgres")!
    }

    /// The URL of this database (for a server process).
    public var url: String {
        "postgres://\(username)\(password.map { ":\($0)" } ?? "")@\(host):\(port)/\(name)"
    }

    /// Creates a database, runs `body` with a running pool on it (migrations applied), then drops it.
    public static func with<T: Sendable>(
        migrate: Bool = true, poolSize: Int = 8,
        _ body: @Sendable @escaping (PostgresClient, TestDatabase) async throws -> T
    ) async throws -> T {
        let admin = adminURL
        let db = TestDatabase(name: "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(20).lowercased(),
                              host: admin.host ?? "127.0.0.1", port: admin.port ?? 5432,
                              username: admin.user ?? "postgres", password: admin.password)
        try await db.admin { try await $0.query("CREATE DATABASE \(unescaped: db.name)", logger: logger) }
        let client = db.makeClient(poolSize: poolSize)
        do {
            let result = try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask { await client.run(); return nil }
                defer { group.cancelAll() }
                if migrate { try await Migrator(logger: logger).migrate(client) }
                group.addTask { try await body(client, db) }
                while let r = try await group.next() { if let r { return r } }
                throw CancellationError()
            }
            try? await db.drop()
            return result
        } catch {
            try? await db.drop()
            throw error
        }
    }

    /// A pool on this database (the caller runs it).
    public func makeClient(poolSize: Int = 8) -> PostgresClient {
        var configuration = PostgresClient.Configuration(host: host, port: port, username: username, password: password,
                                                         database: name, tls: .disable)
        configuration.options.maximumConnections = poolSize
        return PostgresClient(configuration: configuration, backgroundLogger: Self.logger)
    }

    /// One connection of its own on this database.
    public func connect() async throws -> PostgresConnection {
        try await PostgresConnection.connect(
            on: MultiThreadedEventLoopGroup.singleton.next(),
            configuration: .init(host: host, port: port, username: username, password: password, database: name, tls: .disable),
            id: Int.random(in: 1000...100_000), logger: Self.logger).get()
    }

    private func drop() async throws {
        try await admin { try await $0.query("DROP DATABASE IF EXISTS \(unescaped: name) WITH (FORCE)", logger: Self.logger) }
    }

    private func admin(_ body: (PostgresConnection) async throws -> Void) async throws {
        let admin = Self.adminURL
        let connection = try await PostgresConnection.connect(
            on: MultiThreadedEventLoopGroup.singleton.next(),
            configuration: .init(host: host, port: port, username: username, password: password,
                                 database: String(admin.path.dropFirst()).isEmpty ? "postgres" : String(admin.path.dropFirst()),
                                 tls: .disable),
            id: 1, logger: Self.logger).get()
        do { try await body(connection) } catch { try? await connection.close().get(); throw error }
        try await connection.close().get()
    }
}

/// Runs `body` with an event store (and its pool) running on a fresh database.
public func withEventStore<T: Sendable>(
    inline: [any Projection] = [], pollInterval: Duration = .milliseconds(200),
    _ body: @Sendable @escaping (EventStore, TestDatabase) async throws -> T
) async throws -> T {
    try await TestDatabase.with { client, db in
        let store = EventStore(client: client, inlineProjections: inline, logger: TestDatabase.logger, pollInterval: pollInterval)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await store.run(); return nil }
            defer { group.cancelAll() }
            group.addTask { try await body(store, db) }
            while let r = try await group.next() { if let r { return r } }
            throw CancellationError()
        }
    }
}

/// Decodes the first column of the first row as `T`.
public func scalar<T: PostgresDecodable>(_ client: PostgresClient, _ query: PostgresQuery, as: T.Type = T.self) async throws -> T {
    for try await value in try await client.query(query).decode(T.self) { return value }
    throw PostgresDecodingError.Code.missingData
}

/// Polls `condition` until true or `timeout` passes.
public func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(25))
    }
    return try await condition()
}
