import Actors
import NIOCore
import Synchronization

/// The frames waiting for one socket: the hub pushes without waiting (it never blocks on a slow
/// client), the connection's writer takes everything queued at once. Bounded: a client that falls
/// `limit` frames behind is cut off rather than let the server's memory grow.
final class FrameOutbox: Sendable {
    private struct State {
        var frames: [OutboundFrame] = []
        var bytes = 0
        var waiter: CheckedContinuation<[OutboundFrame]?, Never>?
        var closed = false
    }

    private let state = Mutex(State())
    let limit: Int
    /// Bytes of frames that may wait; a few large messages fill it long before `limit` frames do.
    let byteLimit: Int

    init(limit: Int = 10_000, byteLimit: Int = 16 << 20) {
        self.limit = limit
        self.byteLimit = byteLimit
    }

    /// Queues a Socket.IO packet (encoded); false when the outbox is closed or full (then it closes).
    @discardableResult
    func push(_ frame: OutboundFrame) -> Bool {
        let (ok, waiter): (Bool, CheckedContinuation<[OutboundFrame]?, Never>?) = state.withLock { s in
            guard !s.closed else { return (false, nil) }
            guard s.frames.count < limit, s.bytes + frame.wire.readableBytes <= byteLimit else {
                s.closed = true
                s.frames = []
                s.bytes = 0
                return (false, s.waiter.take())
            }
            if let waiter = s.waiter.take() { return (true, waiter) }
            s.frames.append(frame)
            s.bytes += frame.wire.readableBytes
            return (true, nil)
        }
        if let waiter { waiter.resume(returning: ok ? [frame] : nil) }
        return ok
    }

    /// Everything queued, waiting for at least one frame; nil once closed.
    func take() async -> [OutboundFrame]? {
        await withCheckedContinuation { (continuation: CheckedContinuation<[OutboundFrame]?, Never>) in
            let ready: [OutboundFrame]?? = state.withLock { s in
                if s.closed { return .some(nil) }
                if !s.frames.isEmpty {
                    defer { s.frames = []; s.bytes = 0 }
                    return .some(s.frames)
                }
                s.waiter = continuation
                return .none
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Whether a push overflowed it (the writer then ends the session).
    var isClosed: Bool { state.withLock { $0.closed } }

    func close() {
        let waiter = state.withLock { s in
            s.closed = true
            s.frames = []
            return s.waiter.take()
        }
        waiter?.resume(returning: nil)
    }
}
