import NIOConcurrencyHelpers
import NIOCore

/// A bounded hand-off of byte buffers from one producer (an upload being received) to one consumer
/// (the HTTP client sending them on): `send` waits while more than `limit` buffers are queued, so a slow
/// receiver slows the sender instead of filling memory.
final class StreamedBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer

    private struct State {
        var queue: [ByteBuffer] = []
        var finished = false
        var failure: (any Error)?
        var consumer: CheckedContinuation<ByteBuffer?, any Error>?
        var producer: CheckedContinuation<Void, any Error>?
    }

    private let state = NIOLockedValueBox(State())
    private let limit: Int

    init(limit: Int = 4) { self.limit = limit }

    /// Queues `buffer`, waiting first while the queue is full. Throws once the consumer has failed.
    func send(_ buffer: ByteBuffer) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let action: () -> Void = state.withLockedValue { s in
                if let failure = s.failure { return { continuation.resume(throwing: failure) } }
                if let consumer = s.consumer {
                    s.consumer = nil
                    return { consumer.resume(returning: buffer); continuation.resume() }
                }
                s.queue.append(buffer)
                if s.queue.count <= limit { return { continuation.resume() } }
                s.producer = continuation
                return {}
            }
            action()
        }
    }

    /// No more buffers: the consumer sees the end after the queued ones.
    func finish() {
        let consumer: CheckedContinuation<ByteBuffer?, any Error>? = state.withLockedValue { s in
            s.finished = true
            guard s.queue.isEmpty else { return nil }
            defer { s.consumer = nil }
            return s.consumer
        }
        consumer?.resume(returning: nil)
    }

    /// Ends both sides with `error`.
    func fail(_ error: any Error) {
        let (consumer, producer) = state.withLockedValue { s in
            s.failure = s.failure ?? error
            s.queue.removeAll()
            defer { s.consumer = nil; s.producer = nil }
            return (s.consumer, s.producer)
        }
        consumer?.resume(throwing: error)
        producer?.resume(throwing: error)
    }

    private func next() async throws -> ByteBuffer? {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ByteBuffer?, any Error>) in
            let action: () -> Void = state.withLockedValue { s in
                if let failure = s.failure { return { continuation.resume(throwing: failure) } }
                if !s.queue.isEmpty {
                    let buffer = s.queue.removeFirst()
                    let producer = s.producer
                    s.producer = nil
                    return { producer?.resume(); continuation.resume(returning: buffer) }
                }
                if s.finished { return { continuation.resume(returning: nil) } }
                s.consumer = continuation
                return {}
            }
            action()
        }
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        let body: StreamedBody
        mutating func next() async throws -> ByteBuffer? { try await body.next() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(body: self) }
}
