import Foundation

/// Everything the server reads from its environment, read once at start-up (API.md names).
/// The rest of the code never reads the environment.
public struct ServerConfiguration: Sendable {
    /// How to reach PostgreSQL.
    public enum DatabaseSource: Sendable, Equatable {
        /// Our own cluster under `<dataDir>/postgres` (nothing configured).
        case embedded(port: Int?)
        /// An existing server.
        case external(DatabaseSettings)
    }

    public var host: String
    public var port: Int
    public var database: DatabaseSource
    public var dataDirectory: URL
    public var storageDirectory: URL
    public var logsDirectory: URL
    /// `ACCESS_API_KEY`: the admin key to use instead of a generated one.
    public var accessAPIKey: String?
    /// `JWT_SECRET`: HS256 key (>= 32 characters); generated and kept in the data folder when absent.
    public var jwtSecret: String?
    /// `ENCRYPTION_KEY`: key for secrets at rest; falls back to the JWT secret.
    public var encryptionKey: String?
    /// `API_BASE_URL`: absolute URLs in responses.
    public var apiBaseURL: String?
    public var logLevel: String
    public var databasePoolSize: Int
    /// How long a reader waits for NOTIFY before it polls the log anyway.
    public var eventPollInterval: Duration
    /// Socket.IO heartbeat: the server pings every interval; a client silent for the timeout after
    /// a ping is disconnected. `maxPayload` bounds a polling body or a WebSocket message.
    public var realtimePingInterval: Duration
    public var realtimePingTimeout: Duration
    public var realtimeMaxPayload: Int
    /// Webhook retries (`REALTIME_WEBHOOK_RETRY_SCHEDULE`, default `0,5s,5m,30m,2h,5h,10h`, +-10% jitter).
    var webhookSchedule: RetrySchedule
    /// `REALTIME_WEBHOOK_TIMEOUT_MS` (default 10 s).
    public var webhookTimeout: Duration
    /// `REALTIME_WEBHOOK_ALLOW_PRIVATE`: may webhooks reach loopback and private addresses? Default no,
    /// except when `NODE_ENV` (or `ENVIRONMENT`) is `development`.
    public var webhookAllowPrivate: Bool
    /// How long a rotated key stays valid.
    public var keyRotationGrace: Duration
    /// `ADMIN_EMAIL` (or `ROOT_ADMIN_USERNAME`): the admin's sign-in name; none means no password sign-in for the admin.
    public var adminEmail: String?
    /// `ADMIN_PASSWORD` (or `ROOT_ADMIN_PASSWORD`).
    public var adminPassword: String?
    /// `BCRYPT_COST` (10...15, default 10).
    public var bcryptCost: Int
    /// `RATE_LIMIT_AUTH_PER_MINUTE`: sign-in/sign-up/refresh/code attempts per IP and minute (default 60).
    public var authRateLimitPerMinute: Int
    /// `RATE_LIMIT_EMAIL_PER_HOUR`: auth e-mails per address and hour (default 10).
    public var emailRateLimitPerHour: Int
    /// `SMTP_HOST`, `SMTP_PORT`, `SMTP_USER`, `SMTP_PASSWORD`, `SMTP_FROM`, `SMTP_FROM_NAME`, `SMTP_CA_FILE`;
    /// nil when `SMTP_HOST` is not set (auth e-mails are then logged as not sent).
    public var smtp: SMTPSettings?
    /// The OAuth provider variables (`<PROVIDER>_CLIENT_ID`, `_CLIENT_SECRET`, `_AUTHORIZE_URL`, ...), as given.
    public var oauthEnvironment: [String: String]

    /// Where to send e-mail.
    public struct SMTPSettings: Sendable, Equatable {
        public var host: String
        public var port: Int
        public var username: String?
        public var password: String?
        public var from: String
        public var fromName: String?
        public var caFile: String?
    }

    /// Why the environment cannot be used; printed as is.
    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads `environment` (default: the process's).
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment,
                                       workingDirectory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
        throws -> ServerConfiguration {
        func value(_ key: String) -> String? {
            guard let v = environment[key]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }
        func int(_ key: String, default fallback: Int, range: ClosedRange<Int>) throws -> Int {
            guard let raw = value(key) else { return fallback }
            guard let n = Int(raw), range.contains(n) else { throw Problem(description: "\(key) must be a whole number in \(range), got \(raw)") }
            return n
        }
        func folder(_ key: String, _ fallback: String) -> URL {
            URL(fileURLWithPath: value(key) ?? fallback, relativeTo: workingDirectory).standardizedFileURL
        }

        let dataDirectory = folder("DATA_DIR", "data")
        let database: DatabaseSource
        if let url = value("DATABASE_URL") {
            database = .external(try DatabaseSettings(url: url))
        } else if let host = value("POSTGRES_HOST") {
            database = .external(DatabaseSettings(
                host: host, port: try int("POSTGRES_PORT", default: 5432, range: 1...65535),
                username: value("POSTGRES_USER") ?? "postgres", password: value("POSTGRES_PASSWORD"),
                database: value("POSTGRES_DB") ?? "insforge"))
        } else {
            database = .embedded(port: value("EMBEDDED_POSTGRES_PORT") == nil
                                 ? nil : try int("EMBEDDED_POSTGRES_PORT", default: 54329, range: 1024...65535))
        }
        if let secret = value("JWT_SECRET"), secret.utf8.count < 32 {
            throw Problem(description: "JWT_SECRET must be at least 32 characters (HS256 keys shorter than that are refused)")
        }
        if let key = value("ACCESS_API_KEY"), !Credential.isAdminKeyShape(key) {
            throw Problem(description: "ACCESS_API_KEY must be ik_ followed by 64 hex digits")
        }
        let adminEmail = value("ADMIN_EMAIL") ?? value("ROOT_ADMIN_USERNAME")
        let adminPassword = value("ADMIN_PASSWORD") ?? value("ROOT_ADMIN_PASSWORD")
        if (adminEmail == nil) != (adminPassword == nil) {
            throw Problem(description: "ADMIN_EMAIL and ADMIN_PASSWORD must be set together")
        }
        if let password = adminPassword, password.utf8.count > 72 {
            throw Problem(description: "ADMIN_PASSWORD must be at most 72 bytes (bcrypt's limit)")
        }
        var smtp: SMTPSettings?
        if let host = value("SMTP_HOST") {
            smtp = SMTPSettings(host: host, port: try int("SMTP_PORT", default: 587, range: 1...65535), username: value("SMTP_USER"),
                                password: value("SMTP_PASSWORD"), from: value("SMTP_FROM") ?? "noreply@localhost",
                                fromName: value("SMTP_FROM_NAME"), caFile: value("SMTP_CA_FILE"))
        }
        let providerPrefixes = ["GOOGLE_", "GITHUB_", "MICROSOFT_", "DISCORD_", "LINKEDIN_", "X_", "APPLE_", "FACEBOOK_"]
        let oauthEnvironment = environment.filter { key, _ in providerPrefixes.contains { key.hasPrefix($0) } }
        var webhookSchedule = RetrySchedule.standard
        if let text = value("REALTIME_WEBHOOK_RETRY_SCHEDULE") {
            guard let schedule = RetrySchedule.parse(text) else {
                throw Problem(description: "REALTIME_WEBHOOK_RETRY_SCHEDULE must be a comma-separated list of delays such as 0,5s,5m,2h, got \(text)")
            }
            webhookSchedule = schedule
        }
        let development = [value("NODE_ENV"), value("ENVIRONMENT")].contains { $0?.lowercased() == "development" }
        var webhookAllowPrivate = development
        if let text = value("REALTIME_WEBHOOK_ALLOW_PRIVATE") {
            guard let flag = ["true": true, "1": true, "yes": true, "false": false, "0": false, "no": false][text.lowercased()] else {
                throw Problem(description: "REALTIME_WEBHOOK_ALLOW_PRIVATE must be true or false, got \(text)")
            }
            webhookAllowPrivate = flag
        }
        return ServerConfiguration(
            host: value("HOST") ?? "0.0.0.0",
            port: try int("PORT", default: 7130, range: 0...65535),
            database: database,
            dataDirectory: dataDirectory,
            storageDirectory: folder("STORAGE_DIR", dataDirectory.appendingPathComponent("storage").path),
            logsDirectory: folder("LOGS_DIR", "logs"),
            accessAPIKey: value("ACCESS_API_KEY"),
            jwtSecret: value("JWT_SECRET"),
            encryptionKey: value("ENCRYPTION_KEY"),
            apiBaseURL: value("API_BASE_URL"),
            logLevel: value("LOG_LEVEL") ?? "info",
            databasePoolSize: try int("DB_POOL_SIZE", default: 20, range: 2...500),
            eventPollInterval: .milliseconds(try int("EVENT_POLL_INTERVAL_MS", default: 1000, range: 10...60_000)),
            realtimePingInterval: .milliseconds(try int("REALTIME_PING_INTERVAL_MS", default: 25_000, range: 500...600_000)),
            realtimePingTimeout: .milliseconds(try int("REALTIME_PING_TIMEOUT_MS", default: 20_000, range: 500...600_000)),
            realtimeMaxPayload: try int("REALTIME_MAX_PAYLOAD", default: 1_000_000, range: 1_024...100_000_000),
            webhookSchedule: webhookSchedule,
            webhookTimeout: .milliseconds(try int("REALTIME_WEBHOOK_TIMEOUT_MS", default: 10_000, range: 100...120_000)),
            webhookAllowPrivate: webhookAllowPrivate,
            keyRotationGrace: .seconds(try int("KEY_ROTATION_GRACE_SECONDS", default: 86_400, range: 0...2_592_000)),
            adminEmail: adminEmail,
            adminPassword: adminPassword,
            bcryptCost: try int("BCRYPT_COST", default: 10, range: 10...15),
            authRateLimitPerMinute: try int("RATE_LIMIT_AUTH_PER_MINUTE", default: 60, range: 1...1_000_000),
            emailRateLimitPerHour: try int("RATE_LIMIT_EMAIL_PER_HOUR", default: 10, range: 1...1_000_000),
            smtp: smtp,
            oauthEnvironment: oauthEnvironment
        )
    }
}

/// Where an existing PostgreSQL server is.
public struct DatabaseSettings: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    /// `sslmode=require|verify-full` asks for TLS.
    public var requireTLS: Bool = false

    public init(host: String, port: Int, username: String, password: String?, database: String, requireTLS: Bool = false) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.requireTLS = requireTLS
    }

    /// Parses `postgres://user:password@host:port/db?sslmode=...`.
    public init(url: String) throws {
        guard let components = URLComponents(string: url),
              ["postgres", "postgresql"].contains(components.scheme ?? ""),
              let host = components.host, !host.isEmpty
        else { throw ServerConfiguration.Problem(description: "DATABASE_URL must look like postgres://user:password@host:5432/db") }
        self.host = host
        self.port = components.port ?? 5432
        self.username = components.user?.removingPercentEncoding ?? "postgres"
        self.password = components.password?.removingPercentEncoding
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        self.database = path.isEmpty ? "postgres" : path
        let sslmode = components.queryItems?.first { $0.name == "sslmode" }?.value ?? "disable"
        self.requireTLS = ["require", "verify-ca", "verify-full"].contains(sslmode)
    }
}
