import Actors
import EventStore
import Foundation
import HummingbirdWebSocket
import NIOCore
import Synchronization

/// One Socket.IO connection, whichever transport carries it: the Engine.IO and Socket.IO state
/// machines plus the parked poll and the WebSocket writer. Transports call in with what arrived;
/// the actor carries out the machines' actions.
actor RealtimeConnection {
    let sid: String
    private var engine: EngineIOSession
    private var socket = SocketIOSession()
    private var parkedPoll: CheckedContinuation<[EngineIOPacket], Never>?
    private var webSocket: WebSocketOutboundWriter?
    private var rawWriter: RawWebSocketWriter?
    /// Set once the client has connected: its place in the hub.
    private var subscriber: SocketSubscriber?
    private let authenticate: @Sendable (JSONValue?) async -> Result<Credential, RealtimeRefusal>
    private let messaging: RealtimeMessaging?
    private let onClose: @Sendable (String) -> Void

    init(transport: EngineIOSession.Transport, configuration: EngineIOSession.Configuration,
         authenticate: @escaping @Sendable (JSONValue?) async -> Result<Credential, RealtimeRefusal>,
         messaging: RealtimeMessaging?, onClose: @escaping @Sendable (String) -> Void) {
        let sid = Self.newId()
        self.sid = sid
        // The first ping somewhere in the second half of the interval: spread over time, not in step.
        self.engine = EngineIOSession(sid: sid, transport: transport, configuration: configuration, now: .now,
                                      firstPing: configuration.pingInterval * Double.random(in: 0.5...1.0))
        self.authenticate = authenticate
        self.messaging = messaging
        self.onClose = onClose
    }

    var openPacket: EngineIOPacket { engine.openPacket }
    var isClosed: Bool { engine.isClosed }

    /// Starts the heartbeat; it stops by itself once the session is closed. (Cancelling it instead
    /// would cancel the close frame that a ping timeout sends from that very task.) It sleeps until
    /// the session's next deadline (a ping due, a pong overdue), not on a fixed beat: a thousand
    /// sockets that connected together then do not all wake every second.
    func start() {
        Task { [weak self] in
            while !Task.isCancelled {
                guard let deadline = await self?.nextDeadline else { return }
                try? await Task.sleep(until: deadline, clock: .continuous)
                guard let self, await !self.isClosed else { return }
                await self.tick()
            }
        }
    }

    /// When the heartbeat should next look (nil once closed).
    private var nextDeadline: ContinuousClock.Instant? { engine.isClosed ? nil : engine.nextDeadline }

    private func tick() async { await perform(engine.tick(now: .now)) }

    // MARK: polling

    /// A long-poll: the packets to answer with, or nil when another poll is already waiting (400).
    func poll() async -> [EngineIOPacket]? {
        if parkedPoll != nil {
            await perform(engine.pollArrived())
            return nil
        }
        return await withCheckedContinuation { (continuation: CheckedContinuation<[EngineIOPacket], Never>) in
            parkedPoll = continuation
            for action in engine.pollArrived() {
                switch action {
                case .answerPoll(let packets): answerPoll(packets)
                case .close: finish()
                default: break
                }
            }
        }
    }

    func post(_ body: String) async { await perform(engine.pollBody(body)) }

    /// Ends the session from outside the protocol (a polling body over the limit).
    func abort(_ reason: String) async { await perform(engine.abort(reason)) }

    // MARK: WebSocket

    /// Takes `outbound` as this session's WebSocket: its first one, or the probe of a polling session
    /// that has none yet. False for any other (a second socket must not take over a session).
    func attach(_ outbound: WebSocketOutboundWriter, raw: RawWebSocketWriter? = nil) -> Bool {
        guard !engine.isClosed, webSocket == nil || (engine.transport == .polling && engine.state == .open) else { return false }
        webSocket = outbound
        rawWriter = raw
        updateDirectWriter()
        return true
    }

    func webSocketText(_ text: String) async {
        await perform(engine.webSocketText(text))
        updateDirectWriter()
    }

    func webSocketBinary(_ bytes: [UInt8]) async { await perform(engine.webSocketBinary(bytes)) }

    func webSocketClosed() async { await perform(engine.transportClosed(.websocket)) }

    // MARK: actions

    private func perform(_ actions: [EngineIOSession.Action]) async {
        for action in actions {
            switch action {
            case .sendWebSocket(let packets):
                guard let webSocket else { continue }
                for packet in packets {
                    if case .binary(let bytes) = packet {
                        try? await webSocket.write(.binary(ByteBuffer(bytes: bytes)))
                    } else {
                        try? await webSocket.write(.text(packet.text))
                    }
                }
            case .answerPoll(let packets):
                answerPoll(packets)
            case .deliver(let text):
                for up in socket.received(text) {
                    for packet in await handle(up) {
                        await perform(engine.send(.message(packet.encoded)))
                    }
                }
                if case .closed(let reason) = socket.state { await perform(engine.abort(reason)) }
            case .deliverBinary:
                await perform(engine.abort("binary attachments are not supported"))
            case .close:
                finish()
                try? await webSocket?.close(.normalClosure, reason: nil)
            }
        }
    }

    /// Carries out one Socket.IO action; returns the packets to send back.
    private func handle(_ action: SocketIOSession.Action) async -> [SocketIOPacket] {
        switch action {
        case .authenticate(let auth):
            switch await authenticate(auth) {
            case .success(let credential):
                let socketId = Self.newId()
                let subscriber = SocketSubscriber(socketId: socketId, credential: credential, connectOffset: Self.offset(in: auth))
                self.subscriber = subscriber
                updateDirectWriter()
                startWriter(subscriber.outbox)
                return socket.accepted(sid: socketId).compactMap(\.packet)
            case .failure(let refusal):
                return socket.refused(refusal.message).compactMap(\.packet)
            }
        case .send(let packet):
            return [packet]
        case .event(let name, let arguments, let raw, let ackId):
            guard let messaging, let subscriber else {
                guard let ackId else { return [] }
                return [.ack(ackId, [#"{"ok":false,"error":{"code":"REALTIME_UNKNOWN_EVENT","message":\#(JSONCoding.quoted("unknown event \(name)"))}}"#])]
            }
            return await messaging.handle(name, arguments, raw: raw.first, from: subscriber).packets(ackId: ackId)
        case .ack, .close:
            return []
        }
    }

    /// `{offset}` of a CONNECT payload: the last log position the client received.
    static func offset(in auth: JSONValue?) -> Int64? {
        switch auth?.objectValue?["offset"] {
        case .number(let n) where n >= 0 && n < 9e15: Int64(n)
        case .string(let text): Int64(text).flatMap { $0 >= 0 ? $0 : nil }
        default: nil
        }
    }

    /// Drains the subscriber's outbox into the session until either ends; a full outbox (a client too
    /// slow to keep up) ends the session.
    private func startWriter(_ outbox: FrameOutbox) {
        Task { [weak self] in
            while let frames = await outbox.take() {
                guard let self else { return }
                await self.sendFrames(frames)
            }
            await self?.outboxClosed()
        }
    }

    private func sendFrames(_ frames: [OutboundFrame]) async {
        for frame in frames { await perform(engine.send(.message(frame.packet))) }
    }

    /// Hands the subscriber the WebSocket's raw writer while the WebSocket carries the open session
    /// (the hub then writes to it directly; otherwise frames go through the outbox and the engine).
    private func updateDirectWriter() {
        let open = engine.transport == .websocket && engine.state == .open
        subscriber?.direct.withLock { $0 = open ? rawWriter : nil }
    }

    private func outboxClosed() async {
        if !engine.isClosed { await perform(engine.abort("the client fell too far behind")) }
    }

    private func answerPoll(_ packets: [EngineIOPacket]) {
        parkedPoll?.resume(returning: packets)
        parkedPoll = nil
    }

    /// The engine has closed the session (its `close` action came after any answer to the parked poll).
    private func finish() {
        subscriber?.direct.withLock { $0 = nil }
        answerPoll([.close])
        if let subscriber {
            subscriber.outbox.close()
            if let hub = messaging?.hub { Task { await hub.remove(subscriber.socketId) } }
        }
        onClose(sid)
    }

    static func newId() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<15).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }
}

struct RealtimeRefusal: Error {
    var message: String
}

/// The open connections by Engine.IO session id.
final class RealtimeSessions: Sendable {
    private struct State {
        var connections: [String: RealtimeConnection] = [:]
        /// Each session's client address (its key in `perAddress`).
        var addressOf: [String: String] = [:]
        var perAddress: [String: Int] = [:]
    }
    private let state = Mutex(State())
    /// Most sessions at once, and per client address (IPv6 by /64).
    let limits: (total: Int, perAddress: Int)

    init(limits: (total: Int, perAddress: Int) = (10_000, 500)) { self.limits = limits }

    /// Adds `connection` unless a limit is reached (false then).
    func add(_ connection: RealtimeConnection, address: String?) -> Bool {
        let key = ClientAddress.limitKey(address ?? "unknown")
        return state.withLock { s in
            guard s.connections.count < limits.total, s.perAddress[key, default: 0] < limits.perAddress else { return false }
            s.connections[connection.sid] = connection
            s.addressOf[connection.sid] = key
            s.perAddress[key, default: 0] += 1
            return true
        }
    }

    func remove(_ sid: String) {
        state.withLock { s in
            guard s.connections.removeValue(forKey: sid) != nil, let key = s.addressOf.removeValue(forKey: sid) else { return }
            s.perAddress[key, default: 1] -= 1
            if s.perAddress[key] == 0 { s.perAddress[key] = nil }
        }
    }

    func find(_ sid: String) -> RealtimeConnection? { state.withLock { $0.connections[sid] } }
}

extension SocketIOSession.Action {
    var packet: SocketIOPacket? { if case .send(let packet) = self { packet } else { nil } }
}
