/// An endless, ordered sequence of events after a position: it reads what is committed,
/// then waits for the watcher's signal (or the poll interval) and reads again.
/// Ends when the task is cancelled.
public struct EventSubscription: AsyncSequence, Sendable {
    public typealias Element = RecordedEvent
    let store: EventStore
    let after: Int64
    let filter: EventFilter
    let batchSize: Int

    public func makeAsyncIterator() -> Iterator {
        Iterator(store: store, cursor: after, filter: filter, batchSize: batchSize)
    }

    /// Reads in batches; holds at most one batch.
    public struct Iterator: AsyncIteratorProtocol {
        let store: EventStore
        var cursor: Int64
        let filter: EventFilter
        let batchSize: Int
        var buffer: [RecordedEvent] = []
        var index = 0
        /// Where the cursor goes once the buffer is used up: the log's head when the read that
        /// filled it found every wanted event up to there.
        var caughtUpTo: Int64?

        public mutating func next() async throws -> RecordedEvent? {
            while index >= buffer.count {
                if Task.isCancelled { return nil }
                if let head = caughtUpTo { cursor = Swift.max(cursor, head) }
                let generation = store.watcher.signal.generation
                let (events, head) = try await store.readAllWithHead(after: cursor, limit: batchSize, filter: filter)
                buffer = events
                caughtUpTo = events.count < batchSize ? head : nil
                index = 0
                if buffer.isEmpty {
                    await store.watcher.signal.wait(after: generation, timeout: store.watcher.pollInterval)
                }
            }
            let event = buffer[index]
            index += 1
            cursor = event.position
            return event
        }
    }
}
