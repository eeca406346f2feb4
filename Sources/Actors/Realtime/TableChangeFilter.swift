import EventStore
import Foundation
import Logging
import PostgresNIO

/// Row-level security for table channels (`table:<name>`, fed by tables that publish their changes):
/// what each non-admin subscriber gets of a batch of change messages while the table has row-level
/// security. PostgreSQL decides, as each subscriber (`realtime.filter_table_changes`, one call per
/// table for all its subscribers): rows it can see now come whole, deletes with the primary key only,
/// the rest not at all. Admins get everything, and so does everyone on a table without row-level
/// security (its rows are anyone's to read).
struct TableChangeFilter: Sendable {
    let client: PostgresClient
    let logger: Logger

    /// A non-admin subscription to a table channel.
    struct Listener: Sendable {
        var socketId: String
        var identity: DatabaseIdentity
    }

    /// For each filtered message (by log position): the frame each listed socket gets. A filtered
    /// message's socket that is not listed (it failed the check, or subscribed after it) gets nothing.
    /// Messages of tables without row-level security have no entry: they go to everyone.
    typealias Verdicts = [Int64: [String: OutboundFrame]]

    /// The verdicts for `messages`, whose table channels have `listeners` (by channel name).
    func verdicts(for messages: [RealtimeMessage], listeners: [String: [Listener]]) async -> Verdicts {
        var byTable: [String: [RealtimeMessage]] = [:]
        for message in messages {
            guard let table = message.changedTable, listeners[message.channel] != nil else { continue }
            byTable[table, default: []].append(message)
        }
        var verdicts: Verdicts = [:]
        for (table, batch) in byTable.sorted(by: { $0.key < $1.key }) {
            // Sockets with the same role and claims see the same rows: each such caller is checked once.
            var callers: [String: [Listener]] = [:]
            for listener in listeners["table:\(table)"] ?? [] {
                callers[(listener.identity.role ?? "") + "\u{0}" + listener.identity.claims, default: []].append(listener)
            }
            let groups = Array(callers.values)
            let answers: [(caller: Int, ordinal: Int, payload: String?)]
            do {
                answers = try await filter(batch, table: table, as: groups.map { $0[0].identity })
            } catch {
                // Unknown: deny rather than leak (no answers, so nobody is listed below).
                logger.warning("realtime: the row-level security check of a table channel failed; nothing sent to its non-admin subscribers",
                               metadata: ["table": "\(table)", "error": "\(String(reflecting: error))"])
                answers = []
            }
            if answers.first?.caller == 0 { continue }  // no row-level security: everything goes to everyone
            for message in batch { verdicts[message.position] = [:] }
            for answer in answers where groups.indices.contains(answer.caller - 1) && batch.indices.contains(answer.ordinal - 1) {
                let message = batch[answer.ordinal - 1]
                let frame = answer.payload.map { OutboundFrame(message.parts.frame(payload: $0)) } ?? message.frame
                for socket in groups[answer.caller - 1] { verdicts[message.position, default: [:]][socket.socketId] = frame }
            }
        }
        return verdicts
    }

    /// `realtime.filter_table_changes` for `callers`: which of `batch` (1-based ordinals) each caller
    /// (1-based) gets, each with its payload when that differs from the published one; caller 0 alone
    /// when the table has no row-level security.
    private func filter(_ batch: [RealtimeMessage], table: String,
                        as callers: [DatabaseIdentity]) async throws -> [(caller: Int, ordinal: Int, payload: String?)] {
        let payloads = "[" + batch.map(\.payload).joined(separator: ",") + "]"
        // Listeners are not admins, so each has a role.
        let roles = callers.map { $0.role ?? "" }, claims = callers.map(\.claims)
        var out: [(caller: Int, ordinal: Int, payload: String?)] = []
        // One statement, so one implicit transaction: the roles and claims it sets end with it.
        for try await (caller, ordinal, payload) in try await client.query("""
            SELECT caller, ord, payload FROM realtime.filter_table_changes(\(table), \(roles), \(claims), \(payloads)::jsonb)
            """, logger: logger).decode((Int32, Int32, String?).self) {
            out.append((Int(caller), Int(ordinal), payload))
        }
        return out
    }
}
