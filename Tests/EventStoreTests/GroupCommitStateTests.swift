import Testing

@testable import EventStore

/// The group-commit pump's bookkeeping, driven directly: no PostgreSQL, no tasks.
struct GroupCommitStateTests {
    struct Item: GroupCommitItem, Equatable {
        var streamId: String
        var n: Int
    }

    static func state(_ streams: [String]) -> GroupCommitState<Item> {
        var state = GroupCommitState<Item>()
        for (n, stream) in streams.enumerated() {
            let accepted = state.submit(Item(streamId: stream, n: n))
            #expect(accepted)
        }
        return state
    }

    @Test func aBatchTakesCommandsInOrderUpToItsLimit() {
        var state = Self.state(["a", "b", "c", "d"])
        let batch = state.takeBatch(limit: 3)
        #expect(batch.map(\.n) == [0, 1, 2])
        #expect(state.queue.map(\.n) == [3])
        #expect(state.busyStreams == ["a", "b", "c"])
    }

    @Test func aStreamInFlightIsPassedOverAndKeepsItsOrder() {
        var state = Self.state(["a", "b"])
        let first = state.takeBatch(limit: 1)
        #expect(first.map(\.n) == [0])
        for (n, stream) in [(2, "a"), (3, "c"), (4, "a")] { _ = state.submit(Item(streamId: stream, n: n)) }
        // "a" is in flight: its two later commands wait, "b" and "c" go.
        let second = state.takeBatch(limit: 10)
        #expect(second.map(\.n) == [1, 3])
        #expect(state.queue.map(\.n) == [2, 4])
        let othersWait = state.finish(first)  // "a" is free again, and commands wait for it
        #expect(othersWait)
        let third = state.takeBatch(limit: 10)
        #expect(third.map(\.n) == [2, 4])
    }

    @Test func finishingFreesStreamsAndCountsAnswers() {
        var state = Self.state(["a", "b"])
        let batch = state.takeBatch(limit: 2)
        #expect(state.inPlay == 2)
        let othersWait = state.finish(batch)
        #expect(!othersWait)  // nothing else waits
        #expect(state.inPlay == 0 && state.busyStreams.isEmpty)
    }

    @Test func atShutdownNothingNewIsTakenAndNothingWaitsForAStream() {
        var state = Self.state(["a", "a"])
        _ = state.takeBatch(limit: 1)
        state.isShutdown = true
        let accepted = state.submit(Item(streamId: "b", n: 9))
        #expect(!accepted)
        let rest = state.takeBatch(limit: 10)
        #expect(rest.map(\.n) == [1])  // the busy rule is off: drain everything
    }

    @Test func lingeringWaitsForALanesShareOfTheWritersAround() {
        var state = Self.state(Array(repeating: "s", count: 8).enumerated().map { "s\($0.offset)" })
        // 8 writers in play, 2 lanes: a batch is 4, and 8 wait, so no linger.
        let noLinger = state.startLinger(lanes: 2, maxBatch: 100)
        #expect(noLinger == nil)
        #expect(state.batchLimit(lanes: 2, maxBatch: 100) == 4)
        #expect(state.batchLimit(lanes: 2, maxBatch: 3) == 3)
        let batch = state.takeBatch(limit: 8)
        _ = state.finish(batch)
        _ = state.submit(Item(streamId: "x", n: 100))
        // One waits, but the peak remembers about eight writers: linger for a share of them.
        let round = state.startLinger(lanes: 2, maxBatch: 100)
        #expect(round == 1 && state.lingerTarget == 4 && !state.lingerIsOver)
        for n in 101...103 { _ = state.submit(Item(streamId: "x\(n)", n: n)) }
        #expect(state.lingerIsOver)
        // The peak decays by a sixteenth per round while fewer writers are around.
        #expect(state.recentPeak == 8)
        let taken = state.takeBatch(limit: 10)
        _ = state.finish(taken)
        _ = state.startLinger(lanes: 2, maxBatch: 100)
        #expect(state.recentPeak == 8 - 8 / 16)
    }

    @Test func aLateAnswerDoesNotOverwriteANewerVersion() {
        var cache = VersionCache()
        cache.record(5, for: "s", asOf: 100)
        cache.record(3, for: "s", asOf: 90)  // an older batch answered late
        #expect(cache.entries["s"]?.version == 5)
        cache.record(7, for: "s", asOf: 120)
        #expect(cache.entries["s"]?.version == 7 && cache.entries["s"]?.asOf == 120)
    }
}
