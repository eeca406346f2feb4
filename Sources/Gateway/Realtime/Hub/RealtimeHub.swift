import EventStore
import Foundation
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// One connected socket as the hub sees it.
final class RealtimeSubscriber: Sendable {
    /// The Socket.IO socket id (also its presence id).
    let socketId: String
    let identity: DatabaseIdentity
    let role: String
    let outbox: FrameOutbox
    /// The socket's NIO channel while a WebSocket carries the session: frames are written to it on its
    /// event loop, many sockets per hop. Otherwise (long-polling) frames go through `outbox`.
    let direct = Mutex<RawWebSocketWriter?>(nil)
    /// The log position the client said it has seen (`{offset}` in its CONNECT payload): its
    /// subscriptions replay from there unless they say otherwise.
    let connectOffset: Int64?
    /// What this socket may still publish (`realtime:publish`), refilled over time.
    private let publishBudget: Mutex<TokenBucket?> = Mutex(nil)

    init(socketId: String, credential: Credential, connectOffset: Int64? = nil, outbox: FrameOutbox = FrameOutbox()) {
        self.socketId = socketId
        self.connectOffset = connectOffset
        self.identity = DatabaseIdentity(credential)
        self.role = credential.role
        self.outbox = outbox
    }
}

extension RealtimeSubscriber {
    /// Takes one publish from this socket's budget (a bucket of `rate`, full at the first publish).
    func mayPublish(rate: TokenBucket.Rate, now: Double) -> Bool {
        publishBudget.withLock { bucket in
            var current = bucket ?? TokenBucket(rate: rate, now: now)
            defer { bucket = current }
            return current.take(now: now)
        }
    }

    /// Sends frames to this socket alone, in order (replays, presence, errors).
    func send(_ frames: [OutboundFrame]) -> Bool {
        guard let writer = direct.withLock({ $0 }) else {
            return frames.allSatisfy { outbox.push($0) }
        }
        let encoded = frames.map(\.webSocketFrame)
        writer.channel.eventLoop.execute {
            if writer.write(encoded) { writer.flush() }
        }
        return true
    }
}

/// Who is on a channel: one member per subscribed socket.
struct PresenceMember: Codable, Sendable, Equatable {
    var presenceId: String
    var userId: String?
    var role: String
    var joinedAt: String
}

/// The realtime fan-out of one node: who is subscribed to what, presence, and the delivery of
/// messages, which it takes from the log (whichever node published them) in log order.
///
/// Subscribing with `since` replays the channel's messages after that position up to the hub's
/// cursor from the log, while live messages for the channel are held back; then the held ones
/// follow. All of it happens between suspension points of this actor, so nothing is missed or sent
/// twice.
actor RealtimeHub: Service {
    struct Subscription {
        let subscriber: RealtimeSubscriber
        let channelId: UUID
        let member: PresenceMember
        /// Live messages at or before this position are not sent (the client has them).
        var after: Int64
        /// While the replay runs: live frames held back.
        var held: [(Int64, OutboundFrame)]?
    }

    /// What a message's frame is made of, besides its payload.
    struct FrameParts: Sendable {
        var event: String
        var channel: String
        var messageId: String
        var position: Int64
        var senderType: String
        var senderId: String?
        var timestamp: String

        /// The Socket.IO EVENT packet of the message with `payload`: `["<event>", {...payload, "meta": {...}}]`.
        func frame(payload: String) -> String {
            var meta = #"{"channel":\#(JSONCoding.quoted(channel)),"messageId":\#(JSONCoding.quoted(messageId)),"position":\#(position),"senderType":\#(JSONCoding.quoted(senderType))"#
            if let senderId { meta += #","senderId":\#(JSONCoding.quoted(senderId))"# }
            meta += #","timestamp":\#(JSONCoding.quoted(timestamp))}"#
            // `payload` is a JSON object as Postgres prints it: open it and add `meta` as its last member.
            var body = payload
            if let close = body.lastIndex(of: "}") { body.removeSubrange(close...) }
            let isEmpty = body.drop(while: { $0 == "{" || $0 == " " }).isEmpty
            body += (isEmpty ? "" : ",") + #""meta":\#(meta)}"#
            return "2[" + JSONCoding.quoted(event) + "," + body + "]"
        }

        /// The table whose change this message is, if it is one: the database's INSERT, UPDATE or
        /// DELETE on the table's channel (`table:<name>`). Only these are filtered by row-level security.
        var changedTable: String? {
            guard channel.hasPrefix("table:"), senderType == "system", ["INSERT", "UPDATE", "DELETE"].contains(event) else { return nil }
            return String(channel.dropFirst("table:".count))
        }
    }

    /// One message as read from the log.
    struct Message: Sendable {
        var parts: FrameParts
        var payload: String
        var frame: OutboundFrame
        var position: Int64 { parts.position }
        var channel: String { parts.channel }
        var changedTable: String? { parts.changedTable }

        init(_ parts: FrameParts, payload: String) {
            (self.parts, self.payload) = (parts, payload)
            frame = OutboundFrame(parts.frame(payload: payload))
        }
    }

    let store: EventStore
    let logger: Logger
    let filter: TableChangeFilter
    /// Most messages a `since` replay sends; beyond, the client is told to fetch history.
    let replayLimit: Int
    private var channels: [String: [String: Subscription]] = [:]
    private var socketChannels: [String: Set<String>] = [:]
    /// The last log position looked at.
    private(set) var cursor: Int64 = 0
    private var started = false
    private var startWaiters: [CheckedContinuation<Void, Never>] = []

    init(store: EventStore, logger: Logger, replayLimit: Int = 10_000) {
        self.store = store
        self.logger = logger
        self.replayLimit = replayLimit
        self.filter = TableChangeFilter(client: store.client, logger: logger)
    }

    // MARK: following the log

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                if !started {
                    cursor = try await store.headPosition()
                    started = true
                    for waiter in startWaiters { waiter.resume() }
                    startWaiters = []
                }
                try await cancelWhenGracefulShutdown { try await self.follow() }
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { break }
                logger.warning("realtime hub: reading the log failed; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    private func follow() async throws {
        while !Task.isCancelled {
            let generation = store.watcher.signal.generation
            let (messages, head) = try await Self.readMessages(on: store.client, after: cursor, limit: 1000)
            // Checked before delivery, as each subscriber. A table-channel subscription made while
            // this runs is not in the verdicts and gets none of this batch's filtered changes.
            let verdicts = messages.contains(where: { $0.changedTable != nil })
                ? await filter.verdicts(for: messages, listeners: listeners(of: messages)) : [:]
            deliver(messages, verdicts)
            cursor = messages.count == 1000 ? messages.last!.position : max(cursor, head)
            if messages.count < 1000 {
                await store.watcher.signal.wait(after: generation, timeout: store.watcher.pollInterval)
            }
        }
    }

    /// Waits until the hub knows where the log ends (subscriptions need a starting point).
    private func ready() async {
        if started { return }
        await withCheckedContinuation { startWaiters.append($0) }
    }

    /// The non-admin subscribers of the table channels among `messages`.
    private func listeners(of messages: [Message]) -> [String: [TableChangeFilter.Listener]] {
        var out: [String: [TableChangeFilter.Listener]] = [:]
        for message in messages where message.changedTable != nil && out[message.channel] == nil {
            out[message.channel] = (channels[message.channel] ?? [:]).values
                .filter { !$0.subscriber.identity.isAdmin }
                .map { TableChangeFilter.Listener(socketId: $0.subscriber.socketId, identity: $0.subscriber.identity) }
        }
        return out
    }

    /// The frame `subscriber` gets of `message`: the message's own, or what the row-level security
    /// filter decided for a non-admin (nil: nothing). `filtered` is the message's verdicts, if any.
    private static func frame(of message: Message, for subscriber: RealtimeSubscriber, _ filtered: [String: OutboundFrame]?) -> OutboundFrame? {
        guard let filtered, !subscriber.identity.isAdmin else { return message.frame }
        return filtered[subscriber.socketId]
    }

    private func deliver(_ messages: [Message], _ verdicts: TableChangeFilter.Verdicts = [:]) {
        // WebSocket frames are grouped by event loop: one hop per loop per batch, one flush per socket,
        // and each message's frame is encoded once for all of them.
        var batches: [ObjectIdentifier: (loop: any EventLoop, writes: [(RawWebSocketWriter, ByteBuffer)])] = [:]
        for message in messages {
            guard let subscriptions = channels[message.channel] else { continue }
            let filtered = verdicts[message.position]  // only table changes have verdicts
            for (socketId, subscription) in subscriptions {
                guard let frame = Self.frame(of: message, for: subscription.subscriber, filtered) else { continue }
                if subscription.held != nil {
                    channels[message.channel]?[socketId]?.held?.append((message.position, frame))
                    continue
                }
                guard message.position > subscription.after else { continue }
                if let writer = subscription.subscriber.direct.withLock({ $0 }) {
                    let loop = writer.channel.eventLoop
                    batches[ObjectIdentifier(loop), default: (loop, [])].writes.append((writer, frame.webSocketFrame))
                } else if !subscription.subscriber.outbox.push(frame) {
                    remove(socketId)
                }
            }
        }
        for (_, batch) in batches {
            let writes = batch.writes
            batch.loop.execute {
                var touched: [ObjectIdentifier: RawWebSocketWriter] = [:]
                for (writer, frame) in writes where writer.write(CollectionOfOne(frame)) {
                    touched[ObjectIdentifier(writer)] = writer
                }
                for writer in touched.values { writer.flush() }
            }
        }
    }

    // MARK: subscriptions

    /// Adds `subscriber` to `channel` (once); returns the channel's members. With `since`, first
    /// replays what the channel got after that position.
    func subscribe(_ subscriber: RealtimeSubscriber, channel: String, channelId: UUID, since: Int64?) async throws -> [PresenceMember] {
        await ready()
        let socketId = subscriber.socketId
        if channels[channel]?[socketId] != nil { return members(of: channel) }
        let member = PresenceMember(presenceId: socketId, userId: subscriber.identity.userId?.uuidString.lowercased(), role: subscriber.role,
                                    joinedAt: JSONCoding.timestamp(Date()))
        let start = cursor
        let replayFrom = since.flatMap { $0 < start ? max($0, 0) : nil }
        channels[channel, default: [:]][socketId] = Subscription(
            subscriber: subscriber, channelId: channelId, member: member, after: max(since ?? 0, 0), held: replayFrom == nil ? nil : [])
        socketChannels[socketId, default: []].insert(channel)
        broadcast(presence: "presence:join", member: member, channel: channel, except: socketId)
        if let replayFrom {
            let replayed: [Message]
            do {
                replayed = try await Self.readMessages(on: store.client, after: replayFrom, replaying: (channel, start),
                                                       limit: replayLimit).0
            } catch {
                unsubscribe(socketId, channel: channel)
                throw error
            }
            // A non-admin replaying a table channel gets what the row-level security filter lets through.
            var verdicts: TableChangeFilter.Verdicts = [:]
            if !subscriber.identity.isAdmin, replayed.contains(where: { $0.changedTable != nil }) {
                verdicts = await filter.verdicts(for: replayed, listeners: [channel: [.init(socketId: socketId, identity: subscriber.identity)]])
            }
            guard let held = channels[channel]?[socketId]?.held else { return members(of: channel) }  // gone meanwhile
            var frames: [OutboundFrame] = []
            if replayed.count == replayLimit {
                frames.append(OutboundFrame(SocketIOPacket.event("realtime:error", [#"{"channel":\#(JSONCoding.quoted(channel)),"code":"REALTIME_REPLAY_TRUNCATED","message":"More messages were missed than a resubscription replays; fetch the rest from /api/realtime/messages"}"#]).encoded))
            }
            frames += replayed.compactMap { Self.frame(of: $0, for: subscriber, verdicts[$0.position]) }
            frames += held.filter { $0.0 > start }.map(\.1)
            if !subscriber.send(frames) { remove(socketId) }
            channels[channel]?[socketId]?.held = nil
            channels[channel]?[socketId]?.after = start
        }
        return members(of: channel)
    }

    /// The channel id of `socketId`'s subscription to `channel`, if it has one.
    func subscription(_ socketId: String, channel: String) -> UUID? { channels[channel]?[socketId]?.channelId }

    func unsubscribe(_ socketId: String, channel: String) {
        guard let subscription = channels[channel]?.removeValue(forKey: socketId) else { return }
        if channels[channel]?.isEmpty == true { channels[channel] = nil }
        socketChannels[socketId]?.remove(channel)
        if socketChannels[socketId]?.isEmpty == true { socketChannels[socketId] = nil }
        broadcast(presence: "presence:leave", member: subscription.member, channel: channel, except: socketId)
    }

    /// The socket is gone: it leaves every channel.
    func remove(_ socketId: String) {
        for channel in socketChannels[socketId] ?? [] { unsubscribe(socketId, channel: channel) }
    }


    func members(of channel: String) -> [PresenceMember] {
        (channels[channel] ?? [:]).values.map(\.member).sorted { $0.joinedAt == $1.joinedAt ? $0.presenceId < $1.presenceId : $0.joinedAt < $1.joinedAt }
    }


    private func broadcast(presence event: String, member: PresenceMember, channel: String, except socketId: String) {
        guard let subscriptions = channels[channel], subscriptions.count > (subscriptions[socketId] == nil ? 0 : 1) else { return }
        let memberJSON = (try? JSONCoding.encodeString(member)) ?? "{}"
        let body = #"{"member":\#(memberJSON),"meta":{"channel":\#(JSONCoding.quoted(channel)),"timestamp":\#(JSONCoding.quoted(JSONCoding.timestamp(Date())))}}"#
        let frame = OutboundFrame(SocketIOPacket.event(event, [body]).encoded)
        for (other, subscription) in subscriptions where other != socketId {
            if !subscription.subscriber.send([frame]) { remove(other) }
        }
    }

    // MARK: reading messages from the log

    static let messageColumns = """
        e.position, e.data->>'channel', e.data->>'event', ((e.data->'payload') - 'meta')::text, e.data->>'messageId',
        e.data->>'senderType', e.data->>'senderId', e.data->>'createdAt'
        """

    /// Messages after `position` (at most `limit`), and the log's head when read. A replay reads one
    /// channel up to a position; the live read every channel up to the head.
    static func readMessages(on client: PostgresClient, after position: Int64, replaying: (channel: String, through: Int64)? = nil,
                             limit: Int) async throws -> ([Message], Int64) {
        let rows = if let replaying {
            try await client.execute(ReplayedMessages(after: position, limit: limit, through: replaying.through,
                                                      stream: "realtime-" + replaying.channel))
        } else {
            try await client.execute(LiveMessages(after: position, limit: limit))
        }
        var head: Int64 = position
        var out: [Message] = []
        for try await (h, position, channel, event, payload, messageId, senderType, senderId, createdAt) in rows {
            head = h
            guard let position, let channel, let event, let payload, let messageId, let senderType else { continue }
            out.append(Message(FrameParts(event: event, channel: channel, messageId: messageId, position: position, senderType: senderType,
                                          senderId: senderId, timestamp: createdAt ?? ""),
                               payload: payload))
        }
        return (out, head)
    }

    /// A page of messages beside the log's head; `$1` after, `$2` limit.
    static func messagesSQL(upTo bound: String, _ condition: String = "") -> String {
        """
        WITH h AS (SELECT coalesce(max(position), 0) AS head FROM system.events)
        SELECT h.head, \(messageColumns)
          FROM h LEFT JOIN LATERAL (
            SELECT * FROM system.events x
             WHERE x.position > $1 AND x.position <= \(bound) AND x.type = 'MessagePublished' \(condition)
             ORDER BY x.position LIMIT $2) e ON true
        ORDER BY e.position
        """
    }

    typealias MessageRow = (Int64, Int64?, String?, String?, String?, String?, String?, String?, String?)

    // Both reads are prepared once per connection: the live one runs at every wake-up of the log.

    struct LiveMessages: PostgresPreparedStatement {
        static let sql = messagesSQL(upTo: "h.head")
        typealias Row = MessageRow
        var after: Int64
        var limit: Int

        func makeBindings() throws -> PostgresBindings { .of(after, Int64(limit)) }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    struct ReplayedMessages: PostgresPreparedStatement {
        static let sql = messagesSQL(upTo: "least(h.head, $3)", "AND x.stream_id = $4")
        typealias Row = MessageRow
        var after: Int64
        var limit: Int
        var through: Int64
        var stream: String

        func makeBindings() throws -> PostgresBindings { .of(after, Int64(limit), through, stream) }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }
}
