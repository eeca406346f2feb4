import Actors
import EventStore
import Foundation
import PostgresNIO
import Synchronization
import Testing
import TestSupport

struct RealtimeFrameTests {
    static func decode(_ frame: String) throws -> [JSONValue] {
        #expect(frame.hasPrefix("2["))
        return try JSONCoding.decoder.decode([JSONValue].self, from: Data(frame.dropFirst().utf8))
    }

    @Test func framesAddMetaToThePayload() throws {
        let frame = FrameParts(event: "chat.message", channel: "chat:1", messageId: "m-1", position: 42, senderType: "user",
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
        let frame = FrameParts(event: "e\"v", channel: "c", messageId: "m", position: 1, senderType: "system", senderId: nil,
                                           timestamp: "t").frame(payload: "{}")
        let decoded = try Self.decode(frame)
        #expect(decoded[0] == .string("e\"v"))
        let body = try #require(decoded[1].objectValue)
        #expect(Set(body.keys) == ["meta"] && body["meta"]?.objectValue?["senderId"] == nil)
    }

    @Test func onlyTheDatabasesChangeMessagesOnTableChannelsAreFiltered() throws {
        func table(_ channel: String, _ event: String, sender: String = "system") -> String? {
            FrameParts(event: event, channel: channel, messageId: "m", position: 1, senderType: sender, senderId: nil,
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
        let message = RealtimeMessage(FrameParts(event: "DELETE", channel: "table:todos", messageId: "m", position: 7,
                                                                 senderType: "system", senderId: nil, timestamp: "t"),
                                          payload: #"{"old_record":{"id":1}}"#)
        #expect(message.changedTable == "todos" && message.position == 7 && message.channel == "table:todos")
        #expect(message.frame.packet == message.parts.frame(payload: message.payload))
    }

    @Test func wireFramesAreEngineIOMessages() {
        let frame = OutboundFrame(#"2["e",{}]"#)
        #expect(String(buffer: frame.wire) == #"42["e",{}]"#)
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

/// A socket that records what it is sent.
final class RecordingSubscriber: RealtimeSubscriber {
    let socketId: String
    let identity = DatabaseIdentity(role: nil, claims: "{}", userId: nil)
    let role = "project_admin"
    let received = Mutex<[String]>([])
    /// When false, the socket refuses frames (a client too slow to keep up).
    let accepts = Mutex(true)

    init(_ socketId: String) { self.socketId = socketId }

    func send(_ frames: [OutboundFrame]) -> Bool {
        guard accepts.withLock({ $0 }) else { return false }
        received.withLock { $0 += frames.map(\.packet) }
        return true
    }
}

/// The hub's live frames, recorded in the order the hub hands them over.
struct RecordingSink: RealtimeSink {
    func deliver(_ writes: [(RecordingSubscriber, OutboundFrame)]) -> [String] {
        var failed: [String] = []
        for (subscriber, frame) in writes where !subscriber.send([frame]) { failed.append(subscriber.socketId) }
        return failed
    }
}

@Suite("Realtime hub")
struct RealtimeHubTests {
    static func publish(_ store: EventStore, _ channel: String, _ n: Int) async throws {
        let published = MessagePublished(messageId: UUID(), channelId: nil, channel: channel, event: "chat.message",
                                         payload: .object(["n": .number(Double(n))]), senderType: "system", senderId: nil,
                                         webhookUrls: nil, createdAt: "2026-01-01T00:00:00.000Z")
        try await store.append([try EventData(published)], to: "realtime-\(channel)")
    }

    static func numbers(_ subscriber: RecordingSubscriber, event: String = "chat.message") throws -> [Int] {
        try subscriber.received.withLock { $0 }.filter { $0.contains(event) }.map { packet in
            let decoded = try JSONCoding.decoder.decode([JSONValue].self, from: Data(packet.dropFirst().utf8))
            guard case .number(let n)? = decoded.last?.objectValue?["n"] else { return -1 }
            return Int(n)
        }
    }

    /// Runs a hub with the recording sink beside a store while `body` runs.
    static func withHub(_ body: @Sendable @escaping (EventStore, RealtimeHub<RecordingSink>) async throws -> Void) async throws {
        try await withEventStore(pollInterval: .milliseconds(50)) { store, _ in
            let hub = RealtimeHub(store: store, sink: RecordingSink(), logger: TestDatabase.logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await hub.run() }
                defer { group.cancelAll() }
                try await body(store, hub)
            }
        }
    }

    @Test func deliversEachChannelsMessagesInLogOrderToItsSubscribersOnly() async throws {
        try await Self.withHub { store, hub in
            let a = RecordingSubscriber("a"), b = RecordingSubscriber("b")
            _ = try await hub.subscribe(a, channel: "chat:1", channelId: UUID(), since: nil)
            _ = try await hub.subscribe(b, channel: "chat:2", channelId: UUID(), since: nil)
            for n in 1...20 { try await Self.publish(store, n % 2 == 0 ? "chat:1" : "chat:2", n) }
            #expect(try await eventually { try Self.numbers(a).count == 10 && Self.numbers(b).count == 10 })
            #expect(try Self.numbers(a) == Array(stride(from: 2, through: 20, by: 2)))
            #expect(try Self.numbers(b) == Array(stride(from: 1, through: 19, by: 2)))
        }
    }

    @Test func presenceReachesTheOthersAndASocketThatCannotKeepUpIsDropped() async throws {
        try await Self.withHub { store, hub in
            let a = RecordingSubscriber("a"), b = RecordingSubscriber("b")
            let channel = UUID()
            _ = try await hub.subscribe(a, channel: "room", channelId: channel, since: nil)
            let members = try await hub.subscribe(b, channel: "room", channelId: channel, since: nil)
            #expect(members.map(\.presenceId) == ["a", "b"])
            #expect(a.received.withLock { $0 }.contains { $0.contains("presence:join") && $0.contains(#""b""#) })
            #expect(!b.received.withLock { $0 }.contains { $0.contains("presence:join") })  // not told of itself
            b.accepts.withLock { $0 = false }
            try await Self.publish(store, "room", 1)
            #expect(try await eventually { await hub.members(of: "room").map(\.presenceId) == ["a"] })
            #expect(try await eventually { a.received.withLock { $0 }.contains { $0.contains("presence:leave") } })
            #expect(await hub.subscription("b", channel: "room") == nil)
        }
    }

    @Test func resubscribingSinceAPositionReplaysWhatWasMissedThenGoesLive() async throws {
        try await Self.withHub { store, hub in
            let early = RecordingSubscriber("early")
            _ = try await hub.subscribe(early, channel: "feed", channelId: UUID(), since: nil)
            for n in 1...5 { try await Self.publish(store, "feed", n) }
            #expect(try await eventually { try Self.numbers(early).count == 5 })
            let missed = try await store.headPosition() - 3  // the client saw up to the second message
            let late = RecordingSubscriber("late")
            _ = try await hub.subscribe(late, channel: "feed", channelId: UUID(), since: missed)
            try await Self.publish(store, "feed", 6)
            #expect(try await eventually { try Self.numbers(late).count == 4 })
            #expect(try Self.numbers(late) == [3, 4, 5, 6])
        }
    }
}
