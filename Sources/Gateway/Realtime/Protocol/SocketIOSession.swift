import EventStore

/// The Socket.IO v5 layer of one connection as a pure state machine, above `EngineIOSession`.
///
/// The client must CONNECT to the main namespace `/` (with its credentials as the auth object)
/// before anything else; the I/O layer checks the credentials and reports back with
/// `accepted(sid:)` or `refused(_:)`. Once connected, EVENT packets go up as events (with their
/// ack id, if the client wants an answer) and ACK packets as acks. Anything out of order closes the
/// connection, as the reference server does.
struct SocketIOSession: Sendable {
    enum State: Sendable, Equatable {
        case awaitingConnect
        case authenticating
        case connected(sid: String)
        case closed(String)
    }

    enum Action: Sendable, Equatable {
        /// Check these credentials (the CONNECT auth object, or nil), then call `accepted` or `refused`.
        case authenticate(JSONValue?)
        /// Send this packet to the client (as an Engine.IO message).
        case send(SocketIOPacket)
        /// The client emitted `name` with `arguments` (also as the text the client sent); when `ackId` is
        /// set it waits for an ACK.
        case event(name: String, arguments: [JSONValue], rawArguments: [Substring], ackId: Int?)
        /// The client answered the server's emit number `id`.
        case ack(id: Int, arguments: [JSONValue])
        /// Close the connection.
        case close(reason: String)
    }

    private(set) var state: State = .awaitingConnect

    /// An Engine.IO message arrived.
    mutating func received(_ text: String) -> [Action] {
        if case .closed = state { return [] }
        let packet: SocketIOPacket
        do {
            packet = try SocketIOPacket(decoding: text)
        } catch {
            return close("parse error: \(error)")
        }
        if packet.kind == .binaryEvent || packet.kind == .binaryAck { return close("binary attachments are not supported") }
        guard packet.namespace == "/" else {
            // Only the main namespace exists: refused the way socket.io refuses an unknown one.
            return packet.kind == .connect ? [.send(.connectError("Invalid namespace", namespace: packet.namespace))] : []
        }
        switch (state, packet.kind) {
        case (.awaitingConnect, .connect):
            state = .authenticating
            return [.authenticate(try? packet.decodedData())]
        case (.connected, .event):
            guard let (name, arguments) = try? packet.eventArguments() else { return close("invalid event") }
            let raw = packet.data.flatMap { RawJSON.elements(ofArray: Substring($0)) }?.dropFirst() ?? []
            return [.event(name: name, arguments: arguments, rawArguments: Array(raw), ackId: packet.ackId)]
        case (.connected, .ack):
            guard case .array(let arguments)? = try? packet.decodedData(), let id = packet.ackId else { return close("invalid ack") }
            return [.ack(id: id, arguments: arguments)]
        case (.connected, .disconnect), (.authenticating, .disconnect), (.awaitingConnect, .disconnect):
            state = .closed("client namespace disconnect")
            return [.close(reason: "client namespace disconnect")]
        default:
            return close("unexpected \(packet.kind) packet")
        }
    }

    /// The credentials were good: the client is connected as `sid`.
    mutating func accepted(sid: String) -> [Action] {
        guard state == .authenticating else { return [] }
        state = .connected(sid: sid)
        return [.send(SocketIOPacket(kind: .connect, data: #"{"sid":\#(JSONCoding.quoted(sid))}"#))]
    }

    /// The credentials were refused: CONNECT_ERROR with `message`; the client may try again.
    mutating func refused(_ message: String) -> [Action] {
        guard state == .authenticating else { return [] }
        state = .awaitingConnect
        return [.send(.connectError(message))]
    }

    /// The server emits an event to this client (ignored until it is connected).
    func emit(_ name: String, _ arguments: [String]) -> SocketIOPacket? {
        guard case .connected = state else { return nil }
        return .event(name, arguments)
    }

    private mutating func close(_ reason: String) -> [Action] {
        state = .closed(reason)
        return [.close(reason: reason)]
    }
}
