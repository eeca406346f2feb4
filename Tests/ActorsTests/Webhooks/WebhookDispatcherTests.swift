import Actors
import EventStore
import Foundation
import PostgresNIO
import Projections
import Synchronization
import Testing
import TestSupport

/// A receiver for every URL: answers from a script per URL (then 200), and records what it got.
final class ScriptedReceivers: WebhookTransport {
    let scripts: Mutex<[String: [Int]]>
    let received = Mutex<[(url: String, body: String, messageId: UUID)]>([])

    init(_ scripts: [String: [Int]]) { self.scripts = Mutex(scripts) }

    func destination(_ url: String) async -> Result<String, WebhookRefusal> {
        url.hasPrefix("http://refused.") ? .failure(WebhookRefusal("a private address")) : .success(url)
    }

    func post(_ delivery: WebhookDelivery, secret: String, to destination: String, timeout: Duration) async -> WebhookResponse {
        received.withLock { $0.append((destination, delivery.body, delivery.messageId)) }
        let status = scripts.withLock { scripts -> Int in
            guard var script = scripts[destination], !script.isEmpty else { return 200 }
            defer { scripts[destination] = script }
            return script.removeFirst()
        }
        return WebhookResponse(statusCode: status)
    }

    func shutdown() async {}

    func bodies(to url: String) -> [String] { received.withLock { $0.filter { $0.url == url }.map(\.body) } }
}

/// Channels with one signing secret; records the URLs a 410 took off.
final class FakeChannels: WebhookChannels {
    let disabled = Mutex<[String]>([])
    func secret(of channelId: UUID) async throws -> String? { "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }
    func disableWebhook(_ url: String, of channelId: UUID, after deliveryId: UUID) async throws {
        disabled.withLock { $0.append(url) }
    }
}

@Suite("Webhook dispatcher")
struct WebhookDispatcherTests {
    static let channel = UUID()

    static func publish(_ store: EventStore, _ n: Int, to urls: [String]) async throws {
        let published = MessagePublished(messageId: UUID(), channelId: channel, channel: "orders", event: "created",
                                         payload: .object(["n": .number(Double(n))]), senderType: "system", senderId: nil,
                                         webhookUrls: urls, createdAt: "2026-01-01T00:00:00.000Z")
        try await store.append([try EventData(published)], to: "realtime-orders")
    }

    static func statuses(_ client: PostgresClient) async throws -> [String: Int] {
        var out: [String: Int] = [:]
        for try await (status, count) in try await client.query(
            "SELECT status, count(*)::int FROM realtime.webhook_deliveries GROUP BY status").decode((String, Int).self) {
            out[status] = count
        }
        return out
    }

    @Test func deliversPerURLInLogOrderRetriesFailuresAndDisablesGoneURLs() async throws {
        try await withEventStore(pollInterval: .milliseconds(50)) { store, _ in
            let ok = "http://ok.example/hook", flaky = "http://flaky.example/hook", gone = "http://gone.example/hook"
            let refused = "http://refused.example/hook"
            let receivers = ScriptedReceivers([flaky: [500, 503], gone: [410]])
            let channels = FakeChannels()
            var options = WebhookDispatcher<ScriptedReceivers>.Options(
                schedule: RetrySchedule(delays: [.zero, .milliseconds(50), .milliseconds(50), .milliseconds(50)], jitter: 0))
            options.ownershipRetry = .milliseconds(50)
            let dispatcher = WebhookDispatcher(store: store, channels: channels, transport: receivers, options: options,
                                               logger: TestDatabase.logger)
            var runnerOptions = ProjectionRunner.Options()
            runnerOptions.gatherInterval = .zero
            let outbox = ProjectionRunner(projection: WebhookOutboxProjection(), store: store, options: runnerOptions,
                                          logger: TestDatabase.logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await outbox.run() }
                defer { group.cancelAll() }
                // Everything is in the outbox before the dispatcher starts, so its first round holds all
                // five deliveries of each URL (as a burst does).
                for n in 1...5 { try await Self.publish(store, n, to: [ok, flaky, gone, refused]) }
                #expect(try await eventually {
                    try await scalar(store.client, "SELECT count(*)::int FROM realtime.webhook_outbox", as: Int.self) == 20
                })
                group.addTask { try await dispatcher.run() }
                #expect(try await eventually(timeout: .seconds(20)) {
                    let s = try await Self.statuses(store.client)
                    // ok and flaky: delivered; gone: disabled; refused: out of attempts
                    return s["delivered"] == 10 && s["disabled"] == 5 && s["exhausted"] == 5 && (s["pending"] ?? 0) == 0
                })
                func numbers(_ url: String) -> [Int] {
                    receivers.bodies(to: url).compactMap { body in
                        guard case .object(let o)? = try? JSONCoding.decoder.decode(JSONValue.self, from: Data(body.utf8)),
                              case .number(let n)? = o["n"] else { return nil }
                        return Int(n)
                    }
                }
                #expect(numbers(ok) == [1, 2, 3, 4, 5])
                // The first delivery failed twice and held the later ones back: strict order per URL.
                #expect(numbers(flaky) == [1, 1, 1, 2, 3, 4, 5])
                #expect(numbers(gone) == [1])  // 410: the URL came off, its other deliveries were not sent
                #expect(channels.disabled.withLock { $0 } == [gone])
                #expect(numbers(refused).isEmpty)  // vetting refused it: never posted
            }
            let attempts = try await scalar(store.client, """
                SELECT count(*)::int FROM realtime.webhook_attempts a JOIN realtime.webhook_outbox o ON o.id = a.delivery_id
                 WHERE o.url = \("http://flaky.example/hook")
                """, as: Int.self)
            #expect(attempts == 7)
        }
    }
}
