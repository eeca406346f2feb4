import Actors
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Webhook deliveries over HTTP: each destination is vetted (`DestinationPolicy`) and called through a
/// client that connects to the vetted address (no second DNS answer can swap it for a private one),
/// never follows a redirect, and signs as Standard Webhooks.
actor WebhookHTTPTransport: WebhookTransport {
    let policy: DestinationPolicy
    /// The client for destinations that are not pinned (private ones allowed). Made on first use.
    private var http: HTTPClient?
    /// Each host's verdict, kept a minute, with the client that connects to the vetted address.
    private var hostChecks: [String: (verdict: DestinationPolicy.Verdict, client: HTTPClient?, at: ContinuousClock.Instant)] = [:]

    init(policy: DestinationPolicy) {
        self.policy = policy
    }

    func destination(_ url: String) async -> Result<HTTPClient, WebhookRefusal> {
        guard let host = URL(string: url)?.host, !host.isEmpty else { return .failure(WebhookRefusal("the URL has no host")) }
        if let cached = hostChecks[host], ContinuousClock.now - cached.at < .seconds(60) {
            return Self.result(cached.verdict, cached.client)
        }
        let verdict = policy.vet(host: host)
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
        return Self.result(verdict, client)
    }

    private static func result(_ verdict: DestinationPolicy.Verdict, _ client: HTTPClient?) -> Result<HTTPClient, WebhookRefusal> {
        if case .refused(let problem) = verdict { return .failure(WebhookRefusal(problem)) }
        guard let client else { return .failure(WebhookRefusal("no client for the destination")) }
        return .success(client)
    }

    /// No redirects (a public receiver must not bounce a delivery to an internal address); with
    /// `pinning`, the host name connects to the vetted address (TLS still checks the name).
    static func clientConfiguration(pinning: (host: String, address: String)?) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        if let pinning { configuration.dnsOverride = [pinning.host: pinning.address] }
        return configuration
    }

    nonisolated func post(_ delivery: WebhookDelivery, secret: String, to http: HTTPClient, timeout: Duration) async -> WebhookResponse {
        let id = delivery.id.uuidString.lowercased()
        let timestamp = Int64(Date().timeIntervalSince1970)
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
            _ = try? await response.body.collect(upTo: 64 * 1024)  // drain, so the connection can be reused
            return WebhookResponse(statusCode: Int(response.status.code), retryAfter: response.headers.first(name: "Retry-After"))
        } catch {
            return WebhookResponse(error: Self.describe(error))
        }
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            if error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout { return "timed out" }
            return "request failed: \(error)"
        }
        return "request failed: \(String(describing: error).prefix(300))"
    }

    func shutdown() async {
        var clients = hostChecks.values.compactMap(\.client)
        if let http { clients.append(http) }
        hostChecks = [:]
        http = nil
        var seen = Set<ObjectIdentifier>()
        for client in clients where seen.insert(ObjectIdentifier(client)).inserted { try? await client.shutdown() }
    }
}
