import Crypto
import EventStore
import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Prometheus
import Testing
import TestSupport

/// The HTTP edge against a real PostgreSQL, through a live server on loopback.
@Suite("Gateway")
struct GatewayTests {
    static let adminKey = "ik_" + String(repeating: "ab", count: 32)

    static func withApp(_ body: @Sendable @escaping (any TestClientProtocol) async throws -> Void) async throws {
        try await TestDatabase.with(migrate: false, poolSize: 2) { _, db in
            let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("gw-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: dataDir) }
            let configuration = try ServerConfiguration.fromEnvironment([
                "DATABASE_URL": db.url, "DATA_DIR": dataDir.path, "ACCESS_API_KEY": adminKey,
                "HOST": "127.0.0.1", "PORT": "0", "EVENT_POLL_INTERVAL_MS": "100",
            ])
            let logger = Logger(label: "gw", factory: { _ in SwiftLogNoOpLogHandler() })
            let database = try await Database.open(configuration, logger: logger)
            _ = try await database.withSingleConnection { try await Migrator(logger: logger).migrate(on: $0) }
            let core = try ServerCore(configuration: configuration, database: database, logger: logger)
            let app = try await buildApplication(core: core, registry: PrometheusCollectorRegistry(), logger: logger)
            try await app.test(.live) { client in try await body(client) }
        }
    }

    static func json(_ buffer: ByteBuffer) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer: buffer)) as? [String: Any])
    }

    static var admin: HTTPFields { [.authorization: "Bearer \(adminKey)", .contentType: "application/json"] }

    static func expectError(_ response: TestResponse, _ status: HTTPResponse.Status, _ code: String,
                            sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(response.status == status, sourceLocation: sourceLocation)
        let body = try json(response.body)
        #expect(body["error"] as? String == code, sourceLocation: sourceLocation)
        #expect(body["statusCode"] as? Int == Int(status.code), sourceLocation: sourceLocation)
        #expect((body["message"] as? String)?.isEmpty == false, sourceLocation: sourceLocation)
    }

    @Test func healthRequestIdsCorsAndNotFound() async throws {
        try await Self.withApp { client in
            try await client.execute(uri: "/api/health", method: .get,
                                     headers: [.origin: "http://app.test", HTTPField.Name("X-Request-Id")!: "abc-123"]) { response in
                #expect(response.status == .ok)
                let body = try Self.json(response.body)
                #expect(body["status"] as? String == "ok")
                #expect(body["service"] as? String == "insforge")
                #expect(response.headers[HTTPField.Name("X-Request-Id")!] == "abc-123")
                // Another site gets CORS without credentials; localhost (no redirect allow-list yet) gets both.
                #expect(response.headers[.accessControlAllowOrigin] == "*")
                #expect(response.headers[.accessControlAllowCredentials] == nil)
                #expect(response.headers[.accessControlExposeHeaders]?.contains("Content-Range") == true)
            }
            try await client.execute(uri: "/api/health", method: .get, headers: [.origin: "http://localhost:3000"]) { response in
                #expect(response.headers[.accessControlAllowOrigin] == "http://localhost:3000")
                #expect(response.headers[.accessControlAllowCredentials] == "true")
            }
            try await client.execute(uri: "/api/nothing-here", method: .get) { response in
                try Self.expectError(response, .notFound, "NOT_FOUND")
                #expect(response.headers[HTTPField.Name("X-Request-Id")!]?.isEmpty == false)
            }
        }
    }

    @Test func credentialsAreToldApartAndNeverDowngraded() async throws {
        try await Self.withApp { client in
            try await client.execute(uri: "/api/events", method: .get) { try Self.expectError($0, .unauthorized, "AUTH_INVALID_CREDENTIALS") }
            let badKey = "ik_" + String(repeating: "0", count: 64)
            try await client.execute(uri: "/api/events", method: .get, headers: [.authorization: "Bearer \(badKey)"]) {
                try Self.expectError($0, .unauthorized, "AUTH_INVALID_API_KEY")
            }
            try await client.execute(uri: "/api/health", method: .get, headers: [.authorization: "Bearer ik_short"]) {
                try Self.expectError($0, .unauthorized, "AUTH_INVALID_API_KEY")
            }
            try await client.execute(uri: "/api/events", method: .get, headers: [.authorization: "Bearer eyJhbGciOiJub25lIn0.e30."]) {
                try Self.expectError($0, .unauthorized, "AUTH_UNAUTHORIZED")
            }
            try await client.execute(uri: "/api/events", method: .get, headers: [.authorization: "Basic YTpi"]) {
                try Self.expectError($0, .unauthorized, "AUTH_UNAUTHORIZED")
            }
            // The admin key works as Bearer and as x-api-key; the anon key is not an admin.
            try await client.execute(uri: "/api/metadata/api-key", method: .get, headers: [HTTPField.Name("x-api-key")!: Self.adminKey]) {
                let json = try Self.json($0.body)
                #expect(json["apiKey"] as? String == Self.adminKey)
            }
            let anon = try await client.execute(uri: "/api/metadata/anon-key", method: .get, headers: Self.admin) {
                try #require(try Self.json($0.body)["anonKey"] as? String)
            }
            #expect(anon.hasPrefix("anon_") && anon.count == 69)
            try await client.execute(uri: "/api/events", method: .get, headers: [.authorization: "Bearer \(anon)"]) {
                try Self.expectError($0, .forbidden, "FORBIDDEN")
            }
            try await client.execute(uri: "/api/health", method: .get, headers: [.authorization: "Bearer \(anon)"]) {
                #expect($0.status == .ok)
            }
        }
    }

    @Test func rotatedKeysKeepTheOldOneForTheGracePeriod() async throws {
        try await Self.withApp { client in
            let old = try await client.execute(uri: "/api/metadata/anon-key", method: .get, headers: Self.admin) {
                try #require(try Self.json($0.body)["anonKey"] as? String)
            }
            let new = try await client.execute(uri: "/api/secrets/anon-key/rotate", method: .post, headers: Self.admin) {
                #expect($0.status == .ok)
                return try #require(try Self.json($0.body)["anonKey"] as? String)
            }
            #expect(new != old)
            for key in [old, new] {
                try await client.execute(uri: "/api/health", method: .get, headers: [.authorization: "Bearer \(key)"]) {
                    #expect($0.status == .ok)
                }
            }
            try await client.execute(uri: "/api/metadata/anon-key", method: .get, headers: Self.admin) {
                let json = try Self.json($0.body)
                #expect(json["anonKey"] as? String == new)
            }
        }
    }

    @Test func appendReadAndConflicts() async throws {
        try await Self.withApp { client in
            let body = #"{"events":[{"type":"OrderPlaced","data":{"total":5}}],"expectedVersion":"no_stream"}"#
            try await client.execute(uri: "/api/events/streams/order-1", method: .post, headers: Self.admin,
                                     body: ByteBuffer(string: body)) { response in
                #expect(response.status == .created)
                let json = try Self.json(response.body)
                #expect(json["positions"] as? [Int] == [3])  // 1 and 2 are the issued keys
                #expect(json["nextExpectedVersion"] as? Int == 1)
            }
            try await client.execute(uri: "/api/events/streams/order-1", method: .post, headers: Self.admin,
                                     body: ByteBuffer(string: body)) { try Self.expectError($0, .conflict, "CONFLICT") }
            // Idempotency-Key: the same request twice appends once.
            var headers = Self.admin
            headers[HTTPField.Name("Idempotency-Key")!] = "k-1"
            let once = #"{"events":[{"type":"OrderPaid","data":{}}]}"#
            for expectDuplicate in [false, true] {
                try await client.execute(uri: "/api/events/streams/order-1", method: .post, headers: headers,
                                         body: ByteBuffer(string: once)) { response in
                    #expect(response.status == .created)
                    let json = try Self.json(response.body)
                    #expect(json["duplicate"] as? Bool == expectDuplicate)
                    #expect(json["positions"] as? [Int] == [4])
                }
            }
            try await client.execute(uri: "/api/events/streams/order-1", method: .get, headers: Self.admin) { response in
                let json = try Self.json(response.body)
                let data = try #require(json["data"] as? [[String: Any]])
                #expect(data.map { $0["streamVersion"] as? Int } == [1, 2])
                #expect(data.map { $0["type"] as? String } == ["OrderPlaced", "OrderPaid"])
                #expect(json["version"] as? Int == 2)
                let metadata = try #require(data[0]["metadata"] as? [String: Any])
                #expect((metadata["actor"] as? [String: Any])?["type"] as? String == "admin")
            }
            try await client.execute(uri: "/api/events?after=2&limit=1", method: .get, headers: Self.admin) { response in
                let json = try Self.json(response.body)
                #expect((json["data"] as? [[String: Any]])?.map { $0["position"] as? Int } == [3])
                #expect(json["nextPosition"] as? Int == 3)
            }
            try await client.execute(uri: "/api/events?category=order&type=OrderPaid", method: .get, headers: Self.admin) { response in
                let json = try Self.json(response.body)
                #expect((json["data"] as? [[String: Any]])?.count == 1)
            }
        }
    }

    @Test func badInputIsA400NamingTheProblem() async throws {
        try await Self.withApp { client in
            let bodies = [
                "not json", "[]", #"{"events":[]}"#, #"{"events":{}}"#, #"{"events":[1]}"#,
                #"{"events":[{"data":{}}]}"#, #"{"events":[{"type":"bad type","data":{}}]}"#,
                #"{"events":[{"type":"Fine","data":[1]}]}"#, #"{"events":[{"type":"Fine"}]}"#,
                #"{"events":[{"type":"Fine","data":{},"eventId":"nope"}]}"#,
                #"{"events":[{"type":"Fine","data":{}}],"expectedVersion":-1}"#,
                #"{"events":[{"type":"Fine","data":{}}],"expectedVersion":true}"#,
                #"{"events":[{"type":"Fine","data":{}}],"expectedVersion":"weird"}"#,
            ]
            for body in bodies {
                try await client.execute(uri: "/api/events/streams/order-1", method: .post, headers: Self.admin,
                                         body: ByteBuffer(string: body)) { try Self.expectError($0, .badRequest, "INVALID_INPUT") }
            }
            let good = #"{"events":[{"type":"Fine","data":{}}]}"#
            for stream in ["nodash", "Order-1", "order-"] {
                try await client.execute(uri: "/api/events/streams/\(stream)", method: .post, headers: Self.admin,
                                         body: ByteBuffer(string: good)) { try Self.expectError($0, .badRequest, "INVALID_INPUT") }
            }
            for query in ["limit=0", "limit=1001", "limit=x", "after=-1", "category=Bad", "type=lower", "stream=nodash"] {
                try await client.execute(uri: "/api/events?\(query)", method: .get, headers: Self.admin) {
                    try Self.expectError($0, .badRequest, "INVALID_INPUT")
                }
            }
            try await client.execute(uri: "/api/events/export?format=zip", method: .get, headers: Self.admin) {
                try Self.expectError($0, .badRequest, "INVALID_INPUT")
            }
            let huge = #"{"events":[{"type":"Big","data":{"s":""# + String(repeating: "x", count: 1_100_000) + #""}}]}"#
            try await client.execute(uri: "/api/events/streams/big-1", method: .post, headers: Self.admin,
                                     body: ByteBuffer(string: huge)) { try Self.expectError($0, .contentTooLarge, "PAYLOAD_TOO_LARGE") }
            // Nothing of the above reached the log: only the two issued keys are there.
            try await client.execute(uri: "/api/events", method: .get, headers: Self.admin) {
                let json = try Self.json($0.body)
                #expect((json["data"] as? [Any])?.count == 2)
            }
        }
    }

    @Test func exportStreamsNDJSONAndLZ4Frames() async throws {
        try await Self.withApp { client in
            for i in 0..<20 {
                try await client.execute(uri: "/api/events/streams/exp-\(i % 3)", method: .post, headers: Self.admin,
                                         body: ByteBuffer(string: #"{"events":[{"type":"Exported","data":{"i":\#(i)}}]}"#)) {
                    #expect($0.status == .created)
                }
            }
            try await client.execute(uri: "/api/events/export", method: .get, headers: Self.admin) { response in
                #expect(response.headers[.contentType] == "application/x-ndjson")
                let lines = String(buffer: response.body).split(separator: "\n")
                #expect(lines.count == 22)
                let positions = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])["position"] as? Int }
                #expect(positions == Array(1...22))
            }
            try await client.execute(uri: "/api/events/export?format=ndjson.lz4&after=2", method: .get, headers: Self.admin) { response in
                let bytes = Array(buffer: response.body)
                #expect(bytes.prefix(4) == [0x04, 0x22, 0x4D, 0x18])  // LZ4 frame magic
                #expect(bytes.suffix(8).prefix(4) == [0, 0, 0, 0] || bytes.count > 12)  // end mark then checksum
            }
        }
    }

    @Test func openAPIListsEveryRoute() async throws {
        try await Self.withApp { client in
            try await client.execute(uri: "/api/openapi.json", method: .get) { response in
                let json = try Self.json(response.body)
                #expect(json["openapi"] as? String == "3.1.0")
                let paths = try #require(json["paths"] as? [String: Any])
                for path in ["/api/health", "/api/events", "/api/events/streams/{streamId}", "/api/events/export",
                             "/api/events/stats", "/api/metadata/api-key", "/api/metadata/anon-key", "/metrics",
                             "/api/secrets/api-key/rotate"] {
                    #expect(paths[path] != nil, "missing \(path)")
                }
            }
        }
    }
}

@Suite("Configuration and pure parts")
struct ConfigurationTests {
    @Test func environmentIsReadOnceAndCheckedClearly() throws {
        let defaults = try ServerConfiguration.fromEnvironment([:])
        #expect(defaults.port == 7130)
        #expect(defaults.database == .embedded(port: nil))
        let external = try ServerConfiguration.fromEnvironment(["DATABASE_URL": "postgresql://u:p%40ss@db.local:6543/app?sslmode=require"])
        #expect(external.database == .external(DatabaseSettings(host: "db.local", port: 6543, username: "u", password: "p@ss",
                                                                database: "app", requireTLS: true)))
        let fromParts = try ServerConfiguration.fromEnvironment(["POSTGRES_HOST": "h", "POSTGRES_DB": "d"])
        #expect(fromParts.database == .external(DatabaseSettings(host: "h", port: 5432, username: "postgres", password: nil, database: "d")))
        for bad in [["JWT_SECRET": "short"], ["ACCESS_API_KEY": "ik_nope"], ["PORT": "70000"], ["DATABASE_URL": "mysql://x"]] {
            #expect(throws: ServerConfiguration.Problem.self) { try ServerConfiguration.fromEnvironment(bad) }
        }
    }

    @Test func keyShapesAndErrorMapping() {
        #expect(Credential.isAdminKeyShape("ik_" + String(repeating: "a", count: 64)))
        #expect(!Credential.isAdminKeyShape("ik_" + String(repeating: "g", count: 64)))
        #expect(!Credential.isAnonKeyShape("anon_" + String(repeating: "a", count: 63)))
        #expect(APIError.from(EventStoreError(.wrongExpectedVersion, "x")).status == .conflict)
        #expect(APIError.from(EventStoreError(.invalidEvent, "x")).code == "INVALID_INPUT")
        #expect(APIError.from(HTTPError(.notFound)).code == "NOT_FOUND")
        // A command's refusal keeps its code; its kind picks the status.
        let taken = APIError.from(DomainError(.storageAlreadyExists, "Bucket b already exists"))
        #expect(taken.status == .conflict && taken.code == "STORAGE_ALREADY_EXISTS" && taken.message == "Bucket b already exists")
        #expect(APIError.from(DomainError(.authInvalidCredentials, "Invalid credentials")).status == .unauthorized)
        #expect(APIError.from(DomainError.notFound("x")).status == .notFound)
        let unexpected = APIError.from(NSError(domain: "secret SQL text", code: 1))
        #expect(unexpected.status == .internalServerError && !unexpected.body.contains("secret"))
    }

    @Test func secretsAreSealedAndOpenOnlyWithTheirKey() throws {
        let box = SecretBox(passphrase: "one passphrase that is long enough")
        let sealed = try box.seal("ik_secret")
        #expect(!sealed.contains("ik_secret"))
        #expect(try box.open(sealed) == "ik_secret")
        #expect(throws: (any Error).self) { try SecretBox(passphrase: "another").open(sealed) }
        // Boxes name their key; a rotated box opens what the old key sealed and seals under the new one.
        #expect(sealed.hasPrefix("k1.\(box.keyId).") && box.keyId.count == 8)
        let rotated = SecretBox(passphrase: "the new passphrase, also long enough", previous: ["one passphrase that is long enough"])
        #expect(try rotated.open(sealed) == "ik_secret")
        let resealed = try rotated.seal("ik_secret")
        #expect(resealed.hasPrefix("k1.\(rotated.keyId).") && rotated.keyId != box.keyId)
        #expect(throws: (any Error).self) { try box.open(resealed) }
        // Boxes from before key ids (bare base64) open with whichever key sealed them.
        let legacy = try AES.GCM.seal(Data("old".utf8), using: SymmetricKey(data: SHA256.hash(data: Data("one passphrase that is long enough".utf8))))
            .combined!.base64EncodedString()
        #expect(try rotated.open(legacy) == "old")
        // A box whose key id was changed is refused, not opened with another key.
        let forged = "k1.00000000." + sealed.split(separator: ".", maxSplits: 2)[2]
        #expect(throws: (any Error).self) { try box.open(forged) }
    }
}
