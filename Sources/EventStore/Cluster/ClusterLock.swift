/// The work that one node of the cluster does at a time, each with its PostgreSQL advisory-lock key.
/// Every key is declared here and nowhere else, so two kinds of work can never share one by accident.
/// (7_130_001 is taken too: the log lock, transaction-scoped, taken in SQL by `system.lock_log`,
/// schema/functions/log/lock_log.sql.)
public enum ClusterLock: Sendable, Hashable, CustomStringConvertible {
    /// Applying the schema: one migrator at a time across every process on the database.
    case migrations
    /// Posting the webhook outbox (`WebhookDispatcher`).
    case webhooks
    /// Removing stored bytes no object points at (`OrphanSweeper`).
    case orphanSweep
    /// Following the log for one async projection (`ProjectionRunner`): applying an event twice would
    /// corrupt its read model.
    case projection(String)

    /// The advisory-lock key (stable across processes and versions: nodes of different builds agree).
    public var key: Int64 {
        switch self {
        case .migrations: 7_130_000
        case .webhooks: 0x5745_4248_4f4f_4b53  // "WEBHOOKS"
        case .orphanSweep: 0x5354_4F52_4147_4531  // "STORAGE1"
        case .projection(let name): Self.fnv1a("projection:\(name)")
        }
    }

    public var description: String {
        switch self {
        case .migrations: "migrations"
        case .webhooks: "webhooks"
        case .orphanSweep: "orphan sweep"
        case .projection(let name): "projection \(name)"
        }
    }

    private static func fnv1a(_ text: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return Int64(bitPattern: hash)
    }
}
