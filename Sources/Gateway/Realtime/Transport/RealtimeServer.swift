import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore

/// `/socket.io/`: Engine.IO's two transports, HTTP long-polling (`GET` waits for packets, `POST`
/// sends them) and WebSocket (a fresh one, or the upgrade of a polling session). Thin shells around
/// `RealtimeConnection`.
struct RealtimeServer: Sendable {
    let credentials: CredentialsMiddleware
    let engineConfiguration: EngineIOSession.Configuration
    /// Channels, presence and messages (nil: the transport alone, as in protocol tests).
    var messaging: RealtimeMessaging?
    let sessions: RealtimeSessions

    init(credentials: CredentialsMiddleware, engineConfiguration: EngineIOSession.Configuration, messaging: RealtimeMessaging?,
         sessionLimits: (total: Int, perAddress: Int) = (10_000, 500)) {
        self.credentials = credentials
        self.engineConfiguration = engineConfiguration
        self.messaging = messaging
        self.sessions = RealtimeSessions(limits: sessionLimits)
    }

    struct Handshake {
        var transport: String
        var sid: String?
    }

    /// The Engine.IO query of a `/socket.io/` request, or the Engine.IO error code and message.
    static func handshake(query: String?) -> Result<Handshake, EngineIOFailure> {
        let items = Request.formFields(query ?? "")
        guard items["EIO"] == "4" else { return .failure(.init(code: 5, message: "Unsupported protocol version")) }
        guard let transport = items["transport"], ["polling", "websocket"].contains(transport) else {
            return .failure(.init(code: 0, message: "Transport unknown"))
        }
        return .success(Handshake(transport: transport, sid: items["sid"]))
    }

    struct EngineIOFailure: Error {
        var code: Int
        var message: String
        var status: HTTPResponse.Status = .badRequest
        var response: Response {
            Response(status: status, headers: [.contentType: "application/json"],
                     body: .init(byteBuffer: ByteBuffer(string: #"{"code":\#(code),"message":\#(JSONCoding.quoted(message))}"#)))
        }
    }

    /// A new session for a client at `address`; nil past the session limits.
    private func newConnection(_ transport: EngineIOSession.Transport, address: String?) -> RealtimeConnection? {
        let sessions = self.sessions
        let connection = RealtimeConnection(transport: transport, configuration: engineConfiguration,
                                            authenticate: { [credentials] auth in await Self.authenticate(auth, credentials) },
                                            messaging: messaging, onClose: { sessions.remove($0) })
        return sessions.add(connection, address: address) ? connection : nil
    }

    static let tooManySessions = EngineIOFailure(code: 3, message: "Too many sessions", status: .tooManyRequests)

    // MARK: WebSocket

    /// The handshake of an upgrade request that is ours (a new WebSocket session, or the upgrade of a
    /// known polling one); nil for any other.
    func webSocketHandshake(_ request: HTTPRequest) -> Handshake? {
        guard let path = request.path, path.hasPrefix("/socket.io/") || path.hasPrefix("/socket.io?") else { return nil }
        let query = path.split(separator: "?", maxSplits: 1).dropFirst().first.map(String.init)
        guard case .success(let handshake) = Self.handshake(query: query), handshake.transport == "websocket" else { return nil }
        if let sid = handshake.sid, sessions.find(sid) == nil { return nil }
        return handshake
    }

    /// Serves one WebSocket; `channel` is its NIO channel (the hub writes fan-out frames to it directly).
    func runWebSocket(_ handshake: Handshake, channel: any Channel, inbound: WebSocketInboundStream,
                      outbound: WebSocketOutboundWriter) async throws {
        // Room for a burst of frames before a client counts as too slow (see SocketSubscriber.send).
        _ = channel.setOption(ChannelOptions.writeBufferWaterMark, value: .init(low: 256 << 10, high: 4 << 20))
        let raw = RawWebSocketWriter(channel: channel)
        try await channel.pipeline.addHandler(raw, position: .first).get()
        let connection: RealtimeConnection
        if let sid = handshake.sid {
            guard let existing = sessions.find(sid), await existing.attach(outbound, raw: raw) else {
                try? await outbound.close(.policyViolation, reason: "session not upgradable")
                return
            }
            connection = existing
        } else {
            guard let fresh = newConnection(.websocket, address: channel.remoteAddress?.ipAddress) else {
                try? await outbound.close(.policyViolation, reason: "too many sessions")
                return
            }
            connection = fresh
            _ = await connection.attach(outbound, raw: raw)
            try await outbound.write(.text(await connection.openPacket.text))
            await connection.start()
        }
        do {
            for try await message in inbound.messages(maxSize: engineConfiguration.maxPayload) {
                switch message {
                case .text(let text): await connection.webSocketText(text)
                case .binary(let buffer): await connection.webSocketBinary(Array(buffer.readableBytesView))
                }
            }
        } catch {}  // a frame over maxPayload or a broken socket ends the transport
        await connection.webSocketClosed()
    }

    // MARK: polling

    func register(_ routes: RouteTable) {
        routes.add(.get, "/socket.io", "Socket.IO (Engine.IO 4): long-polling and WebSocket upgrade", access: .public) { request, context in
            try await poll(request, address: context.clientIP)
        }
        routes.add(.post, "/socket.io", "Socket.IO (Engine.IO 4): packets sent by long-polling", access: .public) { request, _ in
            try await post(request)
        }
    }

    private func pollingSession(_ request: Request) -> Result<(Handshake, RealtimeConnection?), EngineIOFailure> {
        switch Self.handshake(query: request.uri.query) {
        case .failure(let failure): return .failure(failure)
        case .success(let handshake):
            guard handshake.transport == "polling" else { return .failure(.init(code: 3, message: "Bad request")) }
            guard let sid = handshake.sid else { return .success((handshake, nil)) }
            guard let connection = sessions.find(sid) else { return .failure(.init(code: 1, message: "Session ID unknown")) }
            return .success((handshake, connection))
        }
    }

    func poll(_ request: Request, address: String?) async throws -> Response {
        switch pollingSession(request) {
        case .failure(let failure):
            return failure.response
        case .success((_, nil)):
            guard let connection = newConnection(.polling, address: address) else { return Self.tooManySessions.response }
            await connection.start()
            return Self.payload([await connection.openPacket])
        case .success((_, let connection?)):
            guard let packets = await connection.poll() else { return EngineIOFailure(code: 3, message: "Bad request").response }
            return Self.payload(packets)
        }
    }

    func post(_ request: Request) async throws -> Response {
        switch pollingSession(request) {
        case .failure(let failure):
            return failure.response
        case .success((_, nil)):
            return EngineIOFailure(code: 1, message: "Session ID unknown").response
        case .success((_, let connection?)):
            let body = try await request.body.collect(upTo: engineConfiguration.maxPayload + 1)
            guard body.readableBytes <= engineConfiguration.maxPayload else {
                await connection.abort("payload larger than \(engineConfiguration.maxPayload) bytes")
                return Response(status: .contentTooLarge)
            }
            await connection.post(String(buffer: body))
            return Response(status: .ok, headers: [.contentType: "text/html"], body: .init(byteBuffer: ByteBuffer(string: "ok")))
        }
    }

    static func payload(_ packets: [EngineIOPacket]) -> Response {
        Response(status: .ok, headers: [.contentType: "text/plain; charset=UTF-8"],
                 body: .init(byteBuffer: ByteBuffer(string: EngineIOPacket.encodePayload(packets))))
    }

    // MARK: credentials

    /// `{token}` (a JWT or the anon key) or `{apiKey}`; a socket without one is refused, as HTTP routes are.
    static func authenticate(_ auth: JSONValue?, _ credentials: CredentialsMiddleware) async -> Result<Credential, RealtimeRefusal> {
        let fields = auth?.objectValue ?? [:]
        guard let token = fields["token"]?.stringValue ?? fields["apiKey"]?.stringValue, !token.isEmpty else {
            return .failure(RealtimeRefusal(message: "No token provided"))
        }
        do {
            guard let credential = try await credentials.credential(for: token) else { return .failure(RealtimeRefusal(message: "Invalid token")) }
            return .success(credential)
        } catch {
            return .failure(RealtimeRefusal(message: "Invalid API key"))
        }
    }
}
