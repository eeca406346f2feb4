import Actors
import EventStore
import Foundation
import Logging
import PostgresNIO

/// Channel commands (appended as `Channel*` events, read back from the `realtime.channels` read
/// model) and the database side of subscribe and publish, run as the caller so that row-level
/// security on the channel and message tables decides.
struct RealtimeChannels: WebhookChannels {
    let store: EventStore
    let box: SecretBox
    let logger: Logger

    var client: PostgresClient { store.client }

    /// A channel as the API shows it.
    struct Channel: Codable, Sendable {
        var id: UUID
        var pattern: String
        var description: String?
        var webhookUrls: [String]
        var enabled: Bool
        var createdAt: Date
        var updatedAt: Date
        /// Only on create and rotation: the `whsec_...` signing secret.
        var webhookSecret: String?

        enum CodingKeys: String, CodingKey { case id, pattern, description, webhookUrls, enabled, createdAt, updatedAt, webhookSecret }

        /// `description` is always present (null when unset); `webhookSecret` only when just made.
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id.uuidString.lowercased(), forKey: .id)
            try c.encode(pattern, forKey: .pattern)
            try c.encode(description, forKey: .description)
            try c.encode(webhookUrls, forKey: .webhookUrls)
            try c.encode(enabled, forKey: .enabled)
            try c.encode(createdAt, forKey: .createdAt)
            try c.encode(updatedAt, forKey: .updatedAt)
            try c.encodeIfPresent(webhookSecret, forKey: .webhookSecret)
        }
    }

    /// The body of create and update; on update, absent fields keep their value.
    struct Input: Decodable {
        var pattern: String?
        var description: String??
        var webhookUrls: [String]?
        var enabled: Bool?

        init(pattern: String, description: String?) {
            self.pattern = pattern
            self.description = .some(description)
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            pattern = try c.decodeIfPresent(String.self, forKey: .pattern)
            description = c.contains(.description) ? .some(try c.decodeIfPresent(String.self, forKey: .description)) : nil
            webhookUrls = try c.decodeIfPresent([String].self, forKey: .webhookUrls)
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled)
        }

        enum CodingKeys: String, CodingKey { case pattern, description, webhookUrls, enabled }
    }

    // MARK: validation

    /// Why `name` cannot be a channel name or pattern: 1 to 200 characters, no spaces or control characters.
    static func nameProblem(_ name: String, what: String = "channel") -> String? {
        guard !name.isEmpty, name.count <= 200 else { return "\(what) must have 1 to 200 characters" }
        guard name.unicodeScalars.allSatisfy({ !$0.properties.isWhitespace && !CharacterSet.controlCharacters.contains($0) }) else {
            return "\(what) must not contain spaces or control characters"
        }
        return nil
    }

    /// Why `name` cannot be an event name: 1 to 200 characters, no control characters.
    static func eventNameProblem(_ name: String) -> String? {
        guard !name.isEmpty, name.count <= 200 else { return "event must have 1 to 200 characters" }
        guard name.unicodeScalars.allSatisfy({ !CharacterSet.controlCharacters.contains($0) }) else {
            return "event must not contain control characters"
        }
        return nil
    }

    static func validated(_ input: Input, over current: ChannelSettings?) throws -> ChannelSettings {
        guard let pattern = input.pattern ?? current?.pattern else { throw DomainError.invalidInput("pattern is required") }
        if let problem = nameProblem(pattern, what: "pattern") { throw DomainError.invalidInput(problem) }
        let description = input.description ?? current?.description
        if let description, description.count > 1000 { throw DomainError.invalidInput("description must have at most 1000 characters") }
        let urls = input.webhookUrls ?? current?.webhookUrls ?? []
        guard urls.count <= 20 else { throw DomainError.invalidInput("at most 20 webhookUrls") }
        guard Set(urls).count == urls.count else { throw DomainError.invalidInput("webhookUrls must not repeat") }
        for url in urls {
            guard url.count <= 2048, let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""),
                  let host = parsed.host, !host.isEmpty, parsed.user == nil, parsed.password == nil
            else { throw DomainError.invalidInput("webhookUrls: \(url.prefix(100)) is not an http(s) URL") }
        }
        return ChannelSettings(pattern: pattern, description: description, webhookUrls: urls,
                               enabled: input.enabled ?? current?.enabled ?? true)
    }

    /// `whsec_` and 32 random bytes in base64 (the Standard Webhooks secret format).
    static func newSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        return "whsec_" + Data((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }).base64EncodedString()
    }

    // MARK: commands

    func create(_ input: Input, metadata: EventMetadata) async throws -> Channel {
        let settings = try Self.validated(input, over: nil)
        try await ensureUnique(settings.pattern, except: nil)
        let id = UUID()
        let secret = Self.newSecret()
        let event = ChannelCreated(channelId: id, settings: settings, secretCiphertext: try box.seal(secret))
        try await store.append([try EventData(event, metadata: metadata)], to: "channel-\(id.uuidString.lowercased())", expected: .noStream)
        guard var channel = try await find(id) else { throw DomainError.notFound("Channel not found") }
        channel.webhookSecret = secret
        return channel
    }

    func update(_ id: UUID, _ input: Input, metadata: EventMetadata) async throws -> Channel {
        guard let current = try await find(id) else { throw DomainError.notFound("Channel not found") }
        let settings = try Self.validated(input, over: ChannelSettings(
            pattern: current.pattern, description: current.description, webhookUrls: current.webhookUrls, enabled: current.enabled))
        if settings.pattern != current.pattern { try await ensureUnique(settings.pattern, except: id) }
        try await store.append([try EventData(ChannelUpdated(channelId: id, settings: settings), metadata: metadata)],
                               to: "channel-\(id.uuidString.lowercased())", expected: .streamExists)
        return try await find(id) ?? current
    }

    func delete(_ id: UUID, metadata: EventMetadata) async throws {
        guard try await find(id) != nil else { throw DomainError.notFound("Channel not found") }
        try await store.append([try EventData(ChannelDeleted(channelId: id), metadata: metadata)],
                               to: "channel-\(id.uuidString.lowercased())", expected: .streamExists)
    }

    func rotateSecret(_ id: UUID, metadata: EventMetadata) async throws -> Channel {
        guard var channel = try await find(id) else { throw DomainError.notFound("Channel not found") }
        let secret = Self.newSecret()
        try await store.append([try EventData(ChannelSecretRotated(channelId: id, secretCiphertext: try box.seal(secret)), metadata: metadata)],
                               to: "channel-\(id.uuidString.lowercased())", expected: .streamExists)
        channel.webhookSecret = secret
        return channel
    }

    private func ensureUnique(_ pattern: String, except id: UUID?) async throws {
        for try await existing in try await client.query("SELECT id FROM realtime.channels WHERE pattern = \(pattern)").decode(UUID.self)
        where existing != id {
            throw DomainError(.conflict, "A channel with pattern \(pattern) already exists")
        }
    }

    // MARK: reads

    static let columns = "id, pattern, description, webhook_urls, enabled, created_at, updated_at"

    func find(_ id: UUID) async throws -> Channel? {
        try await Self.channels(client.query("SELECT \(unescaped: Self.columns) FROM realtime.channels WHERE id = \(id)")).first
    }

    func list() async throws -> [Channel] {
        try await Self.channels(client.query("SELECT \(unescaped: Self.columns) FROM realtime.channels ORDER BY pattern"))
    }

    static func channels(_ rows: PostgresRowSequence) async throws -> [Channel] {
        var out: [Channel] = []
        for try await (id, pattern, description, urls, enabled, created, updated)
            in rows.decode((UUID, String, String?, [String], Bool, Date, Date).self) {
            out.append(Channel(id: id, pattern: pattern, description: description, webhookUrls: urls, enabled: enabled,
                               createdAt: created, updatedAt: updated))
        }
        return out
    }

    /// The signing secret of a channel (opened from its box).
    func secret(of channelId: UUID) async throws -> String? {
        for try await sealed in try await client.query(
            "SELECT secret_ciphertext FROM realtime.channel_secrets WHERE channel_id = \(channelId)").decode(String.self) {
            return try box.open(sealed)
        }
        return nil
    }

    /// A receiver answered 410 Gone: `url` comes off the channel (if it is still on it).
    func disableWebhook(_ url: String, of channelId: UUID, after deliveryId: UUID) async throws {
        guard let channel = try await find(channelId), channel.webhookUrls.contains(url) else { return }
        try await store.append([try EventData(ChannelWebhookDisabled(channelId: channelId, url: url, deliveryId: deliveryId))],
                               to: "channel-\(channelId.uuidString.lowercased())")
    }

    // MARK: subscribe and publish, as the caller

    /// The channel `name` resolves to among those `identity` may subscribe to (nil: none, or denied).
    func subscribable(_ name: String, as identity: DatabaseIdentity) async throws -> (id: UUID, pattern: String)? {
        // One statement, so one implicit transaction: the role and claims it sets end with it.
        for try await (id, pattern) in try await client.query(
            "SELECT id, pattern FROM realtime.subscribe_as(\(identity.role), \(identity.claims), \(name))", logger: logger
        ).decode((UUID, String).self) {
            return (id, pattern)
        }
        return nil
    }

    /// Inserts the message as `identity` (policies on `realtime.messages` decide; a denial throws 42501).
    func publish(id: UUID, channelId: UUID?, channel: String, event: String, payload: String, senderType: String,
                 as identity: DatabaseIdentity) async throws {
        // One statement (one implicit transaction, as for subscribe). Read the (empty) result: an error
        // raised while the function runs arrives with the rows.
        for try await _ in try await client.query("""
            SELECT realtime.publish_as(\(identity.role), \(identity.claims), \(id), \(channelId), \(channel), \(event),
                                       \(payload)::jsonb, \(senderType), \(identity.userId))
            """, logger: logger) {}
        store.sequencer.nudge()
    }
}
