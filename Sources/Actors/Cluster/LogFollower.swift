import EventStore
import Logging
import ServiceLifecycle

/// Follows the log on every node, from a checkpoint: where the log ends when it starts (and again
/// after each failure), handing every event that matches `filter` to `apply`. What happened before
/// the checkpoint is unknown to it, so `resync` runs first each time: in-memory caches drop or reload
/// everything there. Nothing is stored: this is for state a node rebuilds, not for read models (those
/// are `ProjectionRunner`'s, with a checkpoint in the database).
public struct LogFollower: Service {
    public let name: String
    let store: EventStore
    let filter: EventFilter
    let resync: @Sendable () async throws -> Void
    let apply: @Sendable (RecordedEvent) async throws -> Void
    let logger: Logger

    public init(_ name: String, store: EventStore, filter: EventFilter, logger: Logger,
                resync: @escaping @Sendable () async throws -> Void,
                apply: @escaping @Sendable (RecordedEvent) async throws -> Void) {
        self.name = name
        self.store = store
        self.filter = filter
        self.resync = resync
        self.apply = apply
        self.logger = logger
    }

    public func run() async throws {
        while !shutdownRequested {
            do {
                let checkpoint = try await store.headPosition()
                try await resync()
                try await cancelWhenGracefulShutdown {
                    for try await event in store.subscribe(after: checkpoint, filter: filter) {
                        try await apply(event)
                    }
                }
            } catch {
                if shutdownRequested { return }
                logger.warning("\(name) follower failed; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}
