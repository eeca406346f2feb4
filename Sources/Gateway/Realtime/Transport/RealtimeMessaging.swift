import Actors
import EventStore
import Foundation
import Logging
import PostgresNIO

/// The client events of InsForge's realtime protocol: `realtime:subscribe`, `realtime:unsubscribe`
/// and `realtime:publish`. Permission checks run in Postgres as the caller; delivery is the hub's.
struct RealtimeMessaging: Sendable {
    let hub: SocketHub
    let channels: RealtimeChannels
    /// Each socket's publishing budget.
    let publishRate: TokenBucket.Rate
    let logger: Logger

    /// What goes back to the client: the ACK's argument (when it asked for one) and events to emit.
    struct Reply: Sendable, Equatable {
        var ack: String?
        var emits: [SocketIOPacket] = []
        /// Whether `emits` go out even when the client asked for an ack (publish errors always do).
        var emitWithAck = false

        /// The packets to send for a client event with or without an ack id.
        func packets(ackId: Int?) -> [SocketIOPacket] {
            var out: [SocketIOPacket] = []
            if let ackId, let ack { out.append(.ack(ackId, [ack])) }
            if ackId == nil || emitWithAck { out += emits }
            return out
        }
    }

    /// `raw` is the first argument as the client sent it (the payload is taken from it verbatim).
    func handle(_ name: String, _ arguments: [JSONValue], raw: Substring? = nil, from subscriber: SocketSubscriber) async -> Reply {
        let body = arguments.first?.objectValue ?? [:]
        let channel = body["channel"]?.stringValue
        switch name {
        case "realtime:subscribe":
            return await subscribe(body, channel: channel, subscriber)
        case "realtime:unsubscribe":
            guard let channel else { return failure(nil, "REALTIME_INVALID_PAYLOAD", "channel is required") }
            await hub.unsubscribe(subscriber.socketId, channel: channel)
            return Reply(ack: #"{"ok":true,"channel":\#(JSONCoding.quoted(channel))}"#)
        case "realtime:publish":
            return await publish(body, raw: raw, channel: channel, subscriber)
        default:
            return Reply(ack: #"{"ok":false,"error":{"code":"REALTIME_UNKNOWN_EVENT","message":\#(JSONCoding.quoted("unknown event \(name)"))}}"#)
        }
    }

    private func subscribe(_ body: [String: JSONValue], channel: String?, _ subscriber: SocketSubscriber) async -> Reply {
        guard let channel else { return failure(nil, "REALTIME_INVALID_PAYLOAD", "channel is required") }
        if let problem = RealtimeChannels.nameProblem(channel) { return failure(channel, "REALTIME_INVALID_PAYLOAD", problem) }
        var since = subscriber.connectOffset
        if let value = body["since"], value != .null {
            guard case .number(let n) = value, n >= 0, n < 9e15, n == n.rounded() else {
                return failure(channel, "REALTIME_INVALID_PAYLOAD", "since must be a log position (a whole number)")
            }
            since = Int64(n)
        }
        do {
            guard let resolved = try await channels.subscribable(channel, as: subscriber.identity) else {
                return failure(channel, "REALTIME_UNAUTHORIZED",
                               "Not allowed to subscribe to \(channel): no enabled channel matches it, or a policy denies it")
            }
            let members = try await hub.subscribe(subscriber, channel: channel, channelId: resolved.id, since: since)
            let list = (try? JSONCoding.encodeString(members)) ?? "[]"
            return Reply(ack: #"{"ok":true,"channel":\#(JSONCoding.quoted(channel)),"presence":{"members":\#(list)}}"#)
        } catch {
            logger.warning("realtime subscribe failed", metadata: ["channel": "\(channel)", "error": "\(String(reflecting: error))"])
            return failure(channel, "REALTIME_ERROR", "The subscription could not be completed; retry")
        }
    }

    private func publish(_ body: [String: JSONValue], raw: Substring?, channel: String?, _ subscriber: SocketSubscriber) async -> Reply {
        guard let channel else { return failure(nil, "REALTIME_INVALID_PAYLOAD", "channel is required") }
        guard let channelId = await hub.subscription(subscriber.socketId, channel: channel) else {
            return failure(channel, "REALTIME_NOT_SUBSCRIBED", "Subscribe to \(channel) before publishing to it", always: true)
        }
        guard subscriber.mayPublish(rate: publishRate, now: Double(DispatchTime.now().uptimeNanoseconds) / 1e9) else {
            return failure(channel, "REALTIME_RATE_LIMITED",
                           "Too many messages: at most \(Int(publishRate.perSecond)) a second per socket", always: true)
        }
        guard let event = body["event"]?.stringValue else { return failure(channel, "REALTIME_INVALID_PAYLOAD", "event is required", always: true) }
        if let problem = RealtimeChannels.eventNameProblem(event) { return failure(channel, "REALTIME_INVALID_PAYLOAD", problem, always: true) }
        let payload = body["payload"] ?? .object([:])
        guard case .object = payload else { return failure(channel, "REALTIME_INVALID_PAYLOAD", "payload must be a JSON object", always: true) }
        let id = UUID()
        do {
            // As the client wrote it: large integers and key order survive (Postgres checks the JSON again).
            let text = try raw.flatMap { RawJSON.member("payload", ofObject: $0) }.map(String.init) ?? JSONCoding.encodeString(payload)
            try await channels.publish(id: id, channelId: channelId, channel: channel, event: event, payload: text,
                                       senderType: "user", as: subscriber.identity)
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "42501" {
            return failure(channel, "REALTIME_UNAUTHORIZED", "Not allowed to publish to \(channel): a policy denies it", always: true)
        } catch {
            logger.warning("realtime publish failed", metadata: ["channel": "\(channel)", "error": "\(String(reflecting: error))"])
            return failure(channel, "REALTIME_ERROR", "The message could not be published; retry", always: true)
        }
        return Reply(ack: #"{"ok":true,"channel":\#(JSONCoding.quoted(channel)),"messageId":"\#(id.uuidString.lowercased())"}"#)
    }

    /// `{ok: false, channel, error: {code, message}}` as the ack, and `realtime:error {channel, code, message}`
    /// emitted (when no ack was asked for, or `always`).
    private func failure(_ channel: String?, _ code: String, _ message: String, always: Bool = false) -> Reply {
        let channelField = channel.map { #""channel":\#(JSONCoding.quoted($0)),"# } ?? ""
        let error = #"{"code":\#(JSONCoding.quoted(code)),"message":\#(JSONCoding.quoted(message))}"#
        return Reply(ack: #"{"ok":false,\#(channelField)"error":\#(error)}"#,
                     emits: [.event("realtime:error", [#"{\#(channelField)"code":\#(JSONCoding.quoted(code)),"message":\#(JSONCoding.quoted(message))}"#])],
                     emitWithAck: always)
    }
}
