import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization

/// What one socket does during a run.
enum SocketRole: Sendable {
    /// Connects and stays idle (the memory figure).
    case idle
    /// Subscribes and counts `tick` frames.
    case subscriber
    /// Subscribes, then publishes `tick` messages at a steady rate once `publishing` is set.
    case publisher(rate: Int, seconds: Int)
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
    /// Frames counted so far by all sockets (updated every 64 frames per socket, to keep it cheap).
    let framesSeen = Atomic<Int>(0)
    private let channels = Mutex<[any Channel]>([])
    private let tally = Mutex<(frames: Int, latencies: [UInt64], last: UInt64)>((0, [], 0))

    func add(_ channel: any Channel) { channels.withLock { $0.append(channel) } }

    func merge(frames: Int, latencies: [UInt64], last: UInt64) {
        tally.withLock { t in
            t.frames += frames
            t.latencies += latencies
            t.last = max(t.last, last)
        }
    }

    var results: (frames: Int, latencies: [UInt64], last: UInt64) { tally.withLock { $0 } }

    /// Closes every socket and waits until each has reported its figures.
    func closeAll() async {
        let all = channels.withLock { $0 }
        for channel in all { channel.close(promise: nil) }
        for _ in 0..<1000 where closed.load(ordering: .relaxed) < all.count { try? await Task.sleep(for: .milliseconds(10)) }
    }
}

/// Now, in nanoseconds of the monotonic clock shared by every process on the machine.
func monotonicNanos() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// A minimal Socket.IO v5 client on a raw NIO WebSocket (frames handled on the event loop, no task
/// per frame, so the load generator stays light next to the server it measures): the open packet,
/// CONNECT with an auth object, `realtime:subscribe` with an ack, pings answered, `tick` frames
/// counted with their latency (the publisher puts its send time in the payload as `t`).
enum LoadSocket {
    static func start(base: String, auth: String, channel: String, role: SocketRole, in load: LoadRun) {
        guard let url = URL(string: base), let host = url.host, let port = url.port else {
            load.failed.add(1, ordering: .relaxed)
            return
        }
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).channelInitializer { connection in
            let upgrader = NIOWebSocketClientUpgrader(
                requestKey: Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString(),
                maxFrameSize: 1 << 20, automaticErrorHandling: true
            ) { connection, _ in
                connection.pipeline.addHandler(SocketIOHandler(auth: auth, channel: channel, role: role, load: load))
            }
            let upgrade: NIOHTTPClientUpgradeConfiguration = (upgraders: [upgrader], completionHandler: { _ in })
            return connection.pipeline.addHTTPClientHandlers(leftOverBytesStrategy: .forwardBytes, withClientUpgrade: upgrade).flatMap {
                connection.pipeline.addHandler(UpgradeRequest(host: "\(host):\(port)", path: "/socket.io/?EIO=4&transport=websocket"))
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

/// Sends the HTTP upgrade request once connected.
final class UpgradeRequest: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart
    let host: String
    let path: String

    init(host: String, path: String) {
        self.host = host
        self.path = path
    }

    func channelActive(context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        headers.add(name: "Content-Length", value: "0")
        context.write(wrapOutboundOut(.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)  // its job is done
    }
}

/// The Socket.IO client of one socket, on its event loop.
final class SocketIOHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let auth: String
    let channel: String
    let role: SocketRole
    let load: LoadRun
    private var frames = 0
    private var latencies: [UInt64] = []
    private var last: UInt64 = 0
    private var publishTask: RepeatedTask?

    init(auth: String, channel: String, role: SocketRole, load: LoadRun) {
        self.auth = auth
        self.channel = channel
        self.role = role
        self.load = load
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard frame.opcode == .text else {
            if frame.opcode == .connectionClose { context.close(promise: nil) }
            return
        }
        let bytes = frame.unmaskedData.readableBytesView
        guard let first = bytes.first else { return }
        switch first {
        case UInt8(ascii: "2"):  // ping
            send("3", context)
        case UInt8(ascii: "0"):  // open
            send("40" + auth, context)
        case UInt8(ascii: "4"):
            if bytes.starts(with: #"42["tick""#.utf8) {
                guard load.publishing.load(ordering: .relaxed) || load.publishEnded.load(ordering: .relaxed) > 0,
                      let sent = Self.sentTime(bytes) else { return }
                let now = monotonicNanos()
                frames += 1
                latencies.append(now &- sent)
                last = now
                if frames % 64 == 0 { load.framesSeen.add(64, ordering: .relaxed) }
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
                if case .publisher(let rate, let seconds) = role { startPublishing(rate: rate, seconds: seconds, context) }
            } else if bytes.starts(with: "44".utf8) {
                load.failed.add(1, ordering: .relaxed)
            }
        default:
            return
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        publishTask?.cancel()
        load.framesSeen.add(frames % 64, ordering: .relaxed)
        load.merge(frames: frames, latencies: latencies, last: last)
        load.closed.add(1, ordering: .relaxed)
        context.fireChannelInactive()
    }

    private func send(_ text: String, _ context: ChannelHandlerContext) {
        let buffer = context.channel.allocator.buffer(string: text)
        let mask = WebSocketMaskingKey.random()
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, maskKey: mask, data: buffer)), promise: nil)
    }

    /// Once `publishing` is set: `rate` messages a second for `seconds`, on a fixed schedule.
    private func startPublishing(rate: Int, seconds: Int, _ context: ChannelHandlerContext) {
        let loop = context.eventLoop
        let total = rate * seconds
        var i = 0
        var started: NIODeadline?
        let interval = TimeAmount.nanoseconds(1_000_000_000 / Int64(rate))
        let load = self.load
        let channel = self.channel
        let send = { [weak self] (text: String) in self.map { $0.send(text, context) } }
        publishTask = loop.scheduleRepeatedTask(initialDelay: .milliseconds(1), delay: .microseconds(500)) { task in
            guard load.publishing.load(ordering: .relaxed) else {
                if started != nil { task.cancel() }
                return
            }
            let now = NIODeadline.now()
            if started == nil {
                started = now
                load.publishStarted.store(monotonicNanos(), ordering: .relaxed)
            }
            while i < total, started! + interval * Int64(i) <= now {
                send(#"42["realtime:publish",{"channel":"\#(channel)","event":"tick","payload":{"t":\#(monotonicNanos()),"i":\#(i)}}]"#)
                load.published.add(1, ordering: .relaxed)
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
