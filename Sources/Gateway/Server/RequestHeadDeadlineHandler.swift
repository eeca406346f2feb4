import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore

/// Closes a connection whose first request head is not complete within `limit` of connecting
/// (slowloris). It sits in front of the HTTP decoder and looks for the blank line that ends the
/// head; once seen, it leaves the pipeline and Hummingbird's idle timeout takes over. (The
/// WebSocket-upgrade channel adds that idle handler only after the first head, so a head that never
/// completes would otherwise hold its connection for ever.)
final class RequestHeadDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let limit: TimeAmount
    private var deadline: Scheduled<Void>?
    /// The last bytes seen (up to 3), so a `\r\n\r\n` split across reads is found.
    private var tail: [UInt8] = []
    private var done = false

    init(limit: TimeAmount) { self.limit = limit }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    private func arm(_ context: ChannelHandlerContext) {
        guard deadline == nil, !done else { return }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: limit) { loopBound.value.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !done {
            let buffer = unwrapInboundIn(data)
            if Self.endsHead(tail: &tail, buffer.readableBytesView) {
                done = true
                deadline?.cancel()
                deadline = nil
                context.fireChannelRead(data)
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
                return
            }
        }
        context.fireChannelRead(data)
    }

    /// Whether `bytes`, after the `tail` of earlier reads, hold `\r\n\r\n`; updates `tail`.
    static func endsHead(tail: inout [UInt8], _ bytes: ByteBufferView) -> Bool {
        var window = tail
        for byte in bytes {
            window.append(byte)
            if window.count > 4 { window.removeFirst() }
            if window == [13, 10, 13, 10] { return true }
        }
        tail = Array(window.suffix(3))
        return false
    }
}

/// The server's child channel: HTTP/1 with the WebSocket upgrade, behind a request-head deadline.
struct DeadlineHTTPChannel: ServerChildChannel {
    typealias Value = HTTP1WebSocketUpgradeChannel.Value
    let inner: HTTP1WebSocketUpgradeChannel
    let headLimit: TimeAmount

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        do {
            try channel.pipeline.syncOperations.addHandler(RequestHeadDeadlineHandler(limit: headLimit), position: .first)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return inner.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}
