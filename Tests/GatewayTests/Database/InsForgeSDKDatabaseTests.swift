import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import Gateway

/// The InsForge Swift SDK's DatabaseClient, request by request as it builds them (paths under
/// `/api/database`, unquoted `eq.`/`in.(...)` values, `Prefer: return=representation` on writes, inserts
/// always as an array, updates as an object, `Accept: application/vnd.pgrst.object+json` for single(),
/// counts from `Content-Range`), decoding our answers with its models and date strategy.
struct InsForgeSDKDatabaseTests {
    struct Post: Codable, Equatable {
        var id: String?
        var title: String
        var views: Int
        var published: Bool
        var createdAt: Date?
        enum CodingKeys: String, CodingKey { case id, title, views, published, createdAt = "created_at" }
    }

    static var decoder: JSONDecoder { InsForgeSDKCompatibilityTests.decoder }

    static func send(_ client: any TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, headers: HTTPFields = [:],
                     body: String? = nil) async throws -> TestResponse {
        var all = GatewayTests.admin
        for field in headers { all[field.name] = field.value }
        return try await client.execute(uri: uri, method: method, headers: all, body: body.map { ByteBuffer(string: $0) })
    }

    @Test func sdkDatabaseCallsDecodeOurResponses() async throws {
        try await GatewayTests.withApp { client in
            let created = try await Self.send(client, .post, "/api/database/tables", body: """
                {"tableName":"posts","rlsEnabled":true,"columns":[{"columnName":"title","type":"string","isNullable":false},
                 {"columnName":"views","type":"integer","isNullable":false},{"columnName":"published","type":"boolean","isNullable":false}]}
                """)
            #expect(created.status == .created)
            let representation: HTTPFields = [HTTPField.Name("Prefer")!: "return=representation", .contentType: "application/json"]

            // insert([x, y]) -> [T]
            let inserted = try await Self.send(client, .post, "/api/database/records/posts", headers: representation, body: """
                [{"title":"a","views":5,"published":true},{"title":"b","views":150,"published":true}]
                """)
            #expect(inserted.status == .created)
            let posts = try Self.decoder.decode([Post].self, from: Data(buffer: inserted.body))
            #expect(posts.map(\.title) == ["a", "b"] && posts.allSatisfy { $0.id != nil && $0.createdAt != nil })

            // from("posts").select("id,title,views,published,created_at").eq("published", true).gt("views", 100).order(...).range(0, 9)
            let selected = try await Self.send(client, .get,
                "/api/database/records/posts?select=id,title,views,published,created_at&published=eq.true&views=gt.100&order=created_at.desc&offset=0&limit=10")
            #expect(selected.status == .ok)
            #expect(try Self.decoder.decode([Post].self, from: Data(buffer: selected.body)).map(\.title) == ["b"])

            // in.(...) unquoted, and count(.exact) via HEAD + Content-Range
            let counted = try await Self.send(client, .head, "/api/database/records/posts?select=*&title=in.(a,b,c)",
                                              headers: [HTTPField.Name("Prefer")!: "count=exact"])
            #expect(counted.headers[HTTPField.Name("Content-Range")!]?.hasSuffix("/2") == true)

            // single(): a bare object
            let one = try await Self.send(client, .get, "/api/database/records/posts?select=*&title=eq.a",
                                          headers: [.accept: "application/vnd.pgrst.object+json"])
            #expect(try Self.decoder.decode(Post.self, from: Data(buffer: one.body)).views == 5)

            // update(v).eq("title", "a") -> [T]
            let updated = try await Self.send(client, .patch, "/api/database/records/posts?title=eq.a", headers: representation,
                                              body: #"{"views":6}"#)
            #expect(try Self.decoder.decode([Post].self, from: Data(buffer: updated.body)).map(\.views) == [6])

            // upsert([x], onConflict: "id") with merge-duplicates
            let id = try #require(posts.first?.id)
            var upsertHeaders = representation
            upsertHeaders[HTTPField.Name("Prefer")!] = "resolution=merge-duplicates,return=representation"
            let upserted = try await Self.send(client, .post, "/api/database/records/posts?on_conflict=id", headers: upsertHeaders,
                                               body: #"[{"id":"\#(id)","title":"a2","views":7,"published":false}]"#)
            #expect(try Self.decoder.decode([Post].self, from: Data(buffer: upserted.body)).map(\.title) == ["a2"])

            // delete().eq("id", id): the body is ignored; any 2xx will do
            let deleted = try await Self.send(client, .delete, "/api/database/records/posts?id=eq.\(id)")
            #expect((200..<300).contains(Int(deleted.status.code)))

            // rpc("fn", args) -> [T] or T
            _ = try await Self.send(client, .post, "/api/database/advance/rawsql/unrestricted",
                                    body: #"{"query":"CREATE FUNCTION add_views(a int, b int) RETURNS int LANGUAGE sql AS 'select a + b'"}"#)
            let sum = try await Self.send(client, .post, "/api/database/rpc/add_views", headers: [.contentType: "application/json"],
                                          body: #"{"a":2,"b":3}"#)
            #expect(try Self.decoder.decode(Int.self, from: Data(buffer: sum.body)) == 5)

            // An error decodes as the SDK's ErrorResponse (only `message` is required).
            let failed = try await Self.send(client, .get, "/api/database/records/nope")
            #expect(failed.status == .notFound)
            let error = try JSONDecoder().decode(InsForgeSDKCompatibilityTests.ErrorResponse.self, from: Data(buffer: failed.body))
            #expect(error.message.contains("nope"))
        }
    }
}
