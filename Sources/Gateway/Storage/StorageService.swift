import Actors
import Crypto
import EventStore
import Foundation
import Hummingbird
import Logging
import PostgresNIO
import Projections

/// Storage commands and reads. Every change is an event on `bucket-<name>` (read back at once from
/// the inline `StorageProjection`); bytes go to the provider first, under a fresh version, and are
/// only referenced once the event is in the log. Access to objects is row-level security on
/// `storage.objects`, evaluated as the caller.
struct StorageService: Sendable {
    let store: EventStore
    let provider: any StorageProvider
    /// `MAX_FILE_SIZE`, until an admin sets another limit.
    let defaultMaxFileSize: Int64
    /// Signs time-limited download links for objects that go through the API.
    let links: DownloadLinks
    let logger: Logger

    var client: PostgresClient { store.client }

    static func stream(_ bucket: String) -> String { "bucket-\(bucket)" }

    // MARK: buckets

    struct Bucket: Encodable, Sendable {
        var name: String
        var `public`: Bool
        var createdAt: Date
    }

    func buckets() async throws -> [Bucket] {
        var out: [Bucket] = []
        for try await (name, isPublic, created) in try await client.query(
            "SELECT name, public, created_at FROM storage.buckets ORDER BY name", logger: logger).decode((String, Bool, Date).self) {
            out.append(Bucket(name: name, public: isPublic, createdAt: created))
        }
        return out
    }

    /// Whether bucket `name` is public; nil when there is no such bucket.
    func isPublic(_ name: String) async throws -> Bool? {
        for try await isPublic in try await client.query("SELECT public FROM storage.buckets WHERE name = \(name)", logger: logger)
            .decode(Bool.self) {
            return isPublic
        }
        return nil
    }

    func createBucket(_ name: String, isPublic: Bool, metadata: EventMetadata) async throws {
        try Self.checkBucket(name)
        if try await self.isPublic(name) != nil { throw Self.bucketExists(name) }
        do {
            try await store.append([try EventData(BucketCreated(bucket: name, isPublic: isPublic), metadata: metadata)],
                                   to: Self.stream(name), expected: .any)
        } catch where DomainError.isUniqueViolation(error) {
            throw Self.bucketExists(name)
        }
    }

    func updateBucket(_ name: String, isPublic: Bool, metadata: EventMetadata) async throws {
        try Self.checkBucket(name)
        guard try await self.isPublic(name) != nil else { throw Self.bucketNotFound(name) }
        try await store.append([try EventData(BucketUpdated(bucket: name, isPublic: isPublic), metadata: metadata)],
                               to: Self.stream(name), expected: .any)
    }

    /// Deletes a bucket; one with objects only when `force`, and then its bytes too.
    func deleteBucket(_ name: String, force: Bool, metadata: EventMetadata) async throws {
        try Self.checkBucket(name)
        guard try await self.isPublic(name) != nil else { throw Self.bucketNotFound(name) }
        var blobs: [BlobLocation] = []
        for try await (key, version) in try await client.query(
            "SELECT key, version FROM storage.objects WHERE bucket = \(name)", logger: logger).decode((String, UUID).self) {
            blobs.append(BlobLocation(bucket: name, key: key, version: version))
        }
        if !blobs.isEmpty && !force {
            throw DomainError(.storageBucketNotEmpty, "Bucket \(name) has \(blobs.count) object(s)",
                              nextActions: "Delete the objects first, or send DELETE /api/storage/buckets/\(name)?force=true")
        }
        try await store.append([try EventData(BucketDeleted(bucket: name, objectCount: blobs.count), metadata: metadata)],
                               to: Self.stream(name), expected: .any)
        await drop(blobs)
    }

    // MARK: settings

    /// The largest object accepted now, in bytes.
    func maxFileSize() async throws -> Int64 {
        for try await size in try await client.query("SELECT max_file_size FROM storage.settings WHERE id = 1", logger: logger)
            .decode(Int64.self) {
            return size
        }
        return defaultMaxFileSize
    }

    func setMaxFileSize(_ bytes: Int64, metadata: EventMetadata) async throws {
        try await store.append([try EventData(StorageConfigured(maxFileSize: bytes), metadata: metadata)], to: "storage-settings", expected: .any)
    }

    // MARK: objects

    /// An object's metadata as the API shows it.
    struct Object: Sendable {
        var bucket: String
        var key: String
        var version: UUID
        var size: Int64
        var mimeType: String
        var etag: String
        var uploadedBy: UUID?
        var uploadedAt: Date

        var blob: BlobLocation { BlobLocation(bucket: bucket, key: key, version: version) }
    }

    /// The object at `key` if `identity` may read it (nil: absent or hidden, which callers report alike).
    func object(_ bucket: String, _ key: String, as identity: DatabaseIdentity) async throws -> Object? {
        let rows = try await client.query("""
            SELECT version, size, mime_type, etag, uploaded_by, uploaded_at FROM storage.object_as(\(identity.role), \(identity.claims), \(bucket), \(key))
            """, logger: logger)
        for try await (version, size, mimeType, etag, uploadedBy, uploadedAt) in rows.decode((UUID, Int64, String, String, UUID?, Date).self) {
            return Object(bucket: bucket, key: key, version: version, size: size, mimeType: mimeType, etag: etag, uploadedBy: uploadedBy,
                          uploadedAt: uploadedAt)
        }
        return nil
    }

    /// A page of the objects in `bucket` that `identity` may read, and how many there are in all
    /// (the caller has found the bucket: an unknown one simply lists nothing).
    func list(_ bucket: String, prefix: String?, search: String?, limit: Int, offset: Int, as identity: DatabaseIdentity) async throws
        -> (objects: [Object], total: Int64) {
        var objects: [Object] = []
        var total: Int64 = 0
        let rows = try await client.query("""
            SELECT key, size, mime_type, etag, uploaded_by, uploaded_at, total
              FROM storage.list_as(\(identity.role), \(identity.claims), \(bucket), \(prefix), \(search), \(limit)::int, \(offset)::int)
            """, logger: logger)
        for try await (key, size, mimeType, etag, uploadedBy, uploadedAt, count)
            in rows.decode((String, Int64, String, String, UUID?, Date, Int64).self) {
            total = count
            objects.append(Object(bucket: bucket, key: key, version: UUID(), size: size, mimeType: mimeType, etag: etag,
                                  uploadedBy: uploadedBy, uploadedAt: uploadedAt))
        }
        if objects.isEmpty && offset > 0 {
            // Past the end: count separately so the pagination still says how many there are.
            for try await count in try await client.query("""
                SELECT count(*) FROM storage.list_as(\(identity.role), \(identity.claims), \(bucket), \(prefix), \(search), \(Int(Int32.max))::int, 0)
                """, logger: logger).decode(Int64.self) {
                total = count
            }
        }
        return (objects, total)
    }

    /// What an upload needs to know before it reads the body: the limit and the version it replaces.
    struct UploadTarget {
        var maxFileSize: Int64
        var previous: UUID?
    }

    /// Checks that `bucket` exists and that `identity` may write `key` there, before any byte is read.
    func prepareUpload(_ bucket: String, _ key: String, as identity: DatabaseIdentity) async throws -> UploadTarget {
        try Self.checkBucket(bucket)
        try Self.checkKey(key)
        let rows = try await client.execute(UploadCheck(defaultMaxFileSize: defaultMaxFileSize, bucket: bucket, key: key, identity: identity),
                                            logger: logger)
        for try await (limit, previous, allowed) in rows {
            guard allowed else {
                throw DomainError(.forbidden, "You may not write \(key) in bucket \(bucket)",
                                  nextActions: "Sign in as a user (the anon key cannot upload), or overwrite only your own objects")
            }
            return UploadTarget(maxFileSize: limit, previous: previous)
        }
        throw Self.bucketNotFound(bucket)
    }

    /// The check before an upload, prepared once per connection: it runs for every upload, and
    /// parsing and planning it each time cost more than running it.
    struct UploadCheck: PostgresPreparedStatement {
        static let name = "insforge_storage_upload_check"
        static let sql = """
            SELECT coalesce((SELECT max_file_size FROM storage.settings WHERE id = 1), $1::int8),
                   (SELECT version FROM storage.objects WHERE bucket = $2::text AND key = $3::text),
                   CASE WHEN $4::text IS NULL THEN true ELSE storage.may_write_as($4::text, $5::text, $2::text, $3::text, $6::uuid) END
              FROM storage.buckets WHERE name = $2::text
            """
        typealias Row = (Int64, UUID?, Bool)
        var defaultMaxFileSize: Int64
        var bucket: String
        var key: String
        var identity: DatabaseIdentity

        func makeBindings() throws -> PostgresBindings {
            .of(defaultMaxFileSize, bucket, key, identity.role, identity.claims, identity.userId)
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    /// Streams the request's file to the provider and records it. Without a key, one is made from
    /// the uploaded file's name (known once the body starts). Returns the object and whether the key is new.
    func upload(_ bucket: String, _ key: String?, from request: Request, as identity: DatabaseIdentity, metadata: EventMetadata) async throws
        -> (object: Object, created: Bool) {
        // A given key is checked before a byte is read; a generated one as soon as the file's name is known.
        var target: UploadTarget?
        if let key { target = try await prepareUpload(bucket, key, as: identity) }
        var limit = target?.maxFileSize ?? 0
        if target == nil { limit = try await uploadLimit(bucket) }
        var blob: BlobLocation?
        let received = try await UploadReceiver(limit: limit, key: key).receive(request) { contentType, fileName, size in
            let key = key ?? StorageNames.generatedKey(fileName: fileName)
            if target == nil { target = try await prepareUpload(bucket, key, as: identity) }
            let location = BlobLocation(bucket: bucket, key: key, version: UUID())
            blob = location
            return try await provider.writer(for: location, contentType: contentType, size: size)
        }
        guard let blob, let target else { throw StorageProviderError(message: "upload ended without a file") }
        let object = try await record(blob, size: received.size, mimeType: received.mimeType, etag: received.etag,
                                      uploadedBy: identity.userId, replacing: target.previous, metadata: metadata)
        return (object, target.previous == nil)
    }

    /// The size limit for uploads to `bucket` (404 when there is no such bucket).
    func uploadLimit(_ bucket: String) async throws -> Int64 {
        try Self.checkBucket(bucket)
        for try await limit in try await client.query("""
            SELECT coalesce((SELECT max_file_size FROM storage.settings WHERE id = 1), \(defaultMaxFileSize)) FROM storage.buckets WHERE name = \(bucket)
            """, logger: logger).decode(Int64.self) {
            return limit
        }
        throw Self.bucketNotFound(bucket)
    }

    /// Appends `ObjectUploaded` for bytes already stored at `blob`, then drops the bytes it replaced.
    /// If the event cannot be appended, the new bytes are dropped instead.
    func record(_ blob: BlobLocation, size: Int64, mimeType: String, etag: String, uploadedBy: UUID?, replacing previous: UUID?,
                metadata: EventMetadata) async throws -> Object {
        // The event cuts the time to the log's millisecond; the response uses its value, so it and
        // the read model agree.
        let event = ObjectUploaded(bucket: blob.bucket, key: blob.key, version: blob.version, size: size, mimeType: mimeType, etag: etag,
                                   uploadedBy: uploadedBy, uploadedAt: Date())
        do {
            try await store.append([try EventData(event, metadata: metadata)], to: Self.stream(blob.bucket), expected: .any)
        } catch {
            await drop([blob])
            if case .bucketMissing? = (error as? EventStoreError)?.underlying as? StorageProjectionError {
                throw Self.bucketNotFound(blob.bucket)
            }
            throw error
        }
        if let previous, previous != blob.version {
            await drop([BlobLocation(bucket: blob.bucket, key: blob.key, version: previous)])
        }
        return Object(bucket: blob.bucket, key: blob.key, version: blob.version, size: size, mimeType: mimeType, etag: etag,
                      uploadedBy: uploadedBy, uploadedAt: event.uploadedAt ?? Date())
    }

    /// Deletes the keys `identity` may delete; returns which were deleted and which were not found (or hidden).
    func delete(_ bucket: String, keys: [String], as identity: DatabaseIdentity, metadata: EventMetadata) async throws
        -> (deleted: [String], notFound: [String]) {
        try Self.checkBucket(bucket)
        for key in keys { try Self.checkKey(key) }
        guard try await isPublic(bucket) != nil else { throw Self.bucketNotFound(bucket) }
        var versions: [String: UUID] = [:]
        for try await (key, version) in try await client.query(
            "SELECT key, version FROM storage.objects WHERE bucket = \(bucket) AND key = ANY(\(keys))", logger: logger).decode((String, UUID).self) {
            versions[key] = version
        }
        var allowed = Set(versions.keys)
        if !identity.isAdmin && !allowed.isEmpty {
            for try await keys in try await client.query(
                "SELECT storage.deletable_as(\(identity.role), \(identity.claims), \(bucket), \(Array(allowed)))", logger: logger)
                .decode([String].self) {
                allowed = Set(keys)
            }
        }
        let deleted = keys.filter { allowed.contains($0) }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let blobs = deleted.compactMap { key in versions[key].map { BlobLocation(bucket: bucket, key: key, version: $0) } }
        if !blobs.isEmpty {
            try await store.append(try blobs.map { try EventData(ObjectDeleted(bucket: bucket, key: $0.key, version: $0.version), metadata: metadata) },
                                   to: Self.stream(bucket), expected: .any)
            await drop(blobs)
        }
        return (deleted, keys.filter { !allowed.contains($0) })
    }

    /// Removes bytes no metadata points at any more; a failure leaves them to the orphan sweep.
    func drop(_ blobs: [BlobLocation]) async {
        guard !blobs.isEmpty else { return }
        do { try await provider.delete(blobs) } catch {
            logger.warning("could not remove stored bytes; the orphan sweep will", metadata: ["count": "\(blobs.count)", "error": "\(error)"])
        }
    }

    // MARK: rules and errors

    static func checkBucket(_ name: String) throws {
        if let problem = StorageNames.bucketProblem(name) { throw DomainError(.storageInvalidParameter, "Invalid bucket name: \(problem)") }
    }

    static func checkKey(_ key: String) throws {
        if let problem = StorageNames.keyProblem(key) { throw DomainError(.storageInvalidParameter, "Invalid key: \(problem)") }
    }

    static func bucketNotFound(_ name: String) -> DomainError {
        DomainError(.storageNotFound, "Bucket \(name) does not exist", nextActions: "Create it with POST /api/storage/buckets")
    }

    static func bucketExists(_ name: String) -> DomainError {
        DomainError(.storageAlreadyExists, "Bucket \(name) already exists")
    }

    static func objectNotFound(_ key: String) -> DomainError {
        DomainError(.storageNotFound, "Object not found: \(key)")
    }
}

/// Time-limited links to objects served by the API, for callers that send no credential (the
/// Swift SDK downloads this way): `?expires=<unix seconds>&token=<HMAC-SHA256 of bucket, key and expiry>`.
struct DownloadLinks: Sendable {
    private let key: SymmetricKey

    init(secret: String) {
        key = SymmetricKey(data: SHA256.hash(data: Data("insforge storage download links\n\(secret)".utf8)))
    }

    /// The link's token: a MAC of the bucket, key, the object's version and the expiry, so replacing the
    /// object revokes every link to the bytes it had.
    func token(bucket: String, key objectKey: String, version: UUID, expires: Int64) -> String {
        let text = "\(bucket)\n\(objectKey)\n\(version.uuidString.lowercased())\n\(expires)"
        let mac = HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: key)
        return Data(mac).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Whether `token` is a valid, unexpired link for this version of the object (compared in constant time).
    func verify(bucket: String, key objectKey: String, version: UUID, expires: Int64, token: String, now: Date = Date()) -> Bool {
        guard Int64(now.timeIntervalSince1970) <= expires else { return false }
        return AuthCodes.constantTimeEqual(self.token(bucket: bucket, key: objectKey, version: version, expires: expires), token)
    }
}
