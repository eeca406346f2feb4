import Foundation

/// A malformed Engine.IO or Socket.IO packet: the session closes (Engine.IO) or the client is
/// disconnected with the reason (Socket.IO), as the reference servers do.
struct RealtimeProtocolError: Error, Equatable, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// An Engine.IO v4 packet: the transport layer under Socket.IO.
///
/// Text packets are a type digit followed by their data. Binary messages travel as WebSocket
/// binary frames, or as `b` + base64 inside a polling payload, where packets are separated by the
/// record separator (0x1E).
enum EngineIOPacket: Equatable, Sendable {
    case open(String)
    case close
    case ping(String)
    case pong(String)
    case message(String)
    case binary([UInt8])
    case upgrade
    case noop

    static let separator: Character = "\u{1e}"

    /// Parses one text packet (a WebSocket text frame, or one piece of a polling payload).
    init(text: Substring) throws(RealtimeProtocolError) {
        guard let type = text.first else { throw RealtimeProtocolError("empty packet") }
        let data = String(text.dropFirst())
        switch type {
        case "0": self = .open(data)
        case "1": self = .close
        case "2": self = .ping(data)
        case "3": self = .pong(data)
        case "4": self = .message(data)
        case "5": self = .upgrade
        case "6": self = .noop
        case "b":
            guard let bytes = Data(base64Encoded: data) else { throw RealtimeProtocolError("binary packet is not base64") }
            self = .binary([UInt8](bytes))
        default: throw RealtimeProtocolError("unknown packet type \(type)")
        }
    }

    /// The packet as text: what a WebSocket text frame or a polling payload carries.
    var text: String {
        switch self {
        case .open(let data): "0" + data
        case .close: "1"
        case .ping(let data): "2" + data
        case .pong(let data): "3" + data
        case .message(let data): "4" + data
        case .binary(let bytes): "b" + Data(bytes).base64EncodedString()
        case .upgrade: "5"
        case .noop: "6"
        }
    }

    /// The packets of a polling request body; refused when it is larger than `maxPayload` bytes.
    static func decodePayload(_ body: String, maxPayload: Int) throws(RealtimeProtocolError) -> [EngineIOPacket] {
        guard body.utf8.count <= maxPayload else { throw RealtimeProtocolError("payload larger than \(maxPayload) bytes") }
        var packets: [EngineIOPacket] = []
        for piece in body.split(separator: separator, omittingEmptySubsequences: false) {
            packets.append(try EngineIOPacket(text: piece))
        }
        return packets
    }

    /// A polling response body holding `packets`.
    static func encodePayload(_ packets: [EngineIOPacket]) -> String {
        packets.map(\.text).joined(separator: String(separator))
    }
}

/// The handshake the server sends in its `open` packet.
struct EngineIOHandshake: Codable, Equatable, Sendable {
    var sid: String
    var upgrades: [String]
    var pingInterval: Int
    var pingTimeout: Int
    var maxPayload: Int
}
