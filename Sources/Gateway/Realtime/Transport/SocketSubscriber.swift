import Actors
import NIOCore
import Synchronization

/// One connected Socket.IO socket: the hub's subscriber, writing to the socket's WebSocket or, while
/// it long-polls, queueing in its outbox.
final class SocketSubscriber: RealtimeSubscriber {
    let socketId: String
    let identity: DatabaseIdentity
    let role: String
    let outbox: FrameOutbox
    /// The socket's NIO channel while a WebSocket carries the session: frames are written to it on its
    /// event loop, many sockets per hop. Otherwise (long-polling) frames go through `outbox`.
    let direct = Mutex<RawWebSocketWriter?>(nil)
    /// The log position the client said it has seen (`{offset}` in its CONNECT payload): its
    /// subscriptions replay from there unless they say otherwise.
    let connectOffset: Int64?
    /// What this socket may still publish (`realtime:publish`), refilled over time.
    private let publishBudget: Mutex<TokenBucket?> = Mutex(nil)

    init(socketId: String, credential: Credential, connectOffset: Int64? = nil, outbox: FrameOutbox = FrameOutbox()) {
        self.socketId = socketId
        self.connectOffset = connectOffset
        self.identity = DatabaseIdentity(credential)
        self.role = credential.role
        self.outbox = outbox
    }

    /// Takes one publish from this socket's budget (a bucket of `rate`, full at the first publish).
    func mayPublish(rate: TokenBucket.Rate, now: Double) -> Bool {
        publishBudget.withLock { bucket in
            var current = bucket ?? TokenBucket(rate: rate, now: now)
            defer { bucket = current }
            return current.take(now: now)
        }
    }

    func send(_ frames: [OutboundFrame]) -> Bool {
        guard let writer = direct.withLock({ $0 }) else {
            return frames.allSatisfy { outbox.push($0) }
        }
        let encoded = frames.map(\.webSocketFrame)
        writer.channel.eventLoop.execute {
            if writer.write(encoded) { writer.flush() }
        }
        return true
    }
}

/// The hub's live frames onto sockets: WebSocket writes are grouped by event loop (one hop per loop
/// per batch, one flush per socket), and each message's frame was encoded once for all of them.
struct SocketSink: RealtimeSink {
    func deliver(_ writes: [(SocketSubscriber, OutboundFrame)]) -> [String] {
        var batches: [ObjectIdentifier: (loop: any EventLoop, writes: [(RawWebSocketWriter, ByteBuffer)])] = [:]
        var failed: [String] = []
        for (subscriber, frame) in writes {
            if let writer = subscriber.direct.withLock({ $0 }) {
                let loop = writer.channel.eventLoop
                batches[ObjectIdentifier(loop), default: (loop, [])].writes.append((writer, frame.webSocketFrame))
            } else if !subscriber.outbox.push(frame) {
                failed.append(subscriber.socketId)
            }
        }
        for (_, batch) in batches {
            let writes = batch.writes
            batch.loop.execute {
                var touched: [ObjectIdentifier: RawWebSocketWriter] = [:]
                for (writer, frame) in writes where writer.write(CollectionOfOne(frame)) {
                    touched[ObjectIdentifier(writer)] = writer
                }
                for writer in touched.values { writer.flush() }
            }
        }
        return failed
    }
}

/// The hub of this server: Socket.IO sockets as subscribers.
typealias SocketHub = RealtimeHub<SocketSink>
