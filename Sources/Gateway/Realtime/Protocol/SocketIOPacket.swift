import EventStore
import Foundation

/// A Socket.IO v5 packet, carried in an Engine.IO `message`:
/// `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`.
///
/// `data` stays JSON text: outgoing frames are built once and sent to many sockets as they are,
/// and incoming ones are checked for the shape their type requires when parsed.
struct SocketIOPacket: Equatable, Sendable {
    enum Kind: Int, Sendable {
        case connect = 0, disconnect, event, ack, connectError, binaryEvent, binaryAck
    }

    var kind: Kind
    var namespace: String = "/"
    var ackId: Int?
    /// JSON text: an object for CONNECT, an object (or string) for CONNECT_ERROR, an array for
    /// EVENT (name first) and ACK, nothing for DISCONNECT.
    var data: String?
    /// Binary attachments announced by BINARY_EVENT / BINARY_ACK.
    var attachments = 0

    static let maxAckId = 1 << 53

    init(kind: Kind, namespace: String = "/", ackId: Int? = nil, data: String? = nil, attachments: Int = 0) {
        self.kind = kind
        self.namespace = namespace
        self.ackId = ackId
        self.data = data
        self.attachments = attachments
    }

    /// An EVENT packet: `name` and its arguments, each already JSON text.
    static func event(_ name: String, _ arguments: [String], namespace: String = "/", ackId: Int? = nil) -> SocketIOPacket {
        SocketIOPacket(kind: .event, namespace: namespace, ackId: ackId,
                       data: "[" + ([JSONCoding.quoted(name)] + arguments).joined(separator: ",") + "]")
    }

    /// An ACK packet answering `ackId` with `arguments` (JSON text each).
    static func ack(_ ackId: Int, _ arguments: [String], namespace: String = "/") -> SocketIOPacket {
        SocketIOPacket(kind: .ack, namespace: namespace, ackId: ackId, data: "[" + arguments.joined(separator: ",") + "]")
    }

    static func connectError(_ message: String, namespace: String = "/") -> SocketIOPacket {
        SocketIOPacket(kind: .connectError, namespace: namespace, data: #"{"message":\#(JSONCoding.quoted(message))}"#)
    }

    init(decoding text: String) throws(RealtimeProtocolError) {
        let bytes = Array(text.utf8)
        var i = 0
        guard let first = bytes.first, let kind = Kind(rawValue: Int(first) - Int(UInt8(ascii: "0"))) else {
            throw RealtimeProtocolError("unknown packet type")
        }
        self.kind = kind
        i = 1
        if kind == .binaryEvent || kind == .binaryAck {
            let start = i
            while i < bytes.count, Self.isDigit(bytes[i]) { i += 1 }
            guard i > start, i < bytes.count, bytes[i] == UInt8(ascii: "-"), i - start <= 6,
                  let count = Int(String(decoding: bytes[start..<i], as: UTF8.self)) else {
                throw RealtimeProtocolError("binary packet without an attachment count")
            }
            attachments = count
            i += 1
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "/") {
            let start = i
            while i < bytes.count, bytes[i] != UInt8(ascii: ",") { i += 1 }
            namespace = String(decoding: bytes[start..<i], as: UTF8.self)
            if i < bytes.count { i += 1 }  // the comma
        }
        if i < bytes.count, Self.isDigit(bytes[i]) {
            let start = i
            while i < bytes.count, Self.isDigit(bytes[i]) { i += 1 }
            guard i - start <= 16, let id = Int(String(decoding: bytes[start..<i], as: UTF8.self)), id <= Self.maxAckId else {
                throw RealtimeProtocolError("ack id out of range")
            }
            ackId = id
        }
        if i < bytes.count { data = String(decoding: bytes[i...], as: UTF8.self) }
        try validate()
    }

    private static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

    /// The data as a JSON value (nil when absent).
    func decodedData() throws(RealtimeProtocolError) -> JSONValue? {
        guard let data else { return nil }
        do {
            return try JSONCoding.decoder.decode(JSONValue.self, from: Data(data.utf8))
        } catch {
            throw RealtimeProtocolError("packet data is not JSON")
        }
    }

    /// What each type may carry (socket.io-parser's `isPayloadValid`).
    private func validate() throws(RealtimeProtocolError) {
        let value = try decodedData()
        switch kind {
        case .connect:
            if let value, value.objectValue == nil { throw RealtimeProtocolError("CONNECT data must be an object") }
        case .disconnect:
            if value != nil { throw RealtimeProtocolError("DISCONNECT carries no data") }
        case .connectError:
            switch value {
            case .object, .string: break
            default: throw RealtimeProtocolError("CONNECT_ERROR data must be an object or a string")
            }
        case .event, .binaryEvent:
            guard case .array(let items) = value, let name = items.first?.stringValue, !name.isEmpty else {
                throw RealtimeProtocolError("EVENT data must be an array starting with the event name")
            }
        case .ack, .binaryAck:
            guard ackId != nil, case .array = value else { throw RealtimeProtocolError("ACK needs an id and an array") }
        }
    }

    /// The event name and its arguments of an EVENT packet.
    func eventArguments() throws(RealtimeProtocolError) -> (name: String, arguments: [JSONValue]) {
        guard case .array(let items)? = try decodedData(), let name = items.first?.stringValue else {
            throw RealtimeProtocolError("not an event")
        }
        return (name, Array(items.dropFirst()))
    }

    var encoded: String {
        var out = String(kind.rawValue)
        if kind == .binaryEvent || kind == .binaryAck { out += "\(attachments)-" }
        if namespace != "/" { out += namespace + "," }
        if let ackId { out += String(ackId) }
        if let data { out += data }
        return out
    }
}
