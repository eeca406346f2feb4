import EventStore

/// The projections of this server, in one place: what the store applies inline and what runner actors follow.
public enum ProjectionCatalog {
    /// Applied in the append transaction.
    public static var inline: [any Projection] {
        [ApiKeysProjection(), UsersProjection(), SessionsProjection(), AuthCodesProjection(), AuthSettingsProjection(), ChannelsProjection(),
         StorageProjection(), SecretsProjection()]
    }
    /// Applied by runner actors, once per cluster.
    public static var async: [any Projection] { [EventStatsProjection(), WebhookOutboxProjection()] }
    /// Every projection (what a replay rebuilds).
    public static var all: [any Projection] { inline + async }
}
