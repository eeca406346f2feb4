import Actors
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import Prometheus
import Projections
import ServiceLifecycle

/// The server's parts, shared by `serve` and the command-line tools.
public struct ServerCore: Sendable {
    public let configuration: ServerConfiguration
    public let database: Database
    public let store: EventStore
    public let box: SecretBox
    public let keys: KeyRing
    public let issuer: KeyIssuer
    public let runners: [ProjectionRunner]
    /// The HS256 key of access tokens (and the root of the other derived auth keys).
    public let jwtSecret: String

    /// Loads secrets (generating them once into the data folder) and wires the store, keys and runners.
    public init(configuration: ServerConfiguration, database: Database, logger: Logger) throws {
        let folder = DataFolder(configuration.dataDirectory)
        let jwtSecret = try configuration.jwtSecret ?? folder.secret("jwt-secret") { DataFolder.randomHex(bytes: 32) }
        self.configuration = configuration
        self.database = database
        self.jwtSecret = jwtSecret
        let store = EventStore(client: database.client, inlineProjections: ProjectionCatalog.inline, logger: logger,
                               pollInterval: configuration.eventPollInterval)
        self.store = store
        // ENCRYPTION_KEY when set (it must differ from the JWT secret); else a key derived from the JWT
        // secret for this purpose alone, the same on every node that shares it. Boxes sealed before key ids
        // (with the JWT secret itself) and under rotated keys still open.
        self.box = SecretBox(passphrase: configuration.encryptionKey ?? "insforge secrets at rest\n" + jwtSecret,
                             previous: configuration.previousEncryptionKeys + [jwtSecret])
        self.keys = KeyRing()
        self.issuer = KeyIssuer(store: store, box: box, keys: keys, configuredAdminKey: configuration.accessAPIKey,
                                rotationGrace: configuration.keyRotationGrace,
                                adminKeyFile: configuration.accessAPIKey == nil ? folder.url.appendingPathComponent("admin-key") : nil,
                                logger: logger)
        self.runners = ProjectionCatalog.async.map { ProjectionRunner(projection: $0, store: store, logger: logger) }
    }
}

/// The version reported by `/api/health` and the OpenAPI document.
public let serverVersion = "0.1.0"

/// Builds the HTTP application: middleware, every controller, and the services it runs
/// (the pool, the event store, the projection runners, the key-ring follower).
public func buildApplication(core: ServerCore, registry: PrometheusCollectorRegistry, logger: Logger) async throws
    -> some ApplicationProtocol {
    let configuration = core.configuration
    let accessTokens = await AccessTokens(secret: core.jwtSecret)
    let auth = try await AuthService.make(core: core, accessTokens: accessTokens, logger: logger)
    let oauth = OAuthFlow(auth: auth, environment: configuration.oauthEnvironment, client: OAuthClient(), box: core.box,
                          secret: core.jwtSecret)
    let router = Router(context: AppRequestContext.self)
    router.add(middleware: RequestIDMiddleware())
    router.add(middleware: ClientAddressMiddleware(trusted: configuration.trustedProxies.compactMap(ClientAddress.Block.init)))
    router.add(middleware: CORSPolicyMiddleware(
        allowHeaders: ["Accept", "Authorization", "Content-Type", "Origin", "x-api-key", "X-Request-Id", "Idempotency-Key",
                       "Range", "Prefer", "X-CSRF-Token", "Accept-Profile", "Content-Profile", "X-Client-Info",
                       "If-None-Match", "If-Range"],
        allowMethods: [.get, .post, .put, .patch, .delete, .head, .options],
        exposeHeaders: ["Content-Range", "Preference-Applied", "X-Request-Id", "Retry-After", "RateLimit-Limit",
                        "RateLimit-Remaining", "RateLimit-Reset", "ETag", "Content-Disposition", "Content-Length",
                        "Accept-Ranges", "Last-Modified"],
        origins: CredentialedOrigins(configured: configuration.corsOrigins, ownOrigin: auth.publicBaseURL,
                                     redirectPatterns: { try await auth.settings().allowedRedirectUrls })))
    router.add(middleware: MetricsMiddleware())
    router.add(middleware: ErrorMiddleware())
    let credentials = CredentialsMiddleware(keys: core.keys, tokens: accessTokens)
    router.add(middleware: credentials)
    let channels = RealtimeChannels(store: core.store, box: core.box, logger: logger)
    let hub = SocketHub(store: core.store, sink: SocketSink(), logger: logger)
    let realtime = RealtimeServer(
        credentials: credentials,
        engineConfiguration: .init(pingInterval: configuration.realtimePingInterval, pingTimeout: configuration.realtimePingTimeout,
                                   maxPayload: configuration.realtimeMaxPayload),
        messaging: RealtimeMessaging(hub: hub, channels: channels, publishRate: configuration.realtimePublishRate, logger: logger),
        sessionLimits: configuration.realtimeSessionLimits)

    let routes = RouteTable(router: router)
    HealthController(version: serverVersion, registry: registry).register(routes)
    KeysController(issuer: core.issuer).register(routes)
    EventsController(store: core.store, runners: core.runners).register(routes)
    AuthController(auth: auth).register(routes)
    AdminAuthController(auth: auth).register(routes)
    EmailAuthController(auth: auth).register(routes)
    AuthConfigController(auth: auth, oauth: oauth).register(routes)
    OAuthController(auth: auth, flow: oauth).register(routes)
    let schemaCache = SchemaCache(client: core.database.client)
    TablesController(client: core.database.client,
                     commands: TableCommands(client: core.database.client, schema: schemaCache, channels: channels, logger: logger))
        .register(routes)
    let logins = await core.database.prepareLogins(["project_admin", "insforge_sql", "insforge_authenticator", "insforge_admin_login"],
                                                   secret: core.jwtSecret)
    RawSQLController(database: core.database, login: logins["project_admin"], unrestrictedLogin: logins["insforge_sql"],
                     schema: schemaCache, sequencer: core.store.sequencer, logger: logger).register(routes)
    let callers = core.database.makeCallersClient(configuration, login: logins["insforge_authenticator"])
    let admins = core.database.makeAdminsClient(configuration, login: logins["insforge_admin_login"])
    RecordsController(client: admins, callers: callers, maxRows: configuration.recordsMaxRows,
                      schema: schemaCache, sequencer: core.store.sequencer, logger: logger).register(routes)
    realtime.register(routes)
    RealtimeController(channels: channels).register(routes)
    DeliveriesController(client: core.database.client).register(routes)
    let webhooks = WebhookDispatcher(
        store: core.store, channels: channels,
        transport: WebhookHTTPTransport(policy: DestinationPolicy(allowPrivate: configuration.webhookAllowPrivate)),
        options: .init(schedule: configuration.webhookSchedule, timeout: configuration.webhookTimeout), logger: logger)
    let storage = StorageService(store: core.store, provider: try makeStorageProvider(configuration, logger: logger),
                                 defaultMaxFileSize: configuration.maxFileSize, links: DownloadLinks(secret: core.jwtSecret), logger: logger)
    StorageController(storage: storage, baseURL: configuration.apiBaseURL).register(routes)
    let keyIssuer = core.issuer, baseURL = configuration.apiBaseURL
    let secrets = SecretCommands(store: core.store, box: core.box, reserved: { key in
        switch key {
        case "API_KEY": try await keyIssuer.currentKey(.admin)
        case "ANON_KEY": try await keyIssuer.currentKey(.anon)
        case "INSFORGE_BASE_URL": baseURL
        default: nil
        }
    }, logger: logger)
    SecretsController(commands: secrets).register(routes)
    let sweeper = OrphanSweeper(blobs: storage.provider, client: storage.client, grace: configuration.storageOrphanGrace,
                                interval: configuration.storageSweepInterval, logger: logger)
    OpenAPIController(version: serverVersion).register(routes)

    var app = Application(
        router: router,
        server: HTTPServerBuilder { responder in
            let idle = TimeAmount.nanoseconds(Int64(configuration.httpIdleTimeout / .nanoseconds(1)))
            return DeadlineHTTPChannel(inner: HTTP1WebSocketUpgradeChannel(
                responder: responder,
                configuration: .init(http1: .init(idleTimeout: idle),
                                     ws: .init(maxFrameSize: configuration.realtimeMaxPayload, autoPing: .disabled))
            ) { request, channel, _ in
                guard let handshake = realtime.webSocketHandshake(request) else { return .dontUpgrade }
                return .upgrade([:]) { inbound, outbound, _ in
                    try await realtime.runWebSocket(handshake, channel: channel, inbound: inbound, outbound: outbound)
                }
            }, headLimit: idle)
        },
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "insforge"),
        services: [core.database.client, callers, admins, core.store] + core.runners.map { $0 as any Service }
            + followers(core, users: auth.directory.cache, schema: schemaCache, logger: logger) + [hub, webhooks, sweeper],
        logger: logger)
    let issuer = core.issuer
    app.beforeServerStarts {
        try await issuer.ensureKeys()
        try await secrets.reseal()
    }
    return app
}

/// What each node keeps in memory from the log, whichever node appended: the key ring (`apikey-*`
/// events), the user cache (`user-*`) and the schema cache (DDL).
func followers(_ core: ServerCore, users: UserCache, schema: SchemaCache, logger: Logger) -> [any Service] {
    let (store, keys) = (core.store, core.keys)
    let ddl: Set<String> = [TableCreated.type, TableAltered.type, TableDropped.type, RawSQLExecuted.type]
    return [
        LogFollower("key ring", store: store, filter: EventFilter(category: "apikey"), logger: logger) {
            try await keys.reload(from: store.client)
        } apply: { _ in
            try await keys.reload(from: store.client)
        },
        LogFollower("user cache", store: store, filter: EventFilter(category: "user"), logger: logger) {
            users.invalidateAll()  // whatever happened before the checkpoint is read again from the database
        } apply: { event in
            let id = event.streamId.dropFirst("user-".count)
            if let uuid = UUID(uuidString: String(id)) { users.invalidate(uuid) } else { users.invalidateAll() }
        },
        LogFollower("schema cache", store: store, filter: EventFilter(types: ddl), logger: logger) {
            try await schema.reload()
        } apply: { _ in
            try await schema.reload()
        },
    ]
}
