import Testing

@testable import Gateway

/// The Engine.IO session state machine: polling, heartbeat, upgrade, limits.
struct EngineIOSessionTests {
    let start = ContinuousClock.now
    let configuration = EngineIOSession.Configuration(pingInterval: .seconds(25), pingTimeout: .seconds(20), maxPayload: 100)

    func session(_ transport: EngineIOSession.Transport = .polling) -> EngineIOSession {
        EngineIOSession(sid: "abc", transport: transport, configuration: configuration, now: start)
    }

    @Test func handshakeAnnouncesTheUpgradeAndTimingsInMilliseconds() throws {
        guard case .open(let json) = session().openPacket else { Issue.record("not an open packet"); return }
        #expect(json.contains(#""sid":"abc""#) && json.contains(#""upgrades":["websocket"]"#))
        #expect(json.contains(#""pingInterval":25000"#) && json.contains(#""pingTimeout":20000"#) && json.contains(#""maxPayload":100"#))
        guard case .open(let ws) = session(.websocket).openPacket else { return }
        #expect(ws.contains(#""upgrades":[]"#))
    }

    @Test func pollsWaitForPacketsAndTakeEverythingQueued() {
        var s = session()
        #expect(s.send(.message("a")) == [])
        #expect(s.send(.message("b")) == [])
        #expect(s.pollArrived() == [.answerPoll([.message("a"), .message("b")])])
        #expect(s.pollArrived() == [])  // parked
        #expect(s.send(.message("c")) == [.answerPoll([.message("c")])])
        #expect(s.pollArrived() == [])
        #expect(s.pollArrived() == [.answerPoll([.close]), .close(reason: "overlapping polls")])
        #expect(s.isClosed)
    }

    @Test func postedPayloadsAreDeliveredInOrder() {
        var s = session()
        #expect(s.pollBody("4one\u{1e}3\u{1e}bAQI=\u{1e}4two") == [.deliver("one"), .deliverBinary([1, 2]), .deliver("two")])
        #expect(s.pollBody(String(repeating: "4", count: 101)) == [.close(reason: "invalid payload: payload larger than 100 bytes")])
        #expect(s.isClosed)
    }

    @Test func heartbeatPingsAndClosesWhenUnanswered() {
        var s = session(.websocket)
        #expect(s.tick(now: start + .seconds(24)) == [])
        #expect(s.tick(now: start + .seconds(25)) == [.sendWebSocket([.ping("")])])
        #expect(s.webSocketText("3") == [])  // pong
        #expect(s.tick(now: start + .seconds(44)) == [])
        #expect(s.tick(now: start + .seconds(50)) == [.sendWebSocket([.ping("")])])
        #expect(s.nextDeadline == start + .seconds(70))
        #expect(s.tick(now: start + .seconds(70)) == [.close(reason: "ping timeout")])
        #expect(s.send(.message("late")) == [])
    }

    @Test func aClientThatNeverPollsCannotKeepTheSessionOrGrowItsQueue() {
        var config = configuration
        config.maxQueuedBytes = 1_000
        var s = EngineIOSession(sid: "abc", transport: .polling, configuration: config, now: start)
        // The ping waits in the queue: a pong posted blindly does not count as its answer.
        #expect(s.tick(now: start + .seconds(25)) == [])
        #expect(s.pollBody("3") == [])
        #expect(s.tick(now: start + .seconds(45)) == [.close(reason: "ping timeout")])
        // Messages for a client that does not poll: past the byte limit the session ends.
        var t = EngineIOSession(sid: "def", transport: .polling, configuration: config, now: start)
        for _ in 0..<9 { #expect(t.send(.message(String(repeating: "x", count: 100))) == []) }
        #expect(t.send(.message(String(repeating: "x", count: 100))) == [.close(reason: "more than 1000 bytes waiting for a poll")])
        // Once polled, the queue starts again from nothing.
        var u = EngineIOSession(sid: "ghi", transport: .polling, configuration: config, now: start)
        for _ in 0..<9 { _ = u.send(.message(String(repeating: "x", count: 100))) }
        #expect(u.pollArrived().count == 1)
        for _ in 0..<9 { #expect(u.send(.message(String(repeating: "x", count: 100))).allSatisfy { if case .close = $0 { false } else { true } }) }
        #expect(!u.isClosed)
    }

    @Test func theFirstPingMayComeEarlierThenEveryInterval() {
        var s = EngineIOSession(sid: "abc", transport: .websocket, configuration: configuration, now: start, firstPing: .seconds(15))
        #expect(s.nextDeadline == start + .seconds(15))
        #expect(s.tick(now: start + .seconds(14)) == [])
        #expect(s.tick(now: start + .seconds(15)) == [.sendWebSocket([.ping("")])])
        #expect(s.webSocketText("3") == [])
        #expect(s.tick(now: start + .seconds(39)) == [])
        #expect(s.tick(now: start + .seconds(40)) == [.sendWebSocket([.ping("")])])
        // Never later than the interval the client was promised.
        let late = EngineIOSession(sid: "abc", transport: .websocket, configuration: configuration, now: start, firstPing: .seconds(60))
        #expect(late.nextDeadline == start + .seconds(25))
    }

    @Test func upgradeFromPollingToWebSocket() {
        var s = session()
        #expect(s.pollArrived() == [])
        // probe on the new socket: answered there, and the parked poll is released with a noop
        #expect(s.webSocketText("2probe") == [.sendWebSocket([.pong("probe")]), .answerPoll([.noop])])
        #expect(s.state == .upgrading)
        // messages sent meanwhile wait for the upgrade
        #expect(s.send(.message("queued")) == [])
        #expect(s.webSocketText("5") == [.sendWebSocket([.message("queued")])])
        #expect(s.transport == .websocket && s.state == .open)
        #expect(s.send(.message("live")) == [.sendWebSocket([.message("live")])])
        #expect(s.webSocketText("4hi") == [.deliver("hi")])
        // polling after the upgrade is a protocol error
        #expect(s.pollArrived() == [.close(reason: "poll on a session that upgraded")])
    }

    @Test func aFailedProbeLeavesTheSessionPolling() {
        var s = session()
        _ = s.webSocketText("2probe")
        #expect(s.transportClosed(.websocket) == [])
        #expect(s.state == .open && s.transport == .polling)
        #expect(s.pollArrived() == [])
        #expect(s.send(.message("x")) == [.answerPoll([.message("x")])])
    }

    @Test func protocolViolationsClose() {
        var a = session(.websocket)
        #expect(a.webSocketText("5") == [.close(reason: "unexpected packet 5 from the client")])
        var b = session(.websocket)
        #expect(b.webSocketText("9") == [.close(reason: "invalid packet: unknown packet type 9")])
        var c = session(.websocket)
        #expect(c.webSocketText("4" + String(repeating: "x", count: 100)) == [.close(reason: "message larger than maxPayload")])
        var d = session(.websocket)
        #expect(d.webSocketText("1") == [.close(reason: "client close")])
        var e = session()
        _ = e.pollArrived()
        #expect(e.pollBody("1") == [.answerPoll([.close]), .close(reason: "client close")])
        #expect(e.pollArrived() == [.answerPoll([.close])])
    }
}
