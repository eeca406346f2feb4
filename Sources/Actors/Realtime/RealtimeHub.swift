import EventStore
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// One connected socket as the hub sees it; the Socket.IO transport implements it.
public protocol RealtimeSubscriber: AnyObject, Sendable {
    /// The Socket.IO socket id (also its presence id).
    var socketId: String { get }
    var identity: DatabaseIdentity { get }
    var role: String { get }
    /// Sends frames to this socket alone, in order (replays, presence, errors); false when it cannot
    /// take them (it is then dropped from every channel).
    func send(_ frames: [OutboundFrame]) -> Bool
}

/// Where the hub's live frames go: the transport writes them (grouping the writes of a batch as it
/// likes, e.g. by event loop). Tests pass a fake that records them.
public protocol RealtimeSink: Sendable {
    associatedtype Subscriber: RealtimeSubscriber
    /// Writes each frame to its subscriber, in the order given; returns the socket ids that could not
    /// take theirs (the hub drops them).
    func deliver(_ writes: [(Subscriber, OutboundFrame)]) -> [String]
}

/// Who is on a channel: one member per subscribed socket.
public struct PresenceMember: Codable, Sendable, Equatable {
    public var presenceId: String
    public var userId: String?
    public var role: String
    public var joinedAt: String
}

/// The realtime fan-out of one node: who is subscribed to what, presence, and the delivery of
/// messages, which it takes from the log (whichever node published them) in log order.
///
/// Subscribing with `since` replays the channel's messages after that position up to the hub's
/// cursor from the log, while live messages for the channel are held back; then the held ones
/// follow. All of it happens between suspension points of this actor, so nothing is missed or sent
/// twice.
public actor RealtimeHub<Sink: RealtimeSink>: Service {
    public typealias Subscriber = Sink.Subscriber
    struct Subscription {
        let subscriber: Subscriber
        let channelId: UUID
        let member: PresenceMember
        /// Live messages at or before this position are not sent (the client has them).
        var after: Int64
        /// While the replay runs: live frames held back.
        var held: [(Int64, OutboundFrame)]?
    }

    let store: EventStore
    let sink: Sink
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

    public init(store: EventStore, sink: Sink, logger: Logger, replayLimit: Int = 10_000) {
        self.store = store
        self.sink = sink
        self.logger = logger
        self.replayLimit = replayLimit
        self.filter = TableChangeFilter(client: store.client, logger: logger)
    }

    // MARK: following the log

    public func run() async throws {
        while !shutdownRequested {
            do {
                if !started {
                    cursor = try await store.headPosition()
                    started = true
                    for waiter in startWaiters { waiter.resume() }
                    startWaiters = []
                }
                try await cancelWhenGracefulShutdown { try await self.follow() }
            } catch {
                if shutdownRequested { break }
                logger.warning("realtime hub: reading the log failed; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    private func follow() async throws {
        while !Task.isCancelled {
            let generation = store.watcher.signal.generation
            let (messages, head) = try await RealtimeMessage.read(on: store.client, after: cursor, limit: 1000)
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
    private func listeners(of messages: [RealtimeMessage]) -> [String: [TableChangeFilter.Listener]] {
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
    private static func frame(of message: RealtimeMessage, for subscriber: Subscriber, _ filtered: [String: OutboundFrame]?) -> OutboundFrame? {
        guard let filtered, !subscriber.identity.isAdmin else { return message.frame }
        return filtered[subscriber.socketId]
    }

    private func deliver(_ messages: [RealtimeMessage], _ verdicts: TableChangeFilter.Verdicts = [:]) {
        var writes: [(Subscriber, OutboundFrame)] = []
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
                writes.append((subscription.subscriber, frame))
            }
        }
        guard !writes.isEmpty else { return }
        for socketId in sink.deliver(writes) { remove(socketId) }
    }

    // MARK: subscriptions

    /// Adds `subscriber` to `channel` (once); returns the channel's members. With `since`, first
    /// replays what the channel got after that position.
    public func subscribe(_ subscriber: Subscriber, channel: String, channelId: UUID, since: Int64?) async throws -> [PresenceMember] {
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
            let replayed: [RealtimeMessage]
            do {
                replayed = try await RealtimeMessage.read(on: store.client, after: replayFrom, replaying: (channel, start),
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
                frames.append(OutboundFrame.event("realtime:error", body: #"{"channel":\#(JSONCoding.quoted(channel)),"code":"REALTIME_REPLAY_TRUNCATED","message":"More messages were missed than a resubscription replays; fetch the rest from /api/realtime/messages"}"#))
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
    public func subscription(_ socketId: String, channel: String) -> UUID? { channels[channel]?[socketId]?.channelId }

    public func unsubscribe(_ socketId: String, channel: String) {
        guard let subscription = channels[channel]?.removeValue(forKey: socketId) else { return }
        if channels[channel]?.isEmpty == true { channels[channel] = nil }
        socketChannels[socketId]?.remove(channel)
        if socketChannels[socketId]?.isEmpty == true { socketChannels[socketId] = nil }
        broadcast(presence: "presence:leave", member: subscription.member, channel: channel, except: socketId)
    }

    /// The socket is gone: it leaves every channel.
    public func remove(_ socketId: String) {
        for channel in socketChannels[socketId] ?? [] { unsubscribe(socketId, channel: channel) }
    }


    public func members(of channel: String) -> [PresenceMember] {
        (channels[channel] ?? [:]).values.map(\.member).sorted { $0.joinedAt == $1.joinedAt ? $0.presenceId < $1.presenceId : $0.joinedAt < $1.joinedAt }
    }


    private func broadcast(presence event: String, member: PresenceMember, channel: String, except socketId: String) {
        guard let subscriptions = channels[channel], subscriptions.count > (subscriptions[socketId] == nil ? 0 : 1) else { return }
        let memberJSON = (try? JSONCoding.encodeString(member)) ?? "{}"
        let body = #"{"member":\#(memberJSON),"meta":{"channel":\#(JSONCoding.quoted(channel)),"timestamp":\#(JSONCoding.quoted(JSONCoding.timestamp(Date())))}}"#
        let frame = OutboundFrame.event(event, body: body)
        for (other, subscription) in subscriptions where other != socketId {
            if !subscription.subscriber.send([frame]) { remove(other) }
        }
    }

}
