import Actors
import Foundation
import Testing

@testable import Gateway

struct RealtimeTransportTests {
    @Test func outboxHandsOverEverythingQueuedAndClosesWhenFull() async throws {
        let outbox = FrameOutbox(limit: 3)
        func push(_ s: String) -> Bool { outbox.push(OutboundFrame(s)) }
        #expect(push("a") && push("b"))
        #expect(await outbox.take()?.map(\.packet) == ["a", "b"])
        let waiting = Task { await outbox.take()?.map(\.packet) }
        try await Task.sleep(for: .milliseconds(20))
        #expect(push("c"))
        #expect(await waiting.value == ["c"])
        #expect(push("1") && push("2") && push("3"))
        #expect(!push("4"))  // a fourth waiting frame: too far behind
        #expect(outbox.isClosed)
        #expect(await outbox.take() == nil)
        #expect(!push("5"))
    }

    @Test func repliesAckWhenAskedAndEmitErrorsOtherwise() {
        let reply = RealtimeMessaging.Reply(ack: "{}", emits: [.event("realtime:error", ["{}"])])
        #expect(reply.packets(ackId: 7) == [.ack(7, ["{}"])])
        #expect(reply.packets(ackId: nil) == [.event("realtime:error", ["{}"])])
        var always = reply
        always.emitWithAck = true
        #expect(always.packets(ackId: 7).count == 2)
    }
}

struct RawJSONTests {
    @Test func arraysAndMembersComeBackAsWritten() throws {
        let packet = #"["realtime:publish", {"channel":"c","payload":{"id":12345678901234567890,"b":[1,{"x":"]}"}],"a":"\"q\""}, "x": 1}, 2.50, "s,t", null]"#
        let items = try #require(RawJSON.elements(ofArray: Substring(packet)))
        #expect(items.map(String.init) == [#""realtime:publish""#,
                                           #"{"channel":"c","payload":{"id":12345678901234567890,"b":[1,{"x":"]}"}],"a":"\"q\""}, "x": 1}"#,
                                           "2.50", #""s,t""#, "null"])
        #expect(RawJSON.member("payload", ofObject: items[1]).map(String.init)
                == #"{"id":12345678901234567890,"b":[1,{"x":"]}"}],"a":"\"q\""}"#)
        #expect(RawJSON.member("x", ofObject: items[1]) == "1")
        #expect(RawJSON.member("missing", ofObject: items[1]) == nil)
        #expect(RawJSON.member("x", ofObject: "[1]") == nil && RawJSON.elements(ofArray: "{}") == nil)
        #expect(RawJSON.elements(ofArray: " [ ] ") == [])
        #expect(RawJSON.member("k", ofObject: #"{"k":1,"k":2}"#) == "2")
        #expect(RawJSON.member("é", ofObject: #"{"\u00e9":true}"#) == "true")
    }
}
