import EventStore
import Foundation
import Testing

@testable import Gateway

struct RealtimeHubTests {
    static func decode(_ frame: String) throws -> [JSONValue] {
        #expect(frame.hasPrefix("2["))
        return try JSONCoding.decoder.decode([JSONValue].self, from: Data(frame.dropFirst().utf8))
    }

    @Test func framesAddMetaToThePayload() throws {
        let frame = RealtimeHub.frame(event: "chat.message", payload: #"{"n": 1, "text": "hi \"x\""}"#, channel: "chat:1",
                                      messageId: "m-1", position: 42, senderType: "user", senderId: "u-1", timestamp: "2026-01-01T00:00:00.000Z")
        let decoded = try Self.decode(frame)
        #expect(decoded.count == 2 && decoded[0] == .string("chat.message"))
        let body = try #require(decoded[1].objectValue)
        #expect(body["n"] == .number(1) && body["text"] == .string(#"hi "x""#))
        #expect(body["meta"] == .object(["channel": .string("chat:1"), "messageId": .string("m-1"), "position": .number(42),
                                         "senderType": .string("user"), "senderId": .string("u-1"),
                                         "timestamp": .string("2026-01-01T00:00:00.000Z")]))
    }

    @Test func anEmptyPayloadGetsOnlyMetaAndSystemSendersNoId() throws {
        let frame = RealtimeHub.frame(event: "e\"v", payload: "{}", channel: "c", messageId: "m", position: 1, senderType: "system",
                                      senderId: nil, timestamp: "t")
        let decoded = try Self.decode(frame)
        #expect(decoded[0] == .string("e\"v"))
        let body = try #require(decoded[1].objectValue)
        #expect(Set(body.keys) == ["meta"] && body["meta"]?.objectValue?["senderId"] == nil)
    }

    @Test func outboxHandsOverEverythingQueuedAndClosesWhenFull() async throws {
        let outbox = FrameOutbox(limit: 3)
        #expect(outbox.push("a") && outbox.push("b"))
        #expect(await outbox.take() == ["a", "b"])
        let waiting = Task { await outbox.take() }
        try await Task.sleep(for: .milliseconds(20))
        #expect(outbox.push("c"))
        #expect(await waiting.value == ["c"])
        #expect(outbox.push("1") && outbox.push("2") && outbox.push("3"))
        #expect(!outbox.push("4"))  // a fourth waiting frame: too far behind
        #expect(outbox.isClosed)
        #expect(await outbox.take() == nil)
        #expect(!outbox.push("5"))
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
