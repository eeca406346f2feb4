import AsyncHTTPClient
import EventStore
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
import ServiceLifecycle

/// Posts the webhook outbox, once per cluster.
///
/// Ownership is a session advisory lock held on the connection the dispatcher works on (as for
/// projection runners): when the owning process dies its connection goes, and another node's
/// dispatcher takes over. The owner moves new outbox rows into `realtime.webhook_deliveries`
/// (pending, due now) with a cursor kept in `realtime.webhook_dispatcher`, then posts what is due: the
/// deliveries of one URL one after another in log order, different URLs in parallel. Order per URL
/// is strict: a delivery waiting for its retry holds back the later ones to its URL (until it is
/// delivered, exhausted or disabled); other URLs are not affected. Every attempt
/// is recorded; a failure is retried on the schedule (or after `Retry-After`), 410 takes the URL
/// off its channel, and a delivery out of attempts is kept as `exhausted` for an admin to re-send.
/// State lives in the database, so a restart (even `kill -9`) resumes where it was; a delivery
/// whose outcome was not recorded before a crash is sent again (receivers dedupe on `webhook-id`).
actor WebhookDispatcher: Service {
    struct Options: Sendable {
        var schedule = RetrySchedule.standard
        var timeout: Duration = .seconds(10)
        var destinations = DestinationPolicy(allowPrivate: false)
        /// Most deliveries taken per round.
        var batchSize = 1000
        /// Most URLs posted to at once.
        var parallelURLs = 32
        var ownershipRetry: Duration = .seconds(1)
    }

    /// One due delivery with what its request needs.
    struct Due: Sendable {
        var id: UUID
        var messageId: UUID
        var channelId: UUID?
        var channel: String
        var event: String
        var url: String
        var body: String
        var attempts: Int
    }

    /// What one attempt came to.
    struct Outcome: Sendable {
        var id: UUID
        var attempt: Int
        var startedAt: Date
        var milliseconds: Double
        var statusCode: Int?
        var error: String?
        var retryAfter: Duration?
        var delivered: Bool { statusCode.map { (200..<300).contains($0) } ?? false }
        var gone: Bool { statusCode == 410 }
    }

    static let lockKey: Int64 = 0x5745_4248_4f4f_4b53  // "WEBHOOKS"

    let store: EventStore
    let channels: RealtimeChannels
    /// The client for destinations that are not pinned (private ones allowed): never follows redirects.
    /// Made on first use and shut down when `run` ends, like the pinned ones.
    private var http: HTTPClient?
    let options: Options
    let logger: Logger
    private(set) var isOwner = false
    /// Each host's verdict, kept a minute, with the client that connects to the vetted address.
    private var hostChecks: [String: (verdict: DestinationPolicy.Verdict, client: HTTPClient?, at: ContinuousClock.Instant)] = [:]

    init(store: EventStore, channels: RealtimeChannels, options: Options, logger: Logger) {
        self.store = store
        self.channels = channels
        self.options = options
        var logger = logger
        logger[metadataKey: "component"] = "webhooks"
        self.logger = logger
    }

    static var stopping: Bool { Task.isCancelled || Task.isShuttingDownGracefully }

    func run() async throws {
        while !Self.stopping {
            do {
                try await store.client.withConnection { connection in try await self.own(on: connection) }
            } catch {
                isOwner = false
                if Self.stopping { break }
                logger.warning("webhook dispatcher failed; restarting", metadata: ["error": "\(String(reflecting: error))"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
        isOwner = false
        var clients = hostChecks.values.compactMap(\.client)
        if let http { clients.append(http) }
        hostChecks = [:]
        http = nil
        var seen = Set<ObjectIdentifier>()
        for client in clients where seen.insert(ObjectIdentifier(client)).inserted { try? await client.shutdown() }
    }

    private func own(on connection: PostgresConnection) async throws {
        while !Self.stopping {
            if try await scalar(connection, "SELECT pg_try_advisory_lock(\(Self.lockKey))") == true { break }
            try? await Task.sleep(for: options.ownershipRetry)
        }
        guard !Self.stopping else { return }
        isOwner = true
        defer { isOwner = false }
        logger.info("owning webhook delivery")
        while !Self.stopping {
            let generation = store.watcher.signal.generation
            try await ingest(on: connection)
            let due = try await claim(on: connection)
            if !due.isEmpty {
                let outcomes = await post(due)
                try await record(outcomes, for: due, on: connection)
                continue
            }
            let wait = try await untilNextDue(on: connection)
            if wait > .zero { await store.watcher.signal.wait(after: generation, timeout: wait) }
        }
        _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
    }

    private func scalar<T: PostgresDecodable & Sendable>(_ connection: PostgresConnection, _ query: PostgresQuery) async throws -> T? {
        for try await value in try await connection.query(query, logger: logger).decode(T.self) { return value }
        return nil
    }

    /// New outbox rows become pending deliveries, due now. A read-only probe first: most wake-ups
    /// of the log bring no new outbox row, and the locking ingest is a write transaction.
    private func ingest(on connection: PostgresConnection) async throws {
        var fresh = false
        for try await value in try await connection.execute(HasFresh(), logger: logger) { fresh = value }
        guard fresh else { return }
        try await connection.inTransaction(logger: logger) {
            for try await _ in try await connection.execute(Ingest(), logger: logger) {}
        }
    }

    private func claim(on connection: PostgresConnection) async throws -> [Due] {
        var out: [Due] = []
        for try await (id, messageId, channelId, channel, event, url, body, attempts)
            in try await connection.execute(Claim(limit: options.batchSize), logger: logger) {
            out.append(Due(id: id, messageId: messageId, channelId: channelId, channel: channel, event: event, url: url, body: body,
                           attempts: Int(attempts)))
        }
        return out
    }

    private func untilNextDue(on connection: PostgresConnection) async throws -> Duration {
        var seconds: Double?
        for try await value in try await connection.execute(NextDue(), logger: logger) { seconds = value }
        guard let seconds else { return store.watcher.pollInterval }
        return min(store.watcher.pollInterval, .milliseconds(Int64(max(0, seconds) * 1000)))
    }

    // The statements of every wake-up, prepared once per connection.

    struct Ingest: PostgresPreparedStatement {
        static let sql = """
            WITH cursor AS (SELECT position FROM realtime.webhook_dispatcher WHERE id = 1 FOR UPDATE),
                 fresh AS (SELECT o.id, o.position FROM realtime.webhook_outbox o, cursor WHERE o.position > cursor.position),
                 added AS (INSERT INTO realtime.webhook_deliveries (id, status, next_attempt_at)
                           SELECT id, 'pending', now() FROM fresh ON CONFLICT (id) DO NOTHING)
            UPDATE realtime.webhook_dispatcher SET position = (SELECT max(position) FROM fresh)
             WHERE id = 1 AND EXISTS (SELECT 1 FROM fresh)
            RETURNING position
            """
        typealias Row = PostgresRow
        func makeBindings() throws -> PostgresBindings { PostgresBindings() }
        func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
    }

    struct HasFresh: PostgresPreparedStatement {
        static let sql = """
            SELECT EXISTS (SELECT 1 FROM realtime.webhook_outbox o
                            WHERE o.position > (SELECT position FROM realtime.webhook_dispatcher WHERE id = 1))
            """
        typealias Row = Bool
        func makeBindings() throws -> PostgresBindings { PostgresBindings() }
        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    struct Claim: PostgresPreparedStatement {
        static let sql = """
            WITH pending AS (
                SELECT d.id, d.attempts, d.next_attempt_at <= now() AS due, o.url, o.position
                  FROM realtime.webhook_deliveries d JOIN realtime.webhook_outbox o ON o.id = d.id
                 WHERE d.status = 'pending'),
            waiting AS (SELECT url, min(position) AS first FROM pending WHERE NOT due GROUP BY url)
            SELECT p.id, o.message_id, o.channel_id, o.channel, o.event, o.url, o.body, p.attempts
              FROM pending p JOIN realtime.webhook_outbox o ON o.id = p.id LEFT JOIN waiting w ON w.url = p.url
             WHERE p.due AND (w.first IS NULL OR p.position < w.first)
             ORDER BY p.position, p.url LIMIT $1
            """
        typealias Row = (UUID, UUID, UUID?, String, String, String, String, Int32)
        var limit: Int

        func makeBindings() throws -> PostgresBindings { .of(Int64(limit)) }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    /// Seconds until the next pending delivery is due (null: none pending).
    struct NextDue: PostgresPreparedStatement {
        static let sql = """
            SELECT extract(epoch FROM min(next_attempt_at) - now())::float8 FROM realtime.webhook_deliveries WHERE status = 'pending'
            """
        typealias Row = Double?
        func makeBindings() throws -> PostgresBindings { PostgresBindings() }
        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    // MARK: posting

    /// Posts every due delivery: per URL in order (stopping at the first failure: the rest wait for
    /// the same retry), URLs in parallel.
    private func post(_ due: [Due]) async -> [Outcome] {
        var secrets: [UUID: String] = [:]
        for channelId in Set(due.compactMap(\.channelId)) {
            secrets[channelId] = try? await channels.secret(of: channelId)
        }
        var byURL: [String: [Due]] = [:]
        var order: [String] = []
        for delivery in due {
            if byURL[delivery.url] == nil { order.append(delivery.url) }
            byURL[delivery.url, default: []].append(delivery)
        }
        var problems: [String: String?] = [:]
        var clients: [String: HTTPClient] = [:]
        for url in order { (problems[url], clients[url]) = await destination(url) }
        let timeout = self.options.timeout, parallel = options.parallelURLs
        let frozenSecrets = secrets, frozenProblems = problems, frozenByURL = byURL, frozenClients = clients
        return await withTaskGroup(of: [Outcome].self) { group in
            var next = 0
            func start() {
                let url = order[next]
                next += 1
                group.addTask {
                    var outcomes: [Outcome] = []
                    for delivery in frozenByURL[url] ?? [] {
                        let secret = delivery.channelId.flatMap { frozenSecrets[$0] }
                        let outcome = await Self.attempt(delivery, secret: secret, blocked: frozenProblems[url] ?? nil,
                                                         http: frozenClients[url] ?? nil, timeout: timeout)
                        outcomes.append(outcome)
                        if !outcome.delivered { break }
                    }
                    return outcomes
                }
            }
            while next < min(parallel, order.count) { start() }
            var all: [Outcome] = []
            for await outcomes in group {
                all += outcomes
                if next < order.count { start() }
            }
            return all
        }
    }

    /// Whether `url` may be called, and the client to call it with: one that connects to the address
    /// that was vetted (no second DNS answer can swap it for a private one) and follows no redirect.
    private func destination(_ url: String) async -> (problem: String?, client: HTTPClient?) {
        guard let host = URL(string: url)?.host, !host.isEmpty else { return ("the URL has no host", nil) }
        if let cached = hostChecks[host], ContinuousClock.now - cached.at < .seconds(60) {
            if case .refused(let problem) = cached.verdict { return (problem, nil) }
            return (nil, cached.client)
        }
        let verdict = options.destinations.vet(host: host)
        let previous = hostChecks[host]
        var client: HTTPClient?
        if case .allowed(let address) = verdict {
            if let address {
                if previous?.verdict == verdict, let kept = previous?.client {
                    client = kept
                } else {
                    client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: Self.clientConfiguration(pinning: (host, address)))
                }
            } else {
                if http == nil { http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: Self.clientConfiguration(pinning: nil)) }
                client = http
            }
        }
        if let old = previous?.client, old !== client, old !== http { try? await old.shutdown() }
        hostChecks[host] = (verdict, client, .now)
        if case .refused(let problem) = verdict { return (problem, nil) }
        return (nil, client)
    }

    /// No redirects (a public receiver must not bounce a delivery to an internal address); with
    /// `pinning`, the host name connects to the vetted address (TLS still checks the name).
    static func clientConfiguration(pinning: (host: String, address: String)?) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        if let pinning { configuration.dnsOverride = [pinning.host: pinning.address] }
        return configuration
    }

    static func attempt(_ delivery: Due, secret: String?, blocked: String?, http: HTTPClient?, timeout: Duration) async -> Outcome {
        let started = Date()
        let clock = ContinuousClock.now
        var outcome = Outcome(id: delivery.id, attempt: delivery.attempts + 1, startedAt: started, milliseconds: 0)
        if let blocked {
            outcome.error = blocked
            return outcome
        }
        guard let secret else {
            outcome.error = "the channel (and its signing secret) no longer exists"
            return outcome
        }
        guard let http else {
            outcome.error = "no client for the destination"
            return outcome
        }
        let id = delivery.id.uuidString.lowercased()
        let timestamp = Int64(started.timeIntervalSince1970)
        var request = HTTPClientRequest(url: delivery.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "InsForge-Webhooks/\(serverVersion)")
        request.headers.add(name: "X-InsForge-Event", value: delivery.event)
        request.headers.add(name: "X-InsForge-Channel", value: delivery.channel)
        request.headers.add(name: "X-InsForge-Message-Id", value: delivery.messageId.uuidString.lowercased())
        request.headers.add(name: "webhook-id", value: id)
        request.headers.add(name: "webhook-timestamp", value: String(timestamp))
        request.headers.add(name: "webhook-signature", value: WebhookSignature.sign(secret: secret, id: id, timestamp: timestamp, body: delivery.body) ?? "")
        request.body = .bytes(ByteBuffer(string: delivery.body))
        do {
            let response = try await http.execute(request, timeout: .milliseconds(Int64(timeout / .milliseconds(1))))
            outcome.statusCode = Int(response.status.code)
            outcome.retryAfter = RetrySchedule.retryAfter(response.headers.first(name: "Retry-After"))
            _ = try? await response.body.collect(upTo: 64 * 1024)  // drain, so the connection can be reused
        } catch {
            outcome.error = Self.describe(error)
        }
        outcome.milliseconds = (ContinuousClock.now - clock) / .milliseconds(1)
        return outcome
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            if error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout { return "timed out" }
            return "request failed: \(error)"
        }
        return "request failed: \(String(describing: error).prefix(300))"
    }

    // MARK: recording

    /// Writes the attempts and the new states in one transaction. Deliveries of a URL that were not
    /// tried because an earlier one failed move to that one's retry time.
    private func record(_ outcomes: [Outcome], for due: [Due], on connection: PostgresConnection) async throws {
        let byId = Dictionary(uniqueKeysWithValues: due.map { ($0.id, $0) })
        var ids: [UUID] = [], statuses: [String] = [], nexts: [Date?] = [], codes: [Int?] = [], errors: [String?] = []
        var attemptsMade: [Int] = [], counted: [Bool] = []
        var retryAt: [String: Date] = [:]
        var gone: [(channelId: UUID, url: String, deliveryId: UUID)] = []
        let now = Date()
        for outcome in outcomes {
            guard let delivery = byId[outcome.id] else { continue }
            var status = "pending"
            var next: Date?
            if outcome.delivered {
                status = "delivered"
            } else if outcome.gone {
                status = "disabled"
                if let channelId = delivery.channelId { gone.append((channelId, delivery.url, delivery.id)) }
            } else if let delay = options.schedule.delay(beforeAttempt: outcome.attempt + 1, retryAfter: outcome.retryAfter) {
                next = now.addingTimeInterval(delay / .seconds(1))
                retryAt[delivery.url] = next
            } else {
                status = "exhausted"
            }
            ids.append(outcome.id); statuses.append(status); nexts.append(next); codes.append(outcome.statusCode)
            errors.append(outcome.error); attemptsMade.append(outcome.attempt); counted.append(true)
        }
        let tried = Set(outcomes.map(\.id))
        for delivery in due where !tried.contains(delivery.id) {
            // Held behind a failure of the same URL: same retry time, no attempt counted.
            ids.append(delivery.id); statuses.append("pending"); nexts.append(retryAt[delivery.url] ?? now.addingTimeInterval(1))
            codes.append(nil); errors.append(nil); attemptsMade.append(delivery.attempts); counted.append(false)
        }
        let attemptRows = outcomes.filter { byId[$0.id] != nil }
        try await connection.inTransaction(logger: logger) {
            try await connection.query("""
                UPDATE realtime.webhook_deliveries d
                   SET status = u.status, attempts = u.attempts, next_attempt_at = u.next,
                       last_status = CASE WHEN u.counted THEN u.code ELSE d.last_status END,
                       last_error = CASE WHEN u.counted THEN u.error ELSE d.last_error END,
                       delivered_at = CASE WHEN u.status = 'delivered' THEN now() ELSE d.delivered_at END, updated_at = now()
                  FROM (SELECT id, status, attempts, nullif(next, '')::timestamptz AS next, nullif(code, -1) AS code,
                               nullif(error, '') AS error, counted
                          FROM unnest(\(ids)::uuid[], \(statuses)::text[], \(attemptsMade.map(Int32.init))::int[],
                                      \(nexts.map { $0.map(JSONCoding.timestamp) ?? "" })::text[], \(codes.map { Int32($0 ?? -1) })::int[],
                                      \(errors.map { $0 ?? "" })::text[], \(counted)::boolean[])
                               AS x(id, status, attempts, next, code, error, counted)) u
                 WHERE d.id = u.id
                """, logger: logger)
            if !attemptRows.isEmpty {
                try await connection.query("""
                    INSERT INTO realtime.webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error)
                    SELECT id, attempt, started, ms, nullif(code, -1), nullif(error, '')
                      FROM unnest(\(attemptRows.map(\.id))::uuid[], \(attemptRows.map { Int32($0.attempt) })::int[],
                                  \(attemptRows.map(\.startedAt))::timestamptz[], \(attemptRows.map(\.milliseconds))::float8[],
                                  \(attemptRows.map { Int32($0.statusCode ?? -1) })::int[], \(attemptRows.map { $0.error ?? "" })::text[])
                           AS a(id, attempt, started, ms, code, error)
                    """, logger: logger)
            }
        }
        for (channelId, url, deliveryId) in gone { await disable(url, of: channelId, after: deliveryId, on: connection) }
    }

    /// A 410: the URL comes off its channel (an event), and its other pending deliveries are disabled.
    private func disable(_ url: String, of channelId: UUID, after deliveryId: UUID, on connection: PostgresConnection) async {
        do {
            if let channel = try await channels.find(channelId), channel.webhookUrls.contains(url) {
                try await store.append([try EventData(ChannelWebhookDisabled(channelId: channelId, url: url, deliveryId: deliveryId))],
                                       to: "channel-\(channelId.uuidString.lowercased())")
            }
            try await connection.query("""
                UPDATE realtime.webhook_deliveries d SET status = 'disabled', last_error = 'the receiver answered 410 Gone', updated_at = now()
                  FROM realtime.webhook_outbox o
                 WHERE o.id = d.id AND d.status = 'pending' AND o.url = \(url) AND o.channel_id = \(channelId)
                """, logger: logger)
            logger.notice("webhook URL disabled after 410", metadata: ["url": "\(url)", "channel": "\(channelId)"])
        } catch {
            logger.warning("could not disable a webhook URL", metadata: ["url": "\(url)", "error": "\(error)"])
        }
    }
}
