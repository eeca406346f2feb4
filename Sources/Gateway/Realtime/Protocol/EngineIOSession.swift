import EventStore

/// One Engine.IO v4 session as a pure state machine: the transports, the heartbeat, the upgrade
/// from HTTP long-polling to WebSocket. The I/O layer feeds it what arrived and the time, and
/// carries out the actions it returns; nothing here touches a socket or a clock.
///
/// Heartbeat: the server pings every `pingInterval`; a session that has not answered a ping
/// within `pingTimeout` is closed. Upgrade: on a WebSocket opened for this session the client sends
/// `2probe` (answered `3probe`), the pending poll is released with a `noop`, and the client's `5`
/// switches the session to the WebSocket, where whatever was queued for polling goes next.
struct EngineIOSession: Sendable {
    enum Transport: Sendable, Equatable { case polling, websocket }

    enum State: Sendable, Equatable {
        case open
        /// A WebSocket has been probed; packets still go out by polling until the client upgrades.
        case upgrading
        case closed(String)
    }

    enum Action: Sendable, Equatable {
        /// Send these packets on the WebSocket.
        case sendWebSocket([EngineIOPacket])
        /// Answer the parked poll (or the one that just arrived) with these packets.
        case answerPoll([EngineIOPacket])
        /// A message for the layer above (Socket.IO).
        case deliver(String)
        case deliverBinary([UInt8])
        /// The session is over: close every transport.
        case close(reason: String)
    }

    struct Configuration: Sendable {
        var pingInterval: Duration = .seconds(25)
        var pingTimeout: Duration = .seconds(20)
        var maxPayload = 1_000_000
        /// Bytes that may wait for a client that does not poll; past it the session closes (a client
        /// that only answers pings cannot make the server hold its messages for ever).
        var maxQueuedBytes = 8_000_000
    }

    let sid: String
    let configuration: Configuration
    private(set) var transport: Transport
    private(set) var state: State = .open
    /// Packets waiting for the next poll (polling transport, or until an upgrade completes).
    private(set) var queued: [EngineIOPacket] = [] {
        didSet { if queued.isEmpty { queuedBytes = 0 } }
    }
    private var queuedBytes = 0
    private(set) var pollParked = false
    private var nextPing: ContinuousClock.Instant
    private var pongDeadline: ContinuousClock.Instant?

    /// `firstPing`: when to send the first ping (default `pingInterval`). Sockets that connect
    /// together (a load, a reconnect storm) would otherwise ping together forever after.
    init(sid: String, transport: Transport, configuration: Configuration = .init(), now: ContinuousClock.Instant,
         firstPing: Duration? = nil) {
        self.sid = sid
        self.transport = transport
        self.configuration = configuration
        self.nextPing = now + min(firstPing ?? configuration.pingInterval, configuration.pingInterval)
    }

    /// The `open` packet: the first thing the client receives on either transport.
    var openPacket: EngineIOPacket {
        let handshake = EngineIOHandshake(sid: sid, upgrades: transport == .polling ? ["websocket"] : [],
                                          pingInterval: Int(configuration.pingInterval / .milliseconds(1)),
                                          pingTimeout: Int(configuration.pingTimeout / .milliseconds(1)),
                                          maxPayload: configuration.maxPayload)
        return .open((try? JSONCoding.encodeString(handshake)) ?? "{}")
    }

    var isClosed: Bool { if case .closed = state { true } else { false } }

    /// When the I/O layer should next call `tick`.
    var nextDeadline: ContinuousClock.Instant { pongDeadline.map { min($0, nextPing) } ?? nextPing }

    // MARK: inputs

    /// Sends `packet` to the client on the current transport.
    mutating func send(_ packet: EngineIOPacket) -> [Action] {
        guard !isClosed else { return [] }
        if transport == .websocket { return [.sendWebSocket([packet])] }
        queued.append(packet)
        queuedBytes += packet.text.utf8.count + 1
        if queuedBytes > configuration.maxQueuedBytes { return close("more than \(configuration.maxQueuedBytes) bytes waiting for a poll") }
        return releasePoll()
    }

    /// A polling GET arrived. Answered at once when packets wait, parked otherwise.
    mutating func pollArrived() -> [Action] {
        if isClosed { return [.answerPoll([.close])] }
        guard transport == .polling else { return close("poll on a session that upgraded") }
        guard !pollParked else { return close("overlapping polls") }
        pollParked = true
        return releasePoll()
    }

    /// The body of a polling POST.
    mutating func pollBody(_ body: String) -> [Action] {
        guard !isClosed else { return [] }
        guard transport == .polling else { return close("post on a session that upgraded") }
        let packets: [EngineIOPacket]
        do {
            packets = try EngineIOPacket.decodePayload(body, maxPayload: configuration.maxPayload)
        } catch {
            return close("invalid payload: \(error)")
        }
        var actions: [Action] = []
        for packet in packets {
            actions += received(packet, via: .polling)
            if isClosed { break }
        }
        return actions
    }

    /// A WebSocket text frame (on a WebSocket opened for this session, or the one it started on).
    mutating func webSocketText(_ text: String) -> [Action] {
        guard !isClosed else { return [] }
        guard text.utf8.count <= configuration.maxPayload else { return close("message larger than maxPayload") }
        do {
            return received(try EngineIOPacket(text: Substring(text)), via: .websocket)
        } catch {
            return close("invalid packet: \(error)")
        }
    }

    mutating func webSocketBinary(_ bytes: [UInt8]) -> [Action] {
        guard !isClosed else { return [] }
        guard bytes.count <= configuration.maxPayload else { return close("message larger than maxPayload") }
        return received(.binary(bytes), via: .websocket)
    }

    /// The transport went away (WebSocket closed, or the client stopped polling).
    mutating func transportClosed(_ which: Transport) -> [Action] {
        guard !isClosed else { return [] }
        if which == .websocket, state == .upgrading, transport == .polling {
            state = .open  // the probe socket failed: carry on polling
            return []
        }
        guard which == transport else { return [] }
        return close("transport close")
    }

    /// The layer above ends the session (a Socket.IO protocol error, a body over the limit).
    mutating func abort(_ reason: String) -> [Action] {
        isClosed ? [] : close(reason)
    }

    /// Time passed: ping when due, close when a ping went unanswered.
    mutating func tick(now: ContinuousClock.Instant) -> [Action] {
        guard !isClosed else { return [] }
        if let deadline = pongDeadline, now >= deadline { return close("ping timeout") }
        guard now >= nextPing else { return [] }
        nextPing = now + configuration.pingInterval
        if pongDeadline == nil { pongDeadline = now + configuration.pingTimeout }
        return send(.ping(""))
    }

    // MARK: internals

    private mutating func received(_ packet: EngineIOPacket, via: Transport) -> [Action] {
        switch packet {
        case .ping("probe") where via == .websocket && transport == .polling:
            state = .upgrading
            // Release the pending poll so the client can pause polling and finish the upgrade.
            return [.sendWebSocket([.pong("probe")])] + releasePoll(with: [.noop])
        case .upgrade where via == .websocket && state == .upgrading:
            transport = .websocket
            state = .open
            let backlog = queued
            queued = []
            var actions: [Action] = pollParked ? [.answerPoll([.noop])] : []
            pollParked = false
            if !backlog.isEmpty { actions.append(.sendWebSocket(backlog)) }
            return actions
        case .pong:
            // Only a ping the client was given can be answered: a pong sent blindly while the ping still
            // waits in the queue (the client never polls) does not keep the session alive.
            if pongDeadline != nil, !queued.contains(where: { if case .ping = $0 { true } else { false } }) { pongDeadline = nil }
            return []
        case .message(let text):
            return [.deliver(text)]
        case .binary(let bytes):
            return [.deliverBinary(bytes)]
        case .close:
            return close("client close")
        case .noop:
            return []
        case .open, .ping, .upgrade:
            return close("unexpected packet \(packet.text.prefix(1)) from the client")
        }
    }

    private mutating func releasePoll(with extra: [EngineIOPacket] = []) -> [Action] {
        guard pollParked, !(queued.isEmpty && extra.isEmpty) else {
            return []
        }
        let packets = queued + extra
        queued = []
        pollParked = false
        return [.answerPoll(packets)]
    }

    private mutating func close(_ reason: String) -> [Action] {
        state = .closed(reason)
        var actions: [Action] = []
        if pollParked {
            actions.append(.answerPoll([.close]))
            pollParked = false
        }
        actions.append(.close(reason: reason))
        return actions
    }
}
