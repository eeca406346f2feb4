import EventStore
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// One due delivery with what its request needs.
public struct WebhookDelivery: Sendable {
    public var id: UUID
    public var messageId: UUID
    public var channelId: UUID?
    public var channel: String
    public var event: String
    public var url: String
    public var body: String
    /// Attempts made before this one.
    public var attempts: Int
}

/// What a receiver answered (or why nothing was answered).
public struct WebhookResponse: Sendable {
    public var statusCode: Int?
    /// The `Retry-After` header, as sent.
    public var retryAfter: String?
    public var error: String?

    public init(statusCode: Int? = nil, retryAfter: String? = nil, error: String? = nil) {
        self.statusCode = statusCode
        self.retryAfter = retryAfter
        self.error = error
    }
}

/// How deliveries leave the server: the gateway's HTTP client (vetting destinations, signing,
/// never following redirects) implements it; tests pass a fake receiver.
public protocol WebhookTransport: Sendable {
    /// A vetted place to post to.
    associatedtype Destination: Sendable
    /// Vets `url`: where to post, or why it may not be called.
    func destination(_ url: String) async -> Result<Destination, WebhookRefusal>
    /// Posts `delivery`, signed with its channel's `secret`, within `timeout`.
    func post(_ delivery: WebhookDelivery, secret: String, to destination: Destination, timeout: Duration) async -> WebhookResponse
    /// Closes what it holds open; the dispatcher has stopped.
    func shutdown() async
}

/// Why a destination may not be called (recorded as the attempt's error).
public struct WebhookRefusal: Error, Sendable {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
}

/// The channels' side of delivery: signing secrets, and taking a URL off its channel (a command:
/// it appends `ChannelWebhookDisabled`).
public protocol WebhookChannels: Sendable {
    func secret(of channelId: UUID) async throws -> String?
    /// The receiver answered 410 Gone to `deliveryId`: `url` comes off channel `channelId`.
    func disableWebhook(_ url: String, of channelId: UUID, after deliveryId: UUID) async throws
}

/// Posts the webhook outbox, once per cluster.
///
/// Ownership is `ClusterOwnership` (as for projection runners): when the owning process dies its
/// connection goes, and another node's dispatcher takes over. The owner moves new outbox rows into
/// `realtime.webhook_deliveries` (pending, due now) with a cursor kept in `realtime.webhook_dispatcher`,
/// then posts what is due: the deliveries of one URL one after another in log order, different URLs
/// in parallel. Order per URL is strict: a delivery waiting for its retry holds back the later ones to
/// its URL (until it is delivered, exhausted or disabled); other URLs are not affected. Every attempt
/// is recorded; a failure is retried on the schedule (or after `Retry-After`), 410 takes the URL
/// off its channel, and a delivery out of attempts is kept as `exhausted` for an admin to re-send.
/// State lives in the database, so a restart (even `kill -9`) resumes where it was; a delivery
/// whose outcome was not recorded before a crash is sent again (receivers dedupe on `webhook-id`).
public actor WebhookDispatcher<Transport: WebhookTransport>: Service {
    /// Tuning knobs.
    public struct Options: Sendable {
        public var schedule = RetrySchedule.standard
        public var timeout: Duration = .seconds(10)
        /// Most deliveries taken per round.
        public var batchSize = 1000
        /// Most URLs posted to at once.
        public var parallelURLs = 32
        public var ownershipRetry: Duration = .seconds(1)

        public init(schedule: RetrySchedule = .standard, timeout: Duration = .seconds(10)) {
            self.schedule = schedule
            self.timeout = timeout
        }
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

    let store: EventStore
    let channels: any WebhookChannels
    let transport: Transport
    let options: Options
    let logger: Logger
    private(set) var isOwner = false

    public init(store: EventStore, channels: any WebhookChannels, transport: Transport, options: Options, logger: Logger) {
        self.store = store
        self.channels = channels
        self.transport = transport
        self.options = options
        var logger = logger
        logger[metadataKey: "component"] = "webhooks"
        self.logger = logger
    }

    public func run() async throws {
        let ownership = ClusterOwnership(.webhooks, client: store.client, retry: options.ownershipRetry, logger: logger)
        await ownership.run { error in
            await self.restarting(after: error)
        } _: { connection in
            try await self.deliver(on: connection)
        }
        isOwner = false
        await transport.shutdown()
    }

    private func restarting(after error: any Error) {
        isOwner = false
        logger.warning("webhook dispatcher failed; restarting", metadata: ["error": "\(String(reflecting: error))"])
    }

    /// Delivers until shutdown, as the owner on `connection`.
    private func deliver(on connection: PostgresConnection) async throws {
        isOwner = true
        defer { isOwner = false }
        while !shutdownRequested {
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
    }

    private func scalar<T: PostgresDecodable & Sendable>(_ connection: PostgresConnection, _ query: PostgresQuery) async throws -> T? {
        for try await value in try await connection.query(query, logger: logger).decode(T.self) { return value }
        return nil
    }

    /// New outbox rows become pending deliveries, due now. A read-only probe first: most wake-ups
    /// of the log bring no new outbox row, and the locking ingest is a write transaction.
    private func ingest(on connection: PostgresConnection) async throws {
        var fresh = false
        for try await value in try await connection.execute(WebhookStatements.HasFresh(), logger: logger) { fresh = value }
        guard fresh else { return }
        try await connection.inTransaction(logger: logger) {
            for try await _ in try await connection.execute(WebhookStatements.Ingest(), logger: logger) {}
        }
    }

    private func claim(on connection: PostgresConnection) async throws -> [WebhookDelivery] {
        var out: [WebhookDelivery] = []
        for try await (id, messageId, channelId, channel, event, url, body, attempts)
            in try await connection.execute(WebhookStatements.Claim(limit: options.batchSize), logger: logger) {
            out.append(WebhookDelivery(id: id, messageId: messageId, channelId: channelId, channel: channel, event: event, url: url, body: body,
                           attempts: Int(attempts)))
        }
        return out
    }

    private func untilNextDue(on connection: PostgresConnection) async throws -> Duration {
        var seconds: Double?
        for try await value in try await connection.execute(WebhookStatements.NextDue(), logger: logger) { seconds = value }
        guard let seconds else { return store.watcher.pollInterval }
        return min(store.watcher.pollInterval, .milliseconds(Int64(max(0, seconds) * 1000)))
    }

    // MARK: posting

    /// Posts every due delivery: per URL in order (stopping at the first failure: the rest wait for
    /// the same retry), URLs in parallel.
    private func post(_ due: [WebhookDelivery]) async -> [Outcome] {
        var secrets: [UUID: String] = [:]
        for channelId in Set(due.compactMap(\.channelId)) {
            secrets[channelId] = try? await channels.secret(of: channelId)
        }
        var byURL: [String: [WebhookDelivery]] = [:]
        var order: [String] = []
        for delivery in due {
            if byURL[delivery.url] == nil { order.append(delivery.url) }
            byURL[delivery.url, default: []].append(delivery)
        }
        var destinations: [String: Result<Transport.Destination, WebhookRefusal>] = [:]
        for url in order { destinations[url] = await transport.destination(url) }
        let timeout = self.options.timeout, parallel = options.parallelURLs, transport = self.transport
        let frozenSecrets = secrets, frozenByURL = byURL, frozenDestinations = destinations
        return await withTaskGroup(of: [Outcome].self) { group in
            var next = 0
            func start() {
                let url = order[next]
                next += 1
                group.addTask {
                    var outcomes: [Outcome] = []
                    for delivery in frozenByURL[url] ?? [] {
                        let secret = delivery.channelId.flatMap { frozenSecrets[$0] }
                        let outcome = await Self.attempt(delivery, secret: secret, destination: frozenDestinations[url],
                                                         transport: transport, timeout: timeout)
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

    static func attempt(_ delivery: WebhookDelivery, secret: String?, destination: Result<Transport.Destination, WebhookRefusal>?,
                        transport: Transport, timeout: Duration) async -> Outcome {
        let started = Date()
        let clock = ContinuousClock.now
        var outcome = Outcome(id: delivery.id, attempt: delivery.attempts + 1, startedAt: started, milliseconds: 0)
        let target: Transport.Destination
        switch destination {
        case .success(let vetted): target = vetted
        case .failure(let refusal):
            outcome.error = refusal.reason
            return outcome
        case nil:
            outcome.error = "no destination for the URL"
            return outcome
        }
        guard let secret else {
            outcome.error = "the channel (and its signing secret) no longer exists"
            return outcome
        }
        let response = await transport.post(delivery, secret: secret, to: target, timeout: timeout)
        outcome.statusCode = response.statusCode
        outcome.retryAfter = RetrySchedule.retryAfter(response.retryAfter)
        outcome.error = response.error
        outcome.milliseconds = (ContinuousClock.now - clock) / .milliseconds(1)
        return outcome
    }

    // MARK: recording

    /// Writes the attempts and the new states in one transaction. Deliveries of a URL that were not
    /// tried because an earlier one failed move to that one's retry time.
    private func record(_ outcomes: [Outcome], for due: [WebhookDelivery], on connection: PostgresConnection) async throws {
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

    /// A 410: the URL comes off its channel (a command of the channels), and its other pending
    /// deliveries are disabled.
    private func disable(_ url: String, of channelId: UUID, after deliveryId: UUID, on connection: PostgresConnection) async {
        do {
            try await channels.disableWebhook(url, of: channelId, after: deliveryId)
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

/// The statements of every wake-up, prepared once per connection.
enum WebhookStatements {
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
}
