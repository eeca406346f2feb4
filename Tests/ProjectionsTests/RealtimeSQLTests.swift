import EventStore
import Foundation
import PostgresNIO
import Projections
import Testing
import TestSupport

/// The realtime schema's SQL: channel matching and resolution, the path from a message row to a
/// `MessagePublished` event, and the webhook outbox rebuilt identically by a replay.
@Suite("Realtime SQL")
struct RealtimeSQLTests {
    static func matches(_ client: PostgresClient, _ pattern: String, _ name: String) async throws -> Bool {
        try await scalar(client, "SELECT realtime.matches(\(pattern), \(name))", as: Bool.self)
    }

    @Test func percentIsTheOnlyWildcard() async throws {
        try await TestDatabase.with { client, _ in
            for (pattern, name, expected) in [
                ("chat:%", "chat:lobby", true), ("chat:%", "chat:", true), ("chat:%", "chat:a:b%c", true),
                ("chat:%", "chat", false), ("chat:%", "xchat:lobby", false), ("chat:%", "Chat:lobby", false),
                ("org:%:room:%", "org:1:room:2", true), ("org:%:room:%", "org:1:hall:2", false),
                ("%:events", "orders:events", true), ("%:events", "orders:events:x", false),
                ("ab%ba", "aba", false), ("ab%ba", "abba", true),
                ("room_1", "room_1", true), ("room_1", "roomX1", false), (#"a\%"#, #"a\x"#, true), (#"a\b"#, #"a\b"#, true),
                (#"a\b"#, "ab", false), ("a.*", "abc", false),
            ] {
                let got = try await Self.matches(client, pattern, name)
                #expect(got == expected, "\(pattern) ~ \(name)")
            }
        }
    }

    @Test func exactMatchWinsThenTheMostSpecificEnabledPattern() async throws {
        try await TestDatabase.with { client, _ in
            for (pattern, enabled) in [("%", true), ("chat:%", true), ("chat:vip:%", true), ("chat:vip:lounge", true), ("news", true),
                                       ("x%z", true), ("%yz", true), ("off:%", false)] {
                try await client.query("""
                    INSERT INTO realtime.channels (id, pattern, enabled, created_at, updated_at)
                    VALUES (gen_random_uuid(), \(pattern), \(enabled), now(), now())
                    """)
            }
            func resolve(_ name: String) async throws -> String? {
                for try await pattern in try await client.query("SELECT pattern FROM realtime.resolve(\(name))").decode(String.self) {
                    return pattern
                }
                return nil
            }
            #expect(try await resolve("chat:vip:lounge") == "chat:vip:lounge")
            #expect(try await resolve("chat:vip:bar") == "chat:vip:%")
            #expect(try await resolve("chat:general") == "chat:%")
            #expect(try await resolve("other") == "%")
            #expect(try await resolve("xyz") == "%yz")  // a tie on specificity goes to the first pattern by name
            #expect(try await resolve("off:1") == "%")  // disabled channels do not count
            try await client.query("DELETE FROM realtime.channels WHERE pattern = '%'")
            #expect(try await resolve("other") == nil)
        }
    }

    @Test func messagesBecomeEventsAndTheOutboxReplaysIdentically() async throws {
        try await withEventStore(inline: ProjectionCatalog.inline) { store, _ in
            let channelId = UUID()
            let urls = ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]
            try await store.append([try EventData(ChannelCreated(
                channelId: channelId, settings: ChannelSettings(pattern: "order:%", description: nil, webhookUrls: urls, enabled: true),
                secretCiphertext: "sealed"))], to: "channel-\(channelId.uuidString.lowercased())")
            let first = try await scalar(store.client, "SELECT realtime.publish('order:1', 'created', '{\"id\": 1}')", as: UUID.self)
            try await store.client.query("SELECT realtime.publish('order:2', 'created', '{\"id\": 2}')")
            // Without a matching channel nothing is stored.
            try await store.client.query("SELECT realtime.publish('nowhere', 'x', '{}')")
            await store.sequencer.flush()

            let events = try await store.readAll(after: 0, filter: EventFilter(types: [MessagePublished.type]))
            #expect(events.map(\.streamId) == ["realtime-order:1", "realtime-order:2"])
            #expect(events[0].eventId == first)
            let published = try events[0].decode(MessagePublished.self)
            #expect(published.channelId == channelId && published.channel == "order:1" && published.senderType == "system")
            #expect(published.webhookUrls == urls && published.payload == .object(["id": .number(1)]))

            try await ReplayVerifierTests.catchUp(store)
            #expect(try await scalar(store.client, "SELECT count(*) FROM realtime.webhook_outbox", as: Int64.self) == 4)
            #expect(try await scalar(store.client, "SELECT count(DISTINCT id) FROM realtime.webhook_outbox WHERE body = '{\"id\": 1}'",
                                     as: Int64.self) == 2)
            let report = try await ReplayVerifierTests.verifier.verify(inline: ReplayVerifierTests.inline, client: store.client)
            #expect(report.matches)
            #expect(report.tables.contains { $0.table == "realtime.webhook_outbox" && $0.liveRows == 4 })
            #expect(report.tables.contains { $0.table == "realtime.channels" && $0.liveRows == 1 })
        }
    }
    /// Every function of ours that runs as its owner searches pg_catalog and pg_temp only (security review).
    @Test func definerFunctionsHaveASafeSearchPath() async throws {
        try await TestDatabase.with { client, _ in
            let unsafe = try await scalar(client, """
                SELECT coalesce(string_agg(n.nspname || '.' || p.proname || ' ' || coalesce(array_to_string(p.proconfig, ';'), '(none)'), ', '), '')
                FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE p.prosecdef AND n.nspname IN ('system', 'realtime', 'auth', 'storage', 'public')
                  AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
                """, as: String.self)
            #expect(unsafe == "")
            let count = try await scalar(client, """
                SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE p.prosecdef AND n.nspname IN ('system', 'realtime')
                """, as: Int64.self)
            #expect(count >= 7)
        }
    }

    /// `realtime.filter_table_changes`: one call answers every subscriber of a table, each checked as
    /// itself; one that cannot read the table gets nothing and does not spoil the others' answers.
    @Test func tableChangesAreFilteredForEveryCallerInOneCall() async throws {
        try await TestDatabase.with { client, _ in
            try await client.query("CREATE TABLE public.notes (id int PRIMARY KEY, owner text, body text)")
            try await client.query("CREATE TABLE public.open_notes (id int PRIMARY KEY, body text)")
            // Tables made outside the tables API start unexposed with RLS on (system.secure_new_tables): expose them as an admin would.
            try await client.query("SELECT system.set_table_exposed('public.notes', true), system.set_table_exposed('public.open_notes', true)")
            try await client.query("ALTER TABLE public.open_notes DISABLE ROW LEVEL SECURITY")
            try await client.query("CREATE POLICY own ON public.notes FOR SELECT USING (owner = auth.uid()::text)")
            try await client.query("REVOKE SELECT ON public.notes FROM anon")
            let a = UUID().uuidString.lowercased(), b = UUID().uuidString.lowercased()
            try await client.query("INSERT INTO public.notes VALUES (1, \(a), 'mine'), (2, \(b), 'theirs')")
            let payloads = """
                [{"operation":"INSERT","record":{"id":1,"owner":"\(a)","body":"mine"},"old_record":null},
                 {"operation":"UPDATE","record":{"id":2,"owner":"\(b)","body":"theirs"},"old_record":{"id":2}},
                 {"operation":"DELETE","record":null,"old_record":{"id":3,"owner":"\(a)","body":"secret"}},
                 {"operation":"INSERT","record":{"id":9,"owner":"\(a)","body":"gone"},"old_record":null},
                 {"operation":"TRUNCATE","record":null,"old_record":null}]
                """
            func answers(_ table: String, _ roles: [String], _ claims: [String]) async throws -> [String] {
                var out: [String] = []
                let rows = try await client.query("""
                    SELECT caller, ord, payload FROM realtime.filter_table_changes(\(table), \(roles), \(claims), \(payloads)::jsonb)
                    """)
                for try await (caller, ord, payload) in rows.decode((Int32, Int32, String?).self) {
                    let key = payload.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                        .flatMap { $0["old_record"] as? [String: Any] }.map { $0.keys.sorted().joined(separator: ",") }
                    out.append("\(caller):\(ord)" + (key.map { "(\($0))" } ?? ""))
                }
                return out
            }
            let claims = [#"{"sub":"\#(a)","role":"authenticated"}"#, #"{"sub":"\#(b)","role":"authenticated"}"#, #"{"role":"anon"}"#,
                          #"{"sub":"\#(a)","role":"authenticated"}"#]
            // Each caller sees its own rows; deletes go to everyone who can read the table, cut to the key;
            // anon may not read the table at all, and a role that is not ours is refused.
            #expect(try await answers("notes", ["authenticated", "authenticated", "anon", "postgres"], claims)
                    == ["1:1", "1:3(id)", "2:2", "2:3(id)"])
            // A table without row-level security needs no check: one row says everything goes to everyone.
            #expect(try await answers("open_notes", ["anon"], [#"{"role":"anon"}"#]) == ["0:0"])
            #expect(try await answers("no_such_table", ["anon"], [#"{"role":"anon"}"#]).isEmpty)
            // The role and claims end with the statement.
            #expect(try await scalar(client, "SELECT current_user::text", as: String.self) == "postgres")
        }
    }
}
