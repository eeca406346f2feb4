import EventStore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Recently read users, for the hot read path (`GET /api/auth/sessions/current`).
///
/// Entries are dropped when their user changes: at once by this node's own commands (read your
/// writes), and by its `LogFollower` (see `followers`) for changes made by any node (it follows `user-*` events
/// in the log, woken by NOTIFY). Bounded: when full, it starts over.
///
/// A read that raced with a change must not park the old state in the cache: readers take a
/// ticket (the invalidation count) before reading the database, and `put` keeps the user only
/// if nothing was invalidated since.
public final class UserCache: Sendable {
    struct State {
        var entries: [UUID: UserRecord] = [:]
        var invalidations: UInt64 = 0
    }

    private let state = Mutex(State())
    let capacity: Int

    public init(capacity: Int = 50_000) { self.capacity = capacity }

    func get(_ id: UUID) -> UserRecord? { state.withLock { $0.entries[id] } }

    /// Take before reading the database; pass to `put`.
    func ticket() -> UInt64 { state.withLock { $0.invalidations } }

    func put(_ user: UserRecord, ticket: UInt64) {
        state.withLock {
            guard $0.invalidations == ticket else { return }
            if $0.entries.count >= capacity { $0.entries.removeAll(keepingCapacity: true) }
            $0.entries[user.id] = user
        }
    }

    func invalidate(_ id: UUID) {
        state.withLock {
            $0.invalidations &+= 1
            $0.entries.removeValue(forKey: id)
        }
    }

    func invalidateAll() {
        state.withLock {
            $0.invalidations &+= 1
            $0.entries.removeAll(keepingCapacity: true)
        }
    }
}
