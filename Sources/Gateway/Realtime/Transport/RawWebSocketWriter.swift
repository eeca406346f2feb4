import Actors
import NIOCore

/// Sits next to the socket in a WebSocket's pipeline and writes frames that are already encoded
/// (`OutboundFrame.webSocketFrame`), so a fan-out skips the frame encoder for each socket. Used on
/// the channel's event loop only.
final class RawWebSocketWriter: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let channel: any Channel
    private var context: ChannelHandlerContext?

    init(channel: any Channel) { self.channel = channel }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Queues `frames` (on the event loop); false when the socket is gone or too far behind (it is
    /// then closed: the client reconnects and catches up with `since`).
    func write(_ frames: some Sequence<ByteBuffer>) -> Bool {
        guard let context, channel.isActive else { return false }
        guard channel.isWritable else {
            channel.close(promise: nil)
            return false
        }
        for frame in frames { context.write(wrapOutboundOut(frame), promise: nil) }
        return true
    }

    func flush() { context?.flush() }
}
