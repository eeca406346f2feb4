/// What the group-commit pump queues: something appended to one stream.
protocol GroupCommitItem: Sendable {
    var streamId: String { get }
}

/// The pump's bookkeeping, without I/O: what waits, which streams are in a batch in flight, how many
/// writers are around and how long to linger for them. `GroupCommitWriter` keeps it under a lock;
/// tests drive it directly, without PostgreSQL.
struct GroupCommitState<Item: GroupCommitItem> {
    var queue: [Item] = []
    var isShutdown = false
    /// Commands submitted and not yet answered (waiting or in a batch).
    var inPlay = 0
    /// A decaying maximum of `inPlay`: how many writers are around, even while some are between appends.
    var recentPeak = 0
    var batchesInFlight = 0
    var laneWaiter: CheckedContinuation<Void, Never>?
    /// The pump, lingering until `lingerTarget` commands wait (or its deadline passes).
    var lingerer: CheckedContinuation<Void, Never>?
    var lingerTarget = 0
    /// Counts lingers, so a deadline that fires late cannot end a later linger.
    var lingerRound = 0
    /// Streams of the batches in flight. A stream is in one batch in flight at most: a second could
    /// take the log lock first, and make the first one's cached version stale. (At shutdown the rule
    /// is off, and a stream freed early by one of two batches changes nothing.)
    var busyStreams: Set<String> = []

    /// Ends the linger, if one is on: the caller resumes what this returns, outside the lock.
    mutating func endLinger() -> CheckedContinuation<Void, Never>? {
        defer { lingerer = nil }
        return lingerer
    }

    /// Takes up to `limit` waiting commands, in order, passing over those whose stream is in a batch
    /// in flight (they keep their order and wait for the next batch). At shutdown nothing waits.
    mutating func takeBatch(limit: Int) -> [Item] {
        var batch: [Item] = [], kept: [Item] = []
        kept.reserveCapacity(queue.count)
        for waiting in queue {
            if batch.count < limit && (isShutdown || !busyStreams.contains(waiting.streamId)) {
                batch.append(waiting)
            } else {
                kept.append(waiting)
            }
        }
        queue = kept
        for waiting in batch { busyStreams.insert(waiting.streamId) }
        return batch
    }

    /// A batch is over: its streams are free, its callers answered. True when commands still wait
    /// (some may have been passed over for this batch's streams).
    mutating func finish(_ batch: [Item]) -> Bool {
        for waiting in batch { busyStreams.remove(waiting.streamId) }
        inPlay -= batch.count
        return !queue.isEmpty
    }

    /// Queues `item` unless shutting down; false when refused.
    mutating func submit(_ item: Item) -> Bool {
        guard !isShutdown else { return false }
        queue.append(item)
        inPlay += 1
        return true
    }

    /// Whether the commands waiting fill the batch a linger waits for.
    var lingerIsOver: Bool { queue.count >= lingerTarget }

    /// How many commands the next batch takes: the writers around shared between the lanes, so both
    /// are busy.
    func batchLimit(lanes: Int, maxBatch: Int) -> Int {
        min(maxBatch, max(1, (recentPeak + lanes - 1) / lanes))
    }

    /// Updates the decaying peak of writers; when fewer commands wait than a lane's share of them,
    /// starts a linger for that many and returns its round (nil: take a batch now).
    mutating func startLinger(lanes: Int, maxBatch: Int) -> Int? {
        recentPeak = max(inPlay, recentPeak - recentPeak / 16)
        let target = min(maxBatch, (recentPeak + lanes - 1) / lanes)
        if queue.count >= target || isShutdown { return nil }
        lingerTarget = target
        lingerRound += 1
        return lingerRound
    }
}
