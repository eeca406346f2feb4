import Actors
import _CryptoExtras
import Crypto
import EventStore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO
import Projections
import Testing
import TestSupport

@testable import Gateway

@Suite struct StorageRulesTests {
    @Test func bucketNames() {
        for good in ["a", "pics", "User_Files-2", String(repeating: "x", count: 63)] { #expect(StorageNames.bucketProblem(good) == nil, "\(good)") }
        for bad in ["", "a b", "a/b", "a.b", "é", String(repeating: "x", count: 64), "..", "a%2F"] {
            #expect(StorageNames.bucketProblem(bad) != nil, "\(bad)")
        }
    }

    @Test func keys() {
        for good in ["a", "a/b/c.txt", "résumé 2024 (final).pdf", "a..b", ".hidden", "x/.y", String(repeating: "k", count: 200), "a@b"] {
            #expect(StorageNames.keyProblem(good) == nil, "\(good)")
        }
        let bad = ["", "/a", "a/../b", "..", "../x", "a/..", "a//b", "a/./b", ".", "a/", "nul\u{0}", "tab\t", "del\u{7F}", "back\\slash",
                   String(repeating: "k", count: 201), String(repeating: "k/", count: 600)]
        for key in bad { #expect(StorageNames.keyProblem(key) != nil, "\(key.debugDescription)") }
    }

    @Test func generatedKeysFollowInsForgesPattern() throws {
        let key = StorageNames.generatedKey(fileName: "My Photo (1).PNG")
        #expect(key.wholeMatch(of: /My-Photo--1--\d{13}-[a-z0-9]{6}\.PNG/) != nil, "\(key)")
        #expect(StorageNames.generatedKey(fileName: nil).hasPrefix("file-"))
        #expect(StorageNames.generatedKey(fileName: "../../etc/passwd").wholeMatch(of: /passwd-\d{13}-[a-z0-9]{6}/) != nil)
        #expect(StorageNames.generatedKey(fileName: ".env").wholeMatch(of: /-env-\d{13}-[a-z0-9]{6}|file-\d{13}-[a-z0-9]{6}\.env/) != nil
            || StorageNames.keyProblem(StorageNames.generatedKey(fileName: ".env")) == nil)
        #expect(StorageNames.generatedKey(fileName: "a") != StorageNames.generatedKey(fileName: "a"))
        #expect(StorageNames.keyProblem(StorageNames.generatedKey(fileName: String(repeating: "é", count: 300) + ".txt")) == nil)
    }

    @Test func blobPathsRoundTrip() throws {
        let version = UUID()
        let blob = BlobLocation(bucket: "b", key: "a/b/c.txt", version: version)
        #expect(blob.path == "b/a/b/c.txt/\(version.uuidString.lowercased())")
        #expect(BlobLocation(path: blob.path) == blob)
        #expect(BlobLocation(path: "b/x") == nil)
        #expect(BlobLocation(path: "b/x/not-a-uuid") == nil)
        #expect(LocalStorageProvider.relativePath(blob) == "b/a/b/c.txt@\(version.uuidString.lowercased())")
        #expect(LocalStorageProvider.blob(atRelativePath: LocalStorageProvider.relativePath(blob)) == blob)
        let odd = BlobLocation(bucket: "b", key: "x@y/z@w", version: version)
        #expect(LocalStorageProvider.blob(atRelativePath: LocalStorageProvider.relativePath(odd)) == odd)
        #expect(LocalStorageProvider.blob(atRelativePath: "b/k@nope") == nil)
        #expect(LocalStorageProvider.blob(atRelativePath: "b@\(version)") == nil)
    }
}

@Suite struct MimeTypeTests {
    @Test func magicBytesWinOverTheDeclaredTypeAndTheName() {
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0]
        #expect(MimeType.resolve(head: png, declared: "text/plain", fileName: "x.txt") == "image/png")
        #expect(MimeType.resolve(head: Array("%PDF-1.4".utf8), declared: nil, fileName: "x") == "application/pdf")
        #expect(MimeType.resolve(head: [0xFF, 0xD8, 0xFF, 0xE0], declared: nil, fileName: "x") == "image/jpeg")
        #expect(MimeType.resolve(head: Array("GIF89a..".utf8), declared: nil, fileName: "x") == "image/gif")
        #expect(MimeType.resolve(head: Array("PK\u{3}\u{4}xx".utf8), declared: nil, fileName: "x.docx") == "application/zip")
        #expect(MimeType.resolve(head: Array("RIFF\0\0\0\0WEBPVP8 ".utf8), declared: nil, fileName: "x") == "image/webp")
        #expect(MimeType.resolve(head: Array("\0\0\0\u{18}ftypmp42".utf8), declared: nil, fileName: "x") == "video/mp4")
    }

    @Test func markupIsRecognisedSoItCanBeServedSafely() {
        #expect(MimeType.sniff(Array("  <!DOCTYPE html><p>".utf8)) == "text/html")
        #expect(MimeType.sniff(Array("\u{FEFF}<html>".utf8)) == "text/html")
        #expect(MimeType.sniff(Array("<svg xmlns='http://www.w3.org/2000/svg'/>".utf8)) == "image/svg+xml")
        #expect(MimeType.sniff(Array("<?xml version='1.0'?><svg/>".utf8)) == "image/svg+xml")
        #expect(MimeType.sniff(Array("<?xml version='1.0'?><feed/>".utf8)) == "application/xml")
        #expect(MimeType.sniff(Array("just text".utf8)) == nil)
        for active in ["text/html", "image/svg+xml", "text/javascript", "application/javascript", "application/xhtml+xml", "text/xml"] {
            #expect(MimeType.isActive(active), "\(active)")
        }
        for passive in ["image/png", "text/plain", "application/pdf", "application/json", "text/css", "application/rss+xml"] {
            #expect(!MimeType.isActive(passive), "\(passive)")
        }
    }

    @Test func declaredTypesAreNormalisedAndExtensionsAreTheLastResort() {
        #expect(MimeType.normalized("Text/Plain; charset=utf-8") == "text/plain")
        #expect(MimeType.normalized("nonsense") == nil)
        #expect(MimeType.normalized("text/<script>") == nil)
        #expect(MimeType.normalized("") == nil)
        #expect(MimeType.resolve(head: Array("x = 1".utf8), declared: nil, fileName: "app.JS") == "text/javascript")
        #expect(MimeType.resolve(head: Array("x".utf8), declared: "application/octet-stream", fileName: "a.csv") == "text/csv")
        #expect(MimeType.resolve(head: Array("x".utf8), declared: nil, fileName: "noext") == "application/octet-stream")
        #expect(MimeType.resolve(head: [UInt8](), declared: "application/json", fileName: "a.txt") == "application/json")
    }
}

@Suite struct ObjectDownloadTests {
    @Test func ranges() {
        typealias R = ObjectDownload.RangeRequest
        let cases: [(String?, R)] = [
            (nil, .whole), ("bytes=0-4", .part(0...4)), ("bytes=10-", .part(10...15)), ("bytes=-3", .part(13...15)),
            ("bytes=-100", .part(0...15)), ("bytes=5-1000", .part(5...15)), (" bytes= 1-2 ", .part(1...2)), ("bytes =1-2", .whole),
            ("bytes=16-", .unsatisfiable), ("bytes=-0", .unsatisfiable), ("bytes=5-2", .whole), ("items=0-1", .whole),
            ("bytes=0-1,3-4", .whole), ("bytes=a-b", .whole), ("bytes=-", .whole), ("bytes=--1", .whole),
        ]
        for (header, expected) in cases { #expect(ObjectDownload.range(header, size: 16) == expected, "\(header ?? "nil")") }
        #expect(ObjectDownload.range("bytes=0-", size: 0) == .unsatisfiable)
        #expect(ObjectDownload.range("bytes=-5", size: 0) == .unsatisfiable)
    }

    @Test func entityTags() {
        let etag = "\"abc\""
        #expect(ObjectDownload.notModified("\"abc\"", etag: etag))
        #expect(ObjectDownload.notModified("W/\"abc\"", etag: etag))
        #expect(ObjectDownload.notModified("\"x\", \"abc\"", etag: etag))
        #expect(ObjectDownload.notModified("*", etag: etag))
        #expect(!ObjectDownload.notModified("\"abcd\"", etag: etag))
        #expect(!ObjectDownload.notModified(nil, etag: etag))
    }

    @Test func dispositionsQuoteSafelyAndMakeActiveContentAnAttachment() {
        #expect(ObjectDownload.disposition(fileName: "a.png", mimeType: "image/png") == "inline; filename=\"a.png\"; filename*=UTF-8''a.png")
        let html = ObjectDownload.disposition(fileName: "x\"y;z.html", mimeType: "text/html")
        #expect(html.hasPrefix("attachment; filename=\"x_y;z.html\"; filename*=UTF-8''x%22y%3Bz.html"))
        #expect(ObjectDownload.disposition(fileName: "é.txt", mimeType: "text/plain").contains("filename*=UTF-8''%C3%A9.txt"))
    }

    @Test func urlsEncodeKeysAsOneComponent() {
        #expect(StorageURLs.object(base: "http://h", bucket: "b", key: "a/b c/ü.txt") == "http://h/api/storage/buckets/b/objects/a%2Fb%20c%2F%C3%BC.txt")
        #expect(StorageURLs.component("it's (ok)!~*") == "it's%20(ok)!~*")
    }

    @Test func downloadLinksBindBucketKeyVersionAndExpiry() {
        let links = DownloadLinks(secret: String(repeating: "s", count: 40))
        let now = Date()
        let expires = Int64(now.timeIntervalSince1970) + 60
        let version = UUID()
        let token = links.token(bucket: "b", key: "k", version: version, expires: expires)
        #expect(links.verify(bucket: "b", key: "k", version: version, expires: expires, token: token, now: now))
        #expect(!links.verify(bucket: "b", key: "k2", version: version, expires: expires, token: token, now: now))
        #expect(!links.verify(bucket: "c", key: "k", version: version, expires: expires, token: token, now: now))
        #expect(!links.verify(bucket: "b", key: "k", version: UUID(), expires: expires, token: token, now: now))  // replaced
        #expect(!links.verify(bucket: "b", key: "k", version: version, expires: expires + 1, token: token, now: now))
        #expect(!links.verify(bucket: "b", key: "k", version: version, expires: expires, token: token, now: now.addingTimeInterval(61)))
        #expect(!links.verify(bucket: "b", key: "k", version: version, expires: expires, token: token + "x", now: now))
        let other = DownloadLinks(secret: String(repeating: "t", count: 40))
        #expect(!other.verify(bucket: "b", key: "k", version: version, expires: expires, token: token, now: now))
        #expect(!token.contains("+") && !token.contains("/") && !token.contains("="))
    }

    @Test func multipartHeaders() {
        #expect(UploadReceiver.boundary(of: "multipart/form-data; boundary=----abc") == "----abc")
        #expect(UploadReceiver.boundary(of: "multipart/form-data; charset=utf-8; boundary=\"q r\"") == "q r")
        #expect(UploadReceiver.boundary(of: "multipart/form-data") == nil)
        #expect(UploadReceiver.boundary(of: "multipart/form-data; boundary=") == nil)
        let p = UploadReceiver.dispositionParameters("form-data; name=\"file\"; filename=\"a b.png\"")
        #expect(p["name"] == "file" && p["filename"] == "a b.png")
        #expect(UploadReceiver.tooLarge(10 << 20).message.contains("10 MB"))
        #expect(UploadReceiver.tooLarge(1000).status == .contentTooLarge)
    }
}

@Suite struct CloudFrontSignerTests {
    @Test func cannedPolicyURLsVerifyWithThePublicKey() throws {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let signer = try CloudFrontSigner(settings: .init(url: "https://d111.cloudfront.net", keyPairId: "K2JCJMDEHXQW5F",
                                                          privateKeyPEM: key.pemRepresentation))
        let expires = Date(timeIntervalSince1970: 1_800_000_000)
        let url = try #require(signer.signedURL("https://d111.cloudfront.net/b/a%20b.png/v", expires: expires))
        let query = try #require(URLComponents(string: url)?.queryItems)
        let fields = Dictionary(uniqueKeysWithValues: query.map { ($0.name, $0.value ?? "") })
        #expect(fields["Expires"] == "1800000000" && fields["Key-Pair-Id"] == "K2JCJMDEHXQW5F")
        let encoded = try #require(fields["Signature"])
        #expect(!encoded.contains("+") && !encoded.contains("/") && !encoded.contains("="))
        let base64 = encoded.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "=").replacingOccurrences(of: "~", with: "/")
        let signature = _RSA.Signing.RSASignature(rawRepresentation: try #require(Data(base64Encoded: base64)))
        let policy = #"{"Statement":[{"Resource":"https://d111.cloudfront.net/b/a%20b.png/v","Condition":{"DateLessThan":{"AWS:EpochTime":1800000000}}}]}"#
        #expect(CloudFrontSigner.cannedPolicy(url: "https://d111.cloudfront.net/b/a%20b.png/v", expires: 1_800_000_000) == policy)
        #expect(key.publicKey.isValidSignature(signature, for: Insecure.SHA1.hash(data: Data(policy.utf8)), padding: .insecurePKCS1v1_5))
        #expect(!key.publicKey.isValidSignature(signature, for: Insecure.SHA1.hash(data: Data((policy + " ").utf8)), padding: .insecurePKCS1v1_5))
        #expect(throws: (any Error).self) {
            try CloudFrontSigner(settings: .init(url: "https://x", keyPairId: "K", privateKeyPEM: "-----BEGIN NOTHING-----"))
        }
    }
}

/// The storage read model and its SQL, on a real database: the projection, the policies evaluated as
/// each caller, and the orphan sweep over a real folder.
@Suite(.serialized) struct StorageDatabaseTests {
    static let alice = UUID()
    static let bob = UUID()

    static func identity(_ user: UUID?) -> DatabaseIdentity {
        guard let user else { return DatabaseIdentity(.anon) }
        return DatabaseIdentity(.token(TokenSubject(id: user.uuidString.lowercased(), email: "u@example.com", role: "authenticated")))
    }

    static func service(_ store: EventStore, root: String) throws -> StorageService {
        StorageService(store: store, provider: try LocalStorageProvider(root: root), defaultMaxFileSize: 1 << 20,
                       links: DownloadLinks(secret: String(repeating: "k", count: 32)), logger: TestDatabase.logger)
    }

    static func upload(_ storage: StorageService, _ bucket: String, _ key: String, _ text: String, by user: UUID?) async throws
        -> StorageService.Object {
        let blob = BlobLocation(bucket: bucket, key: key, version: UUID())
        let writer = try await storage.provider.writer(for: blob, contentType: "text/plain", size: nil)
        try await writer.write(ByteBuffer(string: text))
        try await writer.commit()
        let previous = try await storage.prepareUpload(bucket, key, as: DatabaseIdentity(.admin)).previous
        return try await storage.record(blob, size: Int64(text.utf8.count), mimeType: "text/plain", etag: "\"e\"", uploadedBy: user,
                                        replacing: previous, metadata: EventMetadata())
    }

    @Test func policiesDecideAsTheCaller() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try await withEventStore(inline: [StorageProjection()]) { store, _ in
            let storage = try Self.service(store, root: root)
            try await storage.createBucket("priv", isPublic: false, metadata: EventMetadata())
            try await storage.createBucket("pub", isPublic: true, metadata: EventMetadata())
            let taken = await #expect(throws: DomainError.self) { try await storage.createBucket("priv", isPublic: true, metadata: EventMetadata()) }
            #expect(taken?.code == .storageAlreadyExists)
            _ = try await Self.upload(storage, "priv", "a/notes.txt", "alice", by: Self.alice)
            _ = try await Self.upload(storage, "pub", "open.txt", "open", by: nil)

            let alice = Self.identity(Self.alice), bob = Self.identity(Self.bob), anon = Self.identity(nil)
            #expect(try await storage.object("priv", "a/notes.txt", as: alice) != nil)
            #expect(try await storage.object("priv", "a/notes.txt", as: bob) == nil)
            #expect(try await storage.object("priv", "a/notes.txt", as: anon) == nil)
            #expect(try await storage.object("pub", "open.txt", as: anon) != nil)
            #expect(try await storage.list("priv", prefix: nil, search: nil, limit: 10, offset: 0, as: bob).total == 0)
            #expect(try await storage.list("priv", prefix: "a/", search: nil, limit: 10, offset: 0, as: alice).total == 1)

            _ = try await storage.prepareUpload("priv", "a/notes.txt", as: alice)
            let notBobs = await #expect(throws: DomainError.self) { try await storage.prepareUpload("priv", "a/notes.txt", as: bob) }
            let notAnons = await #expect(throws: DomainError.self) { try await storage.prepareUpload("priv", "new.txt", as: anon) }
            #expect(notBobs?.code == .forbidden && notAnons?.code == .forbidden)
            _ = try await storage.prepareUpload("priv", "new.txt", as: bob)
            // The probe leaves nothing behind.
            #expect(try await storage.object("priv", "new.txt", as: DatabaseIdentity(.admin)) == nil)

            let byBob = try await storage.delete("priv", keys: ["a/notes.txt"], as: bob, metadata: EventMetadata())
            #expect(byBob.deleted.isEmpty && byBob.notFound == ["a/notes.txt"])
            let byAlice = try await storage.delete("priv", keys: ["a/notes.txt", "none"], as: alice, metadata: EventMetadata())
            #expect(byAlice.deleted == ["a/notes.txt"] && byAlice.notFound == ["none"])
            #expect(try await storage.provider.blobs(writtenBefore: Date().addingTimeInterval(60)).map(\.bucket) == ["pub"])
            #expect(!FileManager.default.fileExists(atPath: root + "/priv/a"))  // emptied folders are pruned
        }
    }

    @Test func uploadsToADeletedBucketFailAndLeaveNoBytes() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try await withEventStore(inline: [StorageProjection()]) { store, _ in
            let storage = try Self.service(store, root: root)
            try await storage.createBucket("gone", isPublic: false, metadata: EventMetadata())
            let blob = BlobLocation(bucket: "gone", key: "late.txt", version: UUID())
            let writer = try await storage.provider.writer(for: blob, contentType: "text/plain", size: nil)
            try await writer.write(ByteBuffer(string: "late"))
            try await writer.commit()
            try await storage.deleteBucket("gone", force: false, metadata: EventMetadata())
            let gone = await #expect(throws: DomainError.self) {
                _ = try await storage.record(blob, size: 4, mimeType: "text/plain", etag: "\"e\"", uploadedBy: nil, replacing: nil,
                                             metadata: EventMetadata())
            }
            #expect(gone?.code == .storageNotFound)
            #expect(try await storage.provider.blobs(writtenBefore: Date().addingTimeInterval(60)).isEmpty)
        }
    }

    @Test func uploadsInOneAppendGoInTogetherAndTheLastOfAKeyWins() async throws {
        try await withEventStore(inline: [StorageProjection()]) { store, _ in
            let client = store.client
            try await store.append([try EventData(BucketCreated(bucket: "b", isPublic: false))], to: "bucket-b", expected: .any)
            let versions = (0..<4).map { _ in UUID() }
            let uploads = try versions.enumerated().map { i, v in
                try EventData(ObjectUploaded(bucket: "b", key: i < 2 ? "same" : "k\(i)", version: v, size: Int64(i), mimeType: "text/plain",
                                             etag: "\"\(i)\"", uploadedBy: i == 3 ? Self.alice : nil, uploadedAt: nil))
            }
            try await store.append(uploads, to: "bucket-b", expected: .any)
            var rows: [String: (UUID, Int64, UUID?)] = [:]
            for try await (key, version, size, by) in try await client.query(
                "SELECT key, version, size, uploaded_by FROM storage.objects ORDER BY key").decode((String, UUID, Int64, UUID?).self) {
                rows[key] = (version, size, by)
            }
            #expect(rows.count == 3)
            #expect(rows["same"]?.0 == versions[1] && rows["same"]?.1 == 1)
            #expect(rows["k3"]?.2 == Self.alice && rows["k2"]?.2 == nil)
            // An upload to a bucket that does not exist fails (alone) and stores nothing.
            await #expect(throws: (any Error).self) {
                try await store.append([try EventData(ObjectUploaded(bucket: "nope", key: "x", version: UUID(), size: 1, mimeType: "a/b",
                                                                     etag: "\"e\"", uploadedBy: nil, uploadedAt: nil))],
                                       to: "bucket-nope", expected: .any)
            }
            #expect(try await scalar(client, "SELECT count(*) FROM storage.objects", as: Int64.self) == 3)
        }
    }

    @Test func theSweepRemovesOnlyUnreferencedBytesPastTheGrace() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try await withEventStore(inline: [StorageProjection()]) { store, _ in
            let storage = try Self.service(store, root: root)
            try await storage.createBucket("b", isPublic: false, metadata: EventMetadata())
            let live = try await Self.upload(storage, "b", "k.txt", "live", by: nil)
            let stray = BlobLocation(bucket: "b", key: "k.txt", version: UUID())
            let writer = try await storage.provider.writer(for: stray, contentType: "text/plain", size: nil)
            try await writer.write(ByteBuffer(string: "stray"))
            try await writer.commit()
            let sweeper = OrphanSweeper(blobs: storage.provider, client: storage.client, grace: .seconds(3600), interval: .seconds(60),
                                        logger: storage.logger)
            #expect(try await sweeper.sweepOnce() == 0)  // too young
            #expect(try await sweeper.sweepOnce(now: Date().addingTimeInterval(7200)) == 1)
            let left = try await storage.provider.blobs(writtenBefore: Date().addingTimeInterval(60))
            #expect(left == [live.blob])
            // An aborted write leaves nothing at all.
            let aborted = try await storage.provider.writer(for: BlobLocation(bucket: "b", key: "x", version: UUID()), contentType: "a/b", size: nil)
            try await aborted.write(ByteBuffer(repeating: 1, count: 3 << 20))
            await aborted.abort()
            #expect(try await storage.provider.blobs(writtenBefore: Date().addingTimeInterval(60)) == [live.blob])
        }
    }
}

@Suite struct StreamedBodyTests {
    @Test func buffersArriveInOrderAndTheSenderWaitsWhenTheQueueIsFull() async throws {
        let body = StreamedBody(limit: 2)
        let sent = NIOLockedValueBox(0)
        let producer = Task {
            for i in 0..<50 {
                try await body.send(ByteBuffer(string: "\(i),"))
                sent.withLockedValue { $0 += 1 }
            }
            body.finish()
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(sent.withLockedValue { $0 } <= 2)  // nobody reads yet: the sender is held
        var text = ""
        for try await buffer in body { text += String(buffer: buffer) }
        try await producer.value
        #expect(text == (0..<50).map { "\($0)," }.joined())
    }

    @Test func failingEndsBothSides() async throws {
        struct Boom: Error {}
        let body = StreamedBody(limit: 1)
        try await body.send(ByteBuffer(string: "a"))
        let blocked = Task { try await body.send(ByteBuffer(string: "b")) }
        try await Task.sleep(for: .milliseconds(20))
        body.fail(Boom())
        await #expect(throws: Boom.self) { try await blocked.value }
        await #expect(throws: Boom.self) { for try await _ in body {} }
        await #expect(throws: Boom.self) { try await body.send(ByteBuffer(string: "c")) }
    }
}
