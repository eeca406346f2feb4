import EventStore
import Foundation
import Logging
import PostgresNIO

/// Row-level security for table channels (`table:<name>`, fed by tables that publish their changes):
/// what each non-admin subscriber gets of a batch of change messages while the table has row-level
/// security. PostgreSQL decides, as the subscriber (`realtime.filter_changes`): rows it can see now
/// come whole, deletes with the primary key only, the rest not at all. Admins get everything, and so
/// does everyone on a table without row-level security (its rows are anyone's to read).
struct TableChangeFilter: Sendable {
    let client: PostgresClient
    let logger: Logger

    /// A change message as the filter needs it: its table and what its frame is made of.
    struct Change: Sendable {
        var table: String
        var event: String
        var payload: String
        var messageId: String
        var senderType: String
        var senderId: String?
        var timestamp: String
    }

    /// A non-admin subscription to a table channel.
    struct Listener: Sendable {
        var socketId: String
        var identity: DatabaseIdentity
    }

    /// For each filtered message (by log position): the frame each listed socket gets. A filtered
    /// message's socket that is not listed (it failed the check, or subscribed after it) gets nothing.
    typealias Verdicts = [Int64: [String: OutboundFrame]]

    /// The change a message carries, if it is one: the database's message on a table channel.
    static func change(channel: String, event: String, payload: String, messageId: String, senderType: String,
                       senderId: String?, timestamp: String) -> Change? {
        guard channel.hasPrefix("table:"), senderType == "system", ["INSERT", "UPDATE", "DELETE"].contains(event) else { return nil }
        return Change(table: String(channel.dropFirst("table:".count)), event: event, payload: payload, messageId: messageId,
                      senderType: senderType, senderId: senderId, timestamp: timestamp)
    }

    /// The verdicts for `messages`, whose table channels have `listeners` (by channel name).
    func verdicts(for messages: [RealtimeHub.Message], listeners: [String: [Listener]]) async -> Verdicts {
        let changes = messages.filter { $0.change != nil && listeners[$0.channel] != nil }
        guard !changes.isEmpty else { return [:] }
        var verdicts: Verdicts = [:]
        let tables = Set(changes.compactMap { $0.change?.table })
        let guarded: Set<String>
        do {
            guarded = try await rowSecured(tables)
        } catch {
            // Unknown: deny rather than leak.
            logger.warning("realtime: reading row-level security of table channels failed", metadata: ["error": "\(String(reflecting: error))"])
            guarded = tables
        }
        for table in guarded.sorted() {
            let batch = changes.filter { $0.change?.table == table }
            for message in batch { verdicts[message.position] = [:] }
            // One query per distinct caller: sockets with the same role and claims see the same rows.
            var callers: [String: [Listener]] = [:]
            for listener in listeners["table:\(table)"] ?? [] {
                callers[(listener.identity.role ?? "") + "\u{0}" + listener.identity.claims, default: []].append(listener)
            }
            for sockets in callers.values {
                let identity = sockets[0].identity
                let allowed: [(Int, String?)]
                do {
                    allowed = try await filter(batch, table: table, as: identity)
                } catch {
                    logger.debug("realtime: a table channel check failed; nothing sent", metadata: ["error": "\(String(reflecting: error))"])
                    continue
                }
                for (ordinal, payload) in allowed where ordinal >= 1 && ordinal <= batch.count {
                    let message = batch[ordinal - 1]
                    guard let change = message.change else { continue }
                    let frame = payload.map {
                        OutboundFrame(RealtimeHub.frame(event: change.event, payload: $0, channel: message.channel, messageId: change.messageId,
                                                        position: message.position, senderType: change.senderType, senderId: change.senderId,
                                                        timestamp: change.timestamp))
                    } ?? message.frame
                    for socket in sockets { verdicts[message.position, default: [:]][socket.socketId] = frame }
                }
            }
        }
        return verdicts
    }

    /// Which of `tables` (public schema) have row-level security on.
    private func rowSecured(_ tables: Set<String>) async throws -> Set<String> {
        var out = Set<String>()
        for try await name in try await client.query("""
            SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relname = ANY (\(Array(tables))) AND c.relrowsecurity
            """, logger: logger).decode(String.self) {
            out.insert(name)
        }
        return out
    }

    /// `realtime.filter_changes` as `identity`: the 1-based ordinals of `batch` it gets, each with its
    /// payload when that differs from the published one.
    private func filter(_ batch: [RealtimeHub.Message], table: String, as identity: DatabaseIdentity) async throws -> [(Int, String?)] {
        let payloads = "[" + batch.compactMap { $0.change?.payload }.joined(separator: ",") + "]"
        var out: [(Int, String?)] = []
        // One statement, so one implicit transaction: the role and claims it sets end with it.
        for try await (ordinal, payload) in try await client.query("""
            SELECT ord, payload FROM realtime.filter_changes(\(identity.role), \(identity.claims), \(table), \(payloads)::jsonb)
            """, logger: logger).decode((Int32, String?).self) {
            out.append((Int(ordinal), payload))
        }
        return out
    }
}
