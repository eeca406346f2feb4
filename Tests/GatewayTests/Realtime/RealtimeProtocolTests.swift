import Testing

@testable import Gateway

/// Engine.IO v4 and Socket.IO v5 framing, against the examples of the protocol documents.
struct RealtimeProtocolTests {
    @Test func engineIOPacketsRoundTrip() throws {
        let packets: [EngineIOPacket] = [.open(#"{"sid":"a"}"#), .close, .ping(""), .ping("probe"), .pong("probe"),
                                         .message("hello"), .message(""), .upgrade, .noop, .binary([1, 2, 3, 255])]
        for packet in packets {
            #expect(try EngineIOPacket(text: Substring(packet.text)) == packet)
        }
        #expect(EngineIOPacket.message("héllo €").text == "4héllo €")
        #expect(EngineIOPacket.binary([1, 2, 3, 4]).text == "bAQIDBA==")
    }

    @Test func engineIORefusesWhatIsNotAPacket() {
        #expect(throws: RealtimeProtocolError.self) { try EngineIOPacket(text: "") }
        #expect(throws: RealtimeProtocolError.self) { try EngineIOPacket(text: "7") }
        #expect(throws: RealtimeProtocolError.self) { try EngineIOPacket(text: "x42") }
        #expect(throws: RealtimeProtocolError.self) { try EngineIOPacket(text: "b@@not base64") }
    }

    @Test func pollingPayloadsSplitOnTheRecordSeparator() throws {
        let body = "4hello\u{1e}2\u{1e}bAQIDBA=="
        #expect(try EngineIOPacket.decodePayload(body, maxPayload: 100) == [.message("hello"), .ping(""), .binary([1, 2, 3, 4])])
        #expect(EngineIOPacket.encodePayload([.message("hello"), .ping(""), .binary([1, 2, 3, 4])]) == body)
        // A message may itself contain anything but the separator.
        #expect(try EngineIOPacket.decodePayload(#"42["a","b\n,c"]"#, maxPayload: 100) == [.message(#"2["a","b\n,c"]"#)])
        #expect(throws: RealtimeProtocolError.self) { try EngineIOPacket.decodePayload(String(repeating: "4", count: 101), maxPayload: 100) }
        #expect(throws: RealtimeProtocolError.self) { try EngineIOPacket.decodePayload("4a\u{1e}\u{1e}4b", maxPayload: 100) }
    }

    @Test func socketIOPacketsOfTheSpecification() throws {
        let cases: [(String, SocketIOPacket)] = [
            ("0", SocketIOPacket(kind: .connect)),
            (#"0{"token":"123"}"#, SocketIOPacket(kind: .connect, data: #"{"token":"123"}"#)),
            (#"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#, SocketIOPacket(kind: .connect, namespace: "/admin", data: #"{"sid":"oSO0OpakMV_3jnilAAAA"}"#)),
            (#"4{"message":"Not authorized"}"#, SocketIOPacket(kind: .connectError, data: #"{"message":"Not authorized"}"#)),
            ("1/admin,", SocketIOPacket(kind: .disconnect, namespace: "/admin")),
            ("1", SocketIOPacket(kind: .disconnect)),
            (#"2["foo"]"#, SocketIOPacket(kind: .event, data: #"["foo"]"#)),
            (#"2/admin,["bar"]"#, SocketIOPacket(kind: .event, namespace: "/admin", data: #"["bar"]"#)),
            (#"212["foo"]"#, SocketIOPacket(kind: .event, ackId: 12, data: #"["foo"]"#)),
            (#"3/admin,13["bar"]"#, SocketIOPacket(kind: .ack, namespace: "/admin", ackId: 13, data: #"["bar"]"#)),
            (#"51-["baz",{"_placeholder":true,"num":0}]"#,
             SocketIOPacket(kind: .binaryEvent, data: #"["baz",{"_placeholder":true,"num":0}]"#, attachments: 1)),
            (#"61-/admin,15[{"_placeholder":true,"num":0}]"#,
             SocketIOPacket(kind: .binaryAck, namespace: "/admin", ackId: 15, data: #"[{"_placeholder":true,"num":0}]"#, attachments: 1)),
        ]
        for (text, packet) in cases {
            #expect(try SocketIOPacket(decoding: text) == packet, "\(text)")
            #expect(packet.encoded == text)
        }
    }

    @Test func socketIORefusesPayloadsOfTheWrongShape() {
        for text in ["", "9", "x", "0[1]", "0\"s\"", "1{}", "2", "2{}", "2[]", "2[1]", #"2[""]"#, "3[]", #"3["a"]"#.replacingOccurrences(of: "3", with: "3x"),
                     "4[1]", "5[\"a\"]", "5x-[\"a\"]", #"2["a""#, "2999999999999999999[\"a\"]", "3[1]"] {
            #expect(throws: RealtimeProtocolError.self, "\(text)") { try SocketIOPacket(decoding: text) }
        }
    }

    @Test func eventsAreBuiltFromJSONTextAndReadBack() throws {
        let packet = SocketIOPacket.event("realtime:publish", [#"{"channel":"chat:1","payload":{"t":"hi \"you\""}}"#], ackId: 7)
        #expect(packet.encoded == #"27["realtime:publish",{"channel":"chat:1","payload":{"t":"hi \"you\""}}]"#)
        let parsed = try SocketIOPacket(decoding: packet.encoded)
        let (name, arguments) = try parsed.eventArguments()
        #expect(name == "realtime:publish" && parsed.ackId == 7)
        #expect(arguments.first?.objectValue?["channel"] == .string("chat:1"))
        #expect(SocketIOPacket.ack(7, [#"{"ok":true}"#]).encoded == #"37[{"ok":true}]"#)
        #expect(SocketIOPacket.connectError("bad \"token\"").encoded == #"4{"message":"bad \"token\""}"#)
    }
}
