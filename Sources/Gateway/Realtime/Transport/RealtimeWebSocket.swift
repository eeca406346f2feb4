import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore

/// The WebSocket transport of `/socket.io/`: a thin shell that feeds frames and time into
/// `EngineIOSession` and `SocketIOSession` and carries out what they answer.
struct RealtimeWebSocket: Sendable {
    let credentials: CredentialsMiddleware
    let engineConfiguration: EngineIOSession.Configuration
    let logger: Logger

    /// Whether `request` opens a Socket.IO WebSocket (Engine.IO 4, no polling session to upgrade).
    static func accepts(_ request: HTTPRequest) -> Bool {
        guard let path = request.path, path.hasPrefix("/socket.io/") else { return false }
        let query = path.split(separator: "?", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
        var items: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            items[Request.formDecode(kv[0])] = kv.count > 1 ? Request.formDecode(kv[1]) : ""
        }
        return items["EIO"] == "4" && items["transport"] == "websocket" && items["sid"] == nil
    }

    private enum Input: Sendable {
        case text(String)
        case binary([UInt8])
        case tick
        case closed
    }

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        var engine = EngineIOSession(sid: Self.newId(), transport: .websocket, configuration: engineConfiguration, now: .now)
        var socket = SocketIOSession()
        try await outbound.write(.text(engine.openPacket.text))
        let (inputs, feed) = AsyncStream.makeStream(of: Input.self)
        let maxPayload = engineConfiguration.maxPayload
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { feed.yield(.closed) }
                do {
                    for try await message in inbound.messages(maxSize: maxPayload) {
                        switch message {
                        case .text(let text): feed.yield(.text(text))
                        case .binary(let buffer): feed.yield(.binary(Array(buffer.readableBytesView)))
                        }
                    }
                } catch {}  // a frame over maxPayload or a broken socket ends the session
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    feed.yield(.tick)
                }
            }
            loop: for await input in inputs {
                let actions: [EngineIOSession.Action]
                switch input {
                case .text(let text): actions = engine.webSocketText(text)
                case .binary(let bytes): actions = engine.webSocketBinary(bytes)
                case .tick: actions = engine.tick(now: .now)
                case .closed: actions = engine.transportClosed(.websocket)
                }
                for action in actions {
                    switch action {
                    case .sendWebSocket(let packets):
                        for packet in packets { try await send(packet, on: outbound) }
                    case .answerPoll:
                        break  // no polling on this connection
                    case .deliver(let text):
                        for up in socket.received(text) {
                            for packet in await perform(up, socket: &socket) {
                                for engineAction in engine.send(.message(packet.encoded)) {
                                    if case .sendWebSocket(let out) = engineAction {
                                        for p in out { try await send(p, on: outbound) }
                                    }
                                }
                            }
                            if socket.isClosed { break }
                        }
                        if socket.isClosed {
                            _ = engine.transportClosed(.websocket)
                            break loop
                        }
                    case .deliverBinary:
                        break loop  // binary attachments are not supported
                    case .close:
                        break loop
                    }
                }
                if engine.isClosed { break }
            }
            group.cancelAll()
        }
    }

    private func send(_ packet: EngineIOPacket, on outbound: WebSocketOutboundWriter) async throws {
        if case .binary(let bytes) = packet {
            try await outbound.write(.binary(ByteBuffer(bytes: bytes)))
        } else {
            try await outbound.write(.text(packet.text))
        }
    }

    /// Carries out one Socket.IO action; returns the packets to send back.
    private func perform(_ action: SocketIOSession.Action, socket: inout SocketIOSession) async -> [SocketIOPacket] {
        switch action {
        case .authenticate(let auth):
            switch await authenticate(auth) {
            case .success:
                return socket.accepted(sid: Self.newId()).compactMap(\.packet)
            case .failure(let message):
                return socket.refused(message.description).compactMap(\.packet)
            }
        case .send(let packet):
            return [packet]
        case .event(let name, _, let ackId):
            // Channels come with the next step of the realtime issue; until then every event is refused.
            guard let ackId else { return [] }
            return [.ack(ackId, [#"{"ok":false,"error":{"code":"REALTIME_UNKNOWN_EVENT","message":\#(JSONCoding.quoted("unknown event \(name)"))}}"#])]
        case .ack, .close:
            return []
        }
    }

    struct Refusal: Error, CustomStringConvertible { var description: String }

    /// `{token}` (a JWT or the anon key) or `{apiKey}`; no credential at all is anonymous.
    private func authenticate(_ auth: JSONValue?) async -> Result<Credential, Refusal> {
        let fields = auth?.objectValue ?? [:]
        guard let token = fields["token"]?.stringValue ?? fields["apiKey"]?.stringValue, !token.isEmpty else {
            return .success(.none)
        }
        do {
            guard let credential = try await credentials.credential(for: token) else { return .failure(Refusal(description: "Invalid token")) }
            return .success(credential)
        } catch {
            return .failure(Refusal(description: "Invalid API key"))
        }
    }

    static func newId() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<15).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }
}

extension SocketIOSession.Action {
    var packet: SocketIOPacket? { if case .send(let packet) = self { packet } else { nil } }
}

extension SocketIOSession {
    var isClosed: Bool { if case .closed = state { true } else { false } }
}
