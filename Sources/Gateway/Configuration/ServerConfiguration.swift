import Actors
import Foundation

/// Everything the server reads from its environment, read once at start-up (InsForge's variable names; docs/configuration.md lists them).
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
    /// `ENCRYPTION_KEYS_PREVIOUS`: comma-separated keys `ENCRYPTION_KEY` replaced; what they sealed still opens.
    public var previousEncryptionKeys: [String]
    /// `API_BASE_URL`: absolute URLs in responses.
    public var apiBaseURL: String?
    public var logLevel: String
    /// `DB_POOL_SIZE`: connections requests share (the server's long-lived ones come on top).
    public var databasePoolSize: Int
    /// `CORS_ORIGINS`: comma-separated origins (globs allowed) that may send credentials; nil: this server's
    /// own origin plus the origins of the auth settings' `allowedRedirectUrls` (localhost while that is empty).
    public var corsOrigins: [String]?
    /// `RECORDS_MAX_ROWS` (1000, as Supabase; 0 for no bound): most rows one records or RPC response holds.
    public var recordsMaxRows: Int?
    /// `TRUSTED_PROXIES`: comma-separated addresses or blocks (`10.0.0.0/8`) of reverse proxies whose
    /// `X-Forwarded-For` names the client (for rate limits and session caps). Empty: the peer is the client.
    public var trustedProxies: [String]
    /// `REALTIME_MAX_SESSIONS` (10,000) and `REALTIME_MAX_SESSIONS_PER_IP` (500, IPv6 per /64).
    public var realtimeSessionLimits: (total: Int, perAddress: Int)
    /// `HTTP_IDLE_TIMEOUT_SECONDS` (default 30): a connection that sends nothing for this long, also one whose
    /// request head never completes (slowloris), is closed.
    public var httpIdleTimeout: Duration
    /// `CALLER_POOL_SIZE`: connections for records requests of `anon` and `authenticated` (default `DB_POOL_SIZE`).
    public var callerPoolSize: Int
    /// `CALLER_STATEMENT_TIMEOUT_MS`: how long such a request's statement may run (default 8 s).
    public var callerStatementTimeout: Duration
    /// How long a reader waits for NOTIFY before it polls the log anyway.
    public var eventPollInterval: Duration
    /// Socket.IO heartbeat: the server pings every interval; a client silent for the timeout after
    /// a ping is disconnected. `maxPayload` bounds a polling body or a WebSocket message.
    public var realtimePingInterval: Duration
    public var realtimePingTimeout: Duration
    public var realtimeMaxPayload: Int
    /// `REALTIME_PUBLISH_RATE` (messages a second per socket, default 100) and `REALTIME_PUBLISH_BURST`
    /// (default 200): a socket past its budget gets `REALTIME_RATE_LIMITED` instead of a publish.
    public var realtimePublishRate: TokenBucket.Rate
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
    /// `MAX_FILE_SIZE`: largest object, in bytes (or with a KB/MB/GB suffix); default 10 MB. Admins can change it at run time.
    public var maxFileSize: Int64
    /// S3 (or S3-compatible) object storage; nil: the local folder `STORAGE_DIR`.
    public var s3: S3Settings?
    /// `STORAGE_ORPHAN_GRACE_SECONDS`: how old unreferenced bytes must be before the sweep removes them (default 2 h;
    /// longer than a presigned upload may take before its confirmation).
    public var storageOrphanGrace: Duration
    /// `STORAGE_SWEEP_INTERVAL_SECONDS`: how often the orphan sweep runs (default 10 min).
    public var storageSweepInterval: Duration

    /// Where objects go when `AWS_S3_BUCKET` and credentials are set.
    public struct S3Settings: Sendable, Equatable {
        /// `AWS_S3_BUCKET`.
        public var bucket: String
        /// `AWS_REGION` (default us-east-1).
        public var region: String
        public var accessKeyId: String
        public var secretAccessKey: String
        /// `AWS_SESSION_TOKEN`, for temporary credentials.
        public var sessionToken: String?
        /// `AWS_ENDPOINT_URL` (or `S3_ENDPOINT_URL`): an S3-compatible service, addressed path-style.
        public var endpoint: String?
        /// `AWS_S3_PREFIX`: a folder in the bucket for this server's objects (default none).
        public var prefix: String
        /// `AWS_CLOUDFRONT_URL`, `AWS_CLOUDFRONT_KEY_PAIR_ID`, `AWS_CLOUDFRONT_PRIVATE_KEY` (PEM, or a path to one):
        /// downloads through CloudFront signed URLs.
        public var cloudFront: CloudFrontSettings?
    }

    public struct CloudFrontSettings: Sendable, Equatable {
        public var url: String
        public var keyPairId: String
        public var privateKeyPEM: String
    }

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

    /// `DB_POOL_SIZE` when unset: two connections per core, at least 4. PostgreSQL does more work with
    /// few busy connections than with many (on 2 cores, pgbench ran the records statements 1.6-2.2x
    /// faster from 4 to 8 clients than from 64); requests beyond the pool wait for a connection
    /// instead of adding contention.
    public static var defaultPoolSize: Int { max(4, 2 * ProcessInfo.processInfo.activeProcessorCount) }

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
        func byteCount(_ key: String, default fallback: Int64) throws -> Int64 {
            guard let text = value(key)?.uppercased().replacingOccurrences(of: " ", with: "") else { return fallback }
            let units: [(String, Int64)] = [("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10), ("B", 1), ("", 1)]
            for (suffix, unit) in units where text.hasSuffix(suffix) {
                if let number = Int64(text.dropLast(suffix.count)), number > 0, number <= (1 << 40) / unit { return number * unit }
                break
            }
            throw Problem(description: "\(key) must be a size in bytes (or with KB, MB or GB), got \(text)")
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
        for proxy in (value("TRUSTED_PROXIES") ?? "").split(separator: ",") where ClientAddress.Block(String(proxy)) == nil {
            throw Problem(description: "TRUSTED_PROXIES: \(proxy.trimmingCharacters(in: .whitespaces)) is not an address or an address block")
        }
        if let secret = value("JWT_SECRET"), secret.utf8.count < 32 {
            throw Problem(description: "JWT_SECRET must be at least 32 characters (HS256 keys shorter than that are refused)")
        }
        if let key = value("ENCRYPTION_KEY"), key == value("JWT_SECRET") {
            throw Problem(description: "ENCRYPTION_KEY must differ from JWT_SECRET (one leaked secret must not open the other's)")
        }
        if let key = value("ENCRYPTION_KEY"), key.utf8.count < 32 {
            throw Problem(description: "ENCRYPTION_KEY must be at least 32 characters")
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
            previousEncryptionKeys: (value("ENCRYPTION_KEYS_PREVIOUS") ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty },
            apiBaseURL: value("API_BASE_URL"),
            logLevel: value("LOG_LEVEL") ?? "info",
            databasePoolSize: try int("DB_POOL_SIZE", default: defaultPoolSize, range: 2...500),
            corsOrigins: value("CORS_ORIGINS").map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } },
            recordsMaxRows: try int("RECORDS_MAX_ROWS", default: 1000, range: 0...100_000_000).nonZero,
            trustedProxies: (value("TRUSTED_PROXIES") ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty },
            realtimeSessionLimits: (try int("REALTIME_MAX_SESSIONS", default: 10_000, range: 1...10_000_000),
                                    try int("REALTIME_MAX_SESSIONS_PER_IP", default: 500, range: 1...10_000_000)),
            httpIdleTimeout: .seconds(try int("HTTP_IDLE_TIMEOUT_SECONDS", default: 30, range: 1...3_600)),
            callerPoolSize: try int("CALLER_POOL_SIZE", default: try int("DB_POOL_SIZE", default: defaultPoolSize, range: 2...500), range: 1...500),
            callerStatementTimeout: .milliseconds(try int("CALLER_STATEMENT_TIMEOUT_MS", default: 8_000, range: 100...3_600_000)),
            eventPollInterval: .milliseconds(try int("EVENT_POLL_INTERVAL_MS", default: 1000, range: 10...60_000)),
            realtimePingInterval: .milliseconds(try int("REALTIME_PING_INTERVAL_MS", default: 25_000, range: 500...600_000)),
            realtimePingTimeout: .milliseconds(try int("REALTIME_PING_TIMEOUT_MS", default: 20_000, range: 500...600_000)),
            realtimeMaxPayload: try int("REALTIME_MAX_PAYLOAD", default: 1_000_000, range: 1_024...100_000_000),
            realtimePublishRate: .init(perSecond: Double(try int("REALTIME_PUBLISH_RATE", default: 100, range: 1...1_000_000)),
                                       burst: Double(try int("REALTIME_PUBLISH_BURST", default: 200, range: 1...1_000_000))),
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
            oauthEnvironment: oauthEnvironment,
            maxFileSize: try byteCount("MAX_FILE_SIZE", default: 10 << 20),
            s3: try s3Settings(value),
            storageOrphanGrace: .seconds(try int("STORAGE_ORPHAN_GRACE_SECONDS", default: 7200, range: 1...2_592_000)),
            storageSweepInterval: .seconds(try int("STORAGE_SWEEP_INTERVAL_SECONDS", default: 600, range: 1...86_400))
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

extension ServerConfiguration {
    /// S3 settings from the environment: set when `AWS_S3_BUCKET` is; then the credentials must be too.
    static func s3Settings(_ value: (String) -> String?) throws -> S3Settings? {
        guard let bucket = value("AWS_S3_BUCKET") else { return nil }
        guard let accessKeyId = value("AWS_ACCESS_KEY_ID"), let secret = value("AWS_SECRET_ACCESS_KEY") else {
            throw Problem(description: "AWS_S3_BUCKET is set: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are needed too")
        }
        let endpoint = value("AWS_ENDPOINT_URL") ?? value("S3_ENDPOINT_URL")
        if let endpoint, URL(string: endpoint)?.host == nil || !(endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://")) {
            throw Problem(description: "AWS_ENDPOINT_URL must be an http(s) URL, got \(endpoint)")
        }
        var cloudFront: CloudFrontSettings?
        if let url = value("AWS_CLOUDFRONT_URL"), let keyPairId = value("AWS_CLOUDFRONT_KEY_PAIR_ID"),
           let key = value("AWS_CLOUDFRONT_PRIVATE_KEY") {
            let pem = key.contains("-----BEGIN") ? key.replacingOccurrences(of: "\\n", with: "\n")
                : try String(contentsOfFile: key, encoding: .utf8)
            cloudFront = CloudFrontSettings(url: url.hasSuffix("/") ? String(url.dropLast()) : url, keyPairId: keyPairId, privateKeyPEM: pem)
        }
        let prefix = (value("AWS_S3_PREFIX") ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        return S3Settings(bucket: bucket, region: value("AWS_REGION") ?? "us-east-1", accessKeyId: accessKeyId, secretAccessKey: secret,
                          sessionToken: value("AWS_SESSION_TOKEN"), endpoint: endpoint.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 },
                          prefix: prefix, cloudFront: cloudFront)
    }
}

extension Int {
    /// nil for 0 (settings where 0 means "no bound").
    var nonZero: Int? { self == 0 ? nil : self }
}
