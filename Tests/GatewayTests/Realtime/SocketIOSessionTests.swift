import EventStore
import Testing

@testable import Gateway

/// The Socket.IO layer: connect with credentials, events and acks, and what is out of order.
struct SocketIOSessionTests {
    @Test func connectAuthenticatesThenAnswersWithTheSid() {
        var s = SocketIOSession()
        #expect(s.received(#"0{"token":"t"}"#) == [.authenticate(.object(["token": .string("t")]))])
        #expect(s.accepted(sid: "s1") == [.send(SocketIOPacket(kind: .connect, data: #"{"sid":"s1"}"#))])
        #expect(s.state == .connected(sid: "s1"))
        #expect(s.emit("presence:join", [#"{"a":1}"#])?.encoded == #"2["presence:join",{"a":1}]"#)
    }

    @Test func refusedCredentialsGetConnectErrorAndMayRetry() {
        var s = SocketIOSession()
        #expect(s.received("0") == [.authenticate(nil)])
        #expect(s.emit("x", []) == nil)
        #expect(s.refused("Invalid token") == [.send(.connectError("Invalid token"))])
        #expect(s.state == .awaitingConnect)
        #expect(s.received(#"0{"apiKey":"k"}"#) == [.authenticate(.object(["apiKey": .string("k")]))])
    }

    @Test func eventsAndAcksGoUpOnceConnected() {
        var s = SocketIOSession()
        _ = s.received("0")
        _ = s.accepted(sid: "s")
        #expect(s.received(#"25["realtime:subscribe",{"channel":"c"}]"#)
            == [.event(name: "realtime:subscribe", arguments: [.object(["channel": .string("c")])], rawArguments: [#"{"channel":"c"}"#], ackId: 5)])
        #expect(s.received(#"2["realtime:publish",{"channel":"c"},2]"#)
            == [.event(name: "realtime:publish", arguments: [.object(["channel": .string("c")]), .number(2)], rawArguments: [#"{"channel":"c"}"#, "2"], ackId: nil)])
        #expect(s.received(#"31["ok"]"#) == [.ack(id: 1, arguments: [.string("ok")])])
        #expect(s.received("1") == [.close(reason: "client namespace disconnect")])
        #expect(s.received(#"2["late"]"#) == [])
    }

    @Test func otherNamespacesAreRefusedWithoutClosing() {
        var s = SocketIOSession()
        #expect(s.received("0/admin,") == [.send(.connectError("Invalid namespace", namespace: "/admin"))])
        #expect(s.received(#"2/admin,["x"]"#) == [])
        #expect(s.state == .awaitingConnect)
    }

    @Test func outOfOrderOrMalformedPacketsClose() {
        var a = SocketIOSession()
        #expect(a.received(#"2["early"]"#) == [.close(reason: "unexpected event packet")])
        var b = SocketIOSession()
        _ = b.received("0")
        #expect(b.received("0") == [.close(reason: "unexpected connect packet")])
        var c = SocketIOSession()
        #expect(c.received("2{") == [.close(reason: "parse error: packet data is not JSON")])
        var d = SocketIOSession()
        _ = d.received("0")
        _ = d.accepted(sid: "s")
        #expect(d.received(#"51-["up",{"_placeholder":true,"num":0}]"#) == [.close(reason: "binary attachments are not supported")])
        var e = SocketIOSession()
        _ = e.received("0")
        _ = e.accepted(sid: "s")
        #expect(e.received(#"0{}"#) == [.close(reason: "unexpected connect packet")])
    }
}
