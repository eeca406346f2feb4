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
        let frame = RealtimeHub.FrameParts(event: "chat.message", channel: "chat:1", messageId: "m-1", position: 42, senderType: "user",
                                           senderId: "u-1", timestamp: "2026-01-01T00:00:00.000Z")
            .frame(payload: #"{"n": 1, "text": "hi \"x\""}"#)
        let decoded = try Self.decode(frame)
        #expect(decoded.count == 2 && decoded[0] == .string("chat.message"))
        let body = try #require(decoded[1].objectValue)
        #expect(body["n"] == .number(1) && body["text"] == .string(#"hi "x""#))
        #expect(body["meta"] == .object(["channel": .string("chat:1"), "messageId": .string("m-1"), "position": .number(42),
                                         "senderType": .string("user"), "senderId": .string("u-1"),
                                         "timestamp": .string("2026-01-01T00:00:00.000Z")]))
    }

    @Test func anEmptyPayloadGetsOnlyMetaAndSystemSendersNoId() throws {
        let frame = RealtimeHub.FrameParts(event: "e\"v", channel: "c", messageId: "m", position: 1, senderType: "system", senderId: nil,
                                           timestamp: "t").frame(payload: "{}")
        let decoded = try Self.decode(frame)
        #expect(decoded[0] == .string("e\"v"))
        let body = try #require(decoded[1].objectValue)
        #expect(Set(body.keys) == ["meta"] && body["meta"]?.objectValue?["senderId"] == nil)
    }

    @Test func onlyTheDatabasesChangeMessagesOnTableChannelsAreFiltered() throws {
        func table(_ channel: String, _ event: String, sender: String = "system") -> String? {
            RealtimeHub.FrameParts(event: event, channel: channel, messageId: "m", position: 1, senderType: sender, senderId: nil,
                                   timestamp: "t").changedTable
        }
        #expect(table("table:todos", "INSERT") == "todos")
        #expect(table("table:todos", "DELETE") == "todos")
        #expect(table("table:todos", "UPDATE") != nil)
        #expect(table("table:todos", "marker") == nil)  // an admin's other message goes to everyone
        #expect(table("table:todos", "INSERT", sender: "user") == nil)
        #expect(table("tables:todos", "INSERT") == nil)
        #expect(table("chat:1", "INSERT") == nil)
        // A message read from the log knows its table once, and keeps its payload for a cut-down frame.
        let message = RealtimeHub.Message(RealtimeHub.FrameParts(event: "DELETE", channel: "table:todos", messageId: "m", position: 7,
                                                                 senderType: "system", senderId: nil, timestamp: "t"),
                                          payload: #"{"old_record":{"id":1}}"#)
        #expect(message.changedTable == "todos" && message.position == 7 && message.channel == "table:todos")
        #expect(message.frame.packet == message.parts.frame(payload: message.payload))
    }

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

    @Test func wireFramesAreEngineIOMessages() {
        let frame = OutboundFrame(#"2["e",{}]"#)
        #expect(String(buffer: frame.wire) == #"42["e",{}]"#)
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

struct OutboundFrameTests {
    @Test func webSocketFramesAreEncodedOnceWithTheRightLength() throws {
        for size in [0, 124, 125, 200, 65_534, 70_000] {
            let packet = "2" + String(repeating: "x", count: size)
            var frame = OutboundFrame(packet).webSocketFrame
            let opcode = frame.readInteger(as: UInt8.self)
            #expect(opcode == 0x81)
            let first = frame.readInteger(as: UInt8.self) ?? 0
            let length: Int
            switch first {
            case 126: length = Int(frame.readInteger(as: UInt16.self) ?? 0)
            case 127: length = Int(frame.readInteger(as: UInt64.self) ?? 0)
            default: length = Int(first)
            }
            #expect(length == size + 2 && frame.readableBytes == length)
            #expect(frame.readString(length: 1) == "4")
        }
    }
}
