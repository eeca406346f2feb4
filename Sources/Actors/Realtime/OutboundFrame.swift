import EventStore
import NIOCore

/// A frame for one or many sockets: the Socket.IO packet, and the same as an Engine.IO message
/// (`4` + packet) in a buffer that every WebSocket it goes to shares (built once per message).
public struct OutboundFrame: Sendable {
    /// The Socket.IO packet, encoded.
    public let packet: String
    /// The Engine.IO message: `4` + packet.
    public let wire: ByteBuffer
    /// `wire` as a complete server-to-client WebSocket text frame (header and payload; servers do
    /// not mask, so the bytes are the same for every socket).
    public let webSocketFrame: ByteBuffer

    public init(_ packet: String) {
        self.packet = packet
        var wire = ByteBuffer()
        wire.reserveCapacity(packet.utf8.count + 1)
        wire.writeInteger(UInt8(ascii: "4"))
        wire.writeString(packet)
        self.wire = wire
        var frame = ByteBuffer()
        let length = wire.readableBytes
        frame.reserveCapacity(length + 10)
        frame.writeInteger(UInt8(0x81))  // FIN, text
        if length < 126 {
            frame.writeInteger(UInt8(length))
        } else if length <= Int(UInt16.max) {
            frame.writeInteger(UInt8(126))
            frame.writeInteger(UInt16(length))
        } else {
            frame.writeInteger(UInt8(127))
            frame.writeInteger(UInt64(length))
        }
        frame.writeImmutableBuffer(wire)
        self.webSocketFrame = frame
    }
}

extension OutboundFrame {
    /// A Socket.IO EVENT packet (`2["<name>",<body>]`) whose single argument `body` is JSON already.
    public static func event(_ name: String, body: String) -> OutboundFrame {
        OutboundFrame("2[" + JSONCoding.quoted(name) + "," + body + "]")
    }
}
