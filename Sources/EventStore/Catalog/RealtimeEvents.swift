import Foundation

/// A channel's settings: what `ChannelCreated` and `ChannelUpdated` carry in full.
public struct ChannelSettings: Codable, Sendable, Equatable {
    /// A name, or a pattern with `%` wildcards (`chat:%`).
    public var pattern: String
    public var description: String?
    public var webhookUrls: [String]
    public var enabled: Bool

    public init(pattern: String, description: String?, webhookUrls: [String], enabled: Bool) {
        self.pattern = pattern
        self.description = description
        self.webhookUrls = webhookUrls
        self.enabled = enabled
    }
}

/// A realtime channel was defined (stream `channel-<uuid>`). The webhook secret only as ciphertext.
public struct ChannelCreated: DomainEvent, Equatable {
    public static let type = "ChannelCreated"
    public var channelId: UUID
    public var settings: ChannelSettings
    /// AES-256-GCM box of the `whsec_...` signing secret.
    public var secretCiphertext: String

    public init(channelId: UUID, settings: ChannelSettings, secretCiphertext: String) {
        self.channelId = channelId
        self.settings = settings
        self.secretCiphertext = secretCiphertext
    }
}

/// A channel's settings changed (the new settings in full).
public struct ChannelUpdated: DomainEvent, Equatable {
    public static let type = "ChannelUpdated"
    public var channelId: UUID
    public var settings: ChannelSettings
    public init(channelId: UUID, settings: ChannelSettings) {
        self.channelId = channelId
        self.settings = settings
    }
}

/// A channel was deleted (its messages stay, with their channel name).
public struct ChannelDeleted: DomainEvent, Equatable {
    public static let type = "ChannelDeleted"
    public var channelId: UUID
    public init(channelId: UUID) { self.channelId = channelId }
}

/// A channel's webhook signing secret was replaced.
public struct ChannelSecretRotated: DomainEvent, Equatable {
    public static let type = "ChannelSecretRotated"
    public var channelId: UUID
    public var secretCiphertext: String
    public init(channelId: UUID, secretCiphertext: String) {
        self.channelId = channelId
        self.secretCiphertext = secretCiphertext
    }
}

/// A webhook receiver answered 410 Gone: its URL was taken off the channel.
public struct ChannelWebhookDisabled: DomainEvent, Equatable {
    public static let type = "ChannelWebhookDisabled"
    public var channelId: UUID
    public var url: String
    public var deliveryId: UUID
    public init(channelId: UUID, url: String, deliveryId: UUID) {
        self.channelId = channelId
        self.url = url
        self.deliveryId = deliveryId
    }
}

/// A message was published on a channel (stream `realtime-<channel name>`, event id = message id).
/// Queued by the insert trigger of `realtime.messages`, so every way of publishing ends here.
public struct MessagePublished: DomainEvent, Equatable {
    public static let type = "MessagePublished"
    public var messageId: UUID
    public var channelId: UUID?
    public var channel: String
    public var event: String
    public var payload: JSONValue
    /// `system` (the server, SQL) or `user` (a client).
    public var senderType: String
    public var senderId: UUID?
    /// The channel's webhook URLs when the message was published.
    public var webhookUrls: [String]?
    /// ISO 8601 with milliseconds, UTC.
    public var createdAt: String

    public init(messageId: UUID, channelId: UUID?, channel: String, event: String, payload: JSONValue, senderType: String,
                senderId: UUID?, webhookUrls: [String]?, createdAt: String) {
        self.messageId = messageId
        self.channelId = channelId
        self.channel = channel
        self.event = event
        self.payload = payload
        self.senderType = senderType
        self.senderId = senderId
        self.webhookUrls = webhookUrls
        self.createdAt = createdAt
    }
}
