import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// What one socket does during a run.
enum SocketRole: Sendable {
    /// Connects and stays idle (the memory figure).
    case idle
    /// Subscribes and counts `tick` frames.
    case subscriber
    /// Subscribes, then publishes `tick` messages at a steady rate once `publishing` is set: first
    /// `warmup` seconds that are not measured, then `seconds` that are.
    case publisher(rate: Int, seconds: Int, warmup: Int)
}

/// Shared by every socket of a run: readiness counters, the channels (to close them), the results.
final class LoadRun: Sendable {
    let connected = Atomic<Int>(0)
    let subscribed = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let closed = Atomic<Int>(0)
    let publishing = Atomic<Bool>(false)
    let published = Atomic<Int>(0)
    let publishStarted = Atomic<UInt64>(0)
    let publishEnded = Atomic<UInt64>(0)
    /// Frames counted so far by all sockets.
    let framesSeen = Atomic<Int>(0)
    private let channels = Mutex<[any Channel]>([])
    private let tally = Mutex<(frames: Int, latencies: [UInt64], sent: [UInt64], last: UInt64)>((0, [], [], 0))

    func add(_ channel: any Channel) { channels.withLock { $0.append(channel) } }

    func merge(frames: Int, latencies: [UInt64], sent: [UInt64], last: UInt64) {
        tally.withLock { t in
            t.frames += frames
            t.latencies += latencies
            t.sent += sent
            t.last = max(t.last, last)
        }
    }

    /// Frames, their latencies and send times (same order), and when the last one arrived.
    var results: (frames: Int, latencies: [UInt64], sent: [UInt64], last: UInt64) { tally.withLock { $0 } }

    /// Closes every socket and waits until each has reported its figures.
    func closeAll() async {
        let all = channels.withLock { $0 }
        for channel in all { channel.close(promise: nil) }
        for _ in 0..<1000 where closed.load(ordering: .relaxed) < all.count { try? await Task.sleep(for: .milliseconds(10)) }
    }
}

/// Now, in nanoseconds of the monotonic clock shared by every process on the machine.
func monotonicNanos() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// A minimal Socket.IO v5 client over a WebSocket spoken directly on the TCP stream: the HTTP
/// upgrade, unmasked server frames parsed in place, masked client frames. No HTTP or frame codec
/// handlers and no task per frame, so the load generator stays light next to the server it
/// measures. It handles the open packet, CONNECT with an auth object, `realtime:subscribe` with an
/// ack, pings, and counts `tick` frames with their latency (the publisher puts its send time in the
/// payload as `t`).
enum LoadSocket {
    static func start(base: String, auth: String, channel: String, role: SocketRole, in load: LoadRun) {
        guard let url = URL(string: base), let host = url.host, let port = url.port else {
            load.failed.add(1, ordering: .relaxed)
            return
        }
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { connection in
                connection.eventLoop.makeCompletedFuture {
                    try connection.pipeline.syncOperations.addHandler(
                        SocketIOHandler(host: "\(host):\(port)", auth: auth, channel: channel, role: role, load: load))
                }
            }
        bootstrap.connect(host: host, port: port).whenComplete { result in
            switch result {
            case .success(let connection): load.add(connection)
            case .failure: load.failed.add(1, ordering: .relaxed)
            }
        }
    }
}

/// The Socket.IO client of one socket, on its event loop.
final class SocketIOHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let host: String
    let auth: String
    let channel: String
    let role: SocketRole
    let load: LoadRun
    private var upgraded = false
    /// Bytes of an incomplete response head or frame, kept for the next read.
    private var pending: ByteBuffer?
    /// The payload so far of a fragmented message.
    private var fragments: ByteBuffer?
    private var frames = 0
    private var latencies: [UInt64] = []
    private var sentAt: [UInt64] = []
    private var last: UInt64 = 0
    private var publishTask: RepeatedTask?

    init(host: String, auth: String, channel: String, role: SocketRole, load: LoadRun) {
        self.host = host
        self.auth = auth
        self.channel = channel
        self.role = role
        self.load = load
    }

    func channelActive(context: ChannelHandlerContext) {
        let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let head = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\n"
            + "Connection: Upgrade\r\nSec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n"
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: head)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if var kept = pending {
            kept.writeBuffer(&incoming)
            incoming = kept
        }
        pending = nil
        if !upgraded {
            guard let end = incoming.readableBytesView.firstRange(of: "\r\n\r\n".utf8) else {
                pending = incoming
                return
            }
            guard incoming.readableBytesView.starts(with: "HTTP/1.1 101".utf8) else {
                load.failed.add(1, ordering: .relaxed)
                context.close(promise: nil)
                return
            }
            incoming.moveReaderIndex(to: end.upperBound)
            upgraded = true
        }
        while let (opcode, fin, payload) = Self.nextFrame(&incoming) {
            switch opcode {
            case 0x0, 0x1:
                if fin && fragments == nil {
                    received(payload.readableBytesView, context)
                } else {
                    var payload = payload
                    fragments = fragments ?? context.channel.allocator.buffer(capacity: payload.readableBytes)
                    fragments!.writeBuffer(&payload)
                    if fin, let whole = fragments {
                        fragments = nil
                        received(whole.readableBytesView, context)
                    }
                }
            case 0x8:
                context.close(promise: nil)
                return
            case 0x9:
                write(opcode: 0xA, payload.readableBytesView, context)
            default:
                break
            }
        }
        if incoming.readableBytes > 0 { pending = incoming }
    }

    /// The next whole frame (opcode, fin, unmasked payload), consumed from `buffer`; nil when incomplete.
    static func nextFrame(_ buffer: inout ByteBuffer) -> (UInt8, Bool, ByteBuffer)? {
        let start = buffer.readerIndex
        guard let first = buffer.getInteger(at: start, as: UInt8.self), let second = buffer.getInteger(at: start + 1, as: UInt8.self) else {
            return nil
        }
        var offset = start + 2
        var length = Int(second & 0x7F)
        if length == 126 {
            guard let n = buffer.getInteger(at: offset, as: UInt16.self) else { return nil }
            length = Int(n)
            offset += 2
        } else if length == 127 {
            guard let n = buffer.getInteger(at: offset, as: UInt64.self) else { return nil }
            length = Int(n)
            offset += 8
        }
        var mask: [UInt8]?
        if second & 0x80 != 0 {
            guard let key = buffer.getBytes(at: offset, length: 4) else { return nil }
            mask = key
            offset += 4
        }
        guard var payload = buffer.getSlice(at: offset, length: length) else { return nil }
        buffer.moveReaderIndex(to: offset + length)
        if let mask {
            payload = ByteBuffer(bytes: payload.readableBytesView.enumerated().map { $0.element ^ mask[$0.offset % 4] })
        }
        return (first & 0x0F, first & 0x80 != 0, payload)
    }

    private func received(_ bytes: ByteBufferView, _ context: ChannelHandlerContext) {
        guard let first = bytes.first else { return }
        switch first {
        case UInt8(ascii: "2"):  // ping
            send("3", context)
        case UInt8(ascii: "0"):  // open
            send("40" + auth, context)
        case UInt8(ascii: "4"):
            if bytes.starts(with: #"42["tick""#.utf8) {
                guard load.publishing.load(ordering: .relaxed) || load.publishEnded.load(ordering: .relaxed) > 0,
                      let sent = Self.sentTime(bytes), sent > 0 else { return }  // 0: a warm-up message
                let now = monotonicNanos()
                frames += 1
                latencies.append(now &- sent)
                sentAt.append(sent)
                last = now
                load.framesSeen.add(1, ordering: .relaxed)
            } else if bytes.starts(with: "40".utf8) {
                load.connected.add(1, ordering: .relaxed)
                if case .idle = role { return }
                send(#"420["realtime:subscribe",{"channel":"\#(channel)"}]"#, context)
            } else if bytes.starts(with: "430".utf8) {
                guard String(decoding: bytes, as: UTF8.self).contains("\"ok\":true") else {
                    load.failed.add(1, ordering: .relaxed)
                    return
                }
                load.subscribed.add(1, ordering: .relaxed)
                if case .publisher(let rate, let seconds, let warmup) = role {
                    startPublishing(rate: rate, seconds: seconds, warmup: warmup, context)
                }
            } else if bytes.starts(with: "44".utf8) {
                load.failed.add(1, ordering: .relaxed)
            }
        default:
            return
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        publishTask?.cancel()
        load.merge(frames: frames, latencies: latencies, sent: sentAt, last: last)
        load.closed.add(1, ordering: .relaxed)
        context.fireChannelInactive()
    }

    private func send(_ text: String, _ context: ChannelHandlerContext) {
        write(opcode: 0x1, ByteBufferView(ByteBuffer(string: text)), context)
    }

    /// One masked client frame.
    private func write(opcode: UInt8, _ payload: ByteBufferView, _ context: ChannelHandlerContext) {
        var frame = context.channel.allocator.buffer(capacity: payload.count + 14)
        frame.writeInteger(0x80 | opcode)
        if payload.count < 126 {
            frame.writeInteger(UInt8(0x80 | payload.count))
        } else if payload.count <= Int(UInt16.max) {
            frame.writeInteger(UInt8(0x80 | 126))
            frame.writeInteger(UInt16(payload.count))
        } else {
            frame.writeInteger(UInt8(0x80 | 127))
            frame.writeInteger(UInt64(payload.count))
        }
        let mask = (0..<4).map { _ in UInt8.random(in: 0...255) }
        frame.writeBytes(mask)
        frame.writeBytes(payload.enumerated().lazy.map { $0.element ^ mask[$0.offset % 4] })
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }

    /// Once `publishing` is set: a warm-up of 20 messages over `warmup` seconds and as long again
    /// of quiet, then `rate` messages a second for `seconds`, on a fixed schedule. Warm-up messages
    /// carry `t: 0` and are not counted: they pay for the server's cold paths (pool connections,
    /// first executions of statements) without leaving a backlog behind on a slower server.
    private func startPublishing(rate: Int, seconds: Int, warmup: Int, _ context: ChannelHandlerContext) {
        let loop = context.eventLoop
        let unmeasured = warmup > 0 ? 20 : 0
        let total = unmeasured + rate * seconds
        var i = 0
        var started: NIODeadline?
        let interval = TimeAmount.nanoseconds(1_000_000_000 / Int64(rate))
        let warmupInterval = TimeAmount.nanoseconds(Int64(warmup) * 1_000_000_000 / Int64(max(unmeasured, 1)))
        let measuredFrom = TimeAmount.seconds(Int64(2 * warmup))
        let load = self.load
        let channel = self.channel
        let send = { [weak self] (text: String) in self.map { $0.send(text, context) } }
        publishTask = loop.scheduleRepeatedTask(initialDelay: .milliseconds(1), delay: .microseconds(500)) { task in
            guard load.publishing.load(ordering: .relaxed) else {
                if started != nil { task.cancel() }
                return
            }
            let now = NIODeadline.now()
            if started == nil { started = now }
            let start = started!
            while i < total,
                  (i < unmeasured ? start + warmupInterval * Int64(i) : start + measuredFrom + interval * Int64(i - unmeasured)) <= now {
                if i == unmeasured { load.publishStarted.store(monotonicNanos(), ordering: .relaxed) }
                let sent = i < unmeasured ? 0 : monotonicNanos()
                send(#"42["realtime:publish",{"channel":"\#(channel)","event":"tick","payload":{"t":\#(sent),"i":\#(i)}}]"#)
                if sent > 0 { load.published.add(1, ordering: .relaxed) }
                i += 1
            }
            if i >= total {
                load.publishEnded.store(monotonicNanos(), ordering: .relaxed)
                load.publishing.store(false, ordering: .relaxed)
                task.cancel()
            }
        }
    }

    /// The digits after `"t":` (and any spaces: Postgres prints `"t": 1`) in a frame.
    static func sentTime(_ bytes: ByteBufferView) -> UInt64? {
        var state = 0  // how much of `"t":` matched
        var value: UInt64 = 0
        var inNumber = false
        for byte in bytes {
            if inNumber {
                if byte == 32, value == 0 { continue }
                guard (48...57).contains(byte) else { return value }
                value = value * 10 + UInt64(byte - 48)
                continue
            }
            switch (state, byte) {
            case (0, 34): state = 1
            case (1, 116): state = 2
            case (2, 34): state = 3
            case (3, 58): inNumber = true
            case (_, 34): state = 1
            default: state = 0
            }
        }
        return inNumber ? value : nil
    }
}
