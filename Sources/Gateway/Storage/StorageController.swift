import Actors
import EventStore
import Foundation
import HTTPTypes
import Hummingbird

/// `/api/storage/...`: buckets and settings (admin), objects (any credential; row-level security on
/// `storage.objects` decides, and public buckets are readable without one), and the upload and
/// download strategies the SDKs call.
struct StorageController {
    let storage: StorageService
    let baseURL: String?
    /// Lifetime of presigned uploads.
    static let uploadLifetime = 3600
    /// Longest download link, and the default (7 days: S3's limit, and the seed's default).
    static let maxLinkLifetime = 604_800

    func register(_ routes: RouteTable) {
        registerBuckets(routes)
        let objects = "/api/storage/buckets/:bucket/objects"
        routes.add(.get, objects, "List objects (prefix, search, limit, offset)", access: .public) { request, context in
            try await list(request, context)
        }
        routes.add(.post, objects, "Upload with a generated key (multipart field 'file')", access: .anon) { request, context in
            try await upload(request, context, key: nil)
        }
        routes.add(.delete, objects, "Delete several objects: {keys}", access: .anon,
                   body: .object(["keys": .array(.string(minLength: 1), maxItems: 1000)], required: ["keys"])) { request, context in
            struct Body: Decodable { var keys: [String] }
            let identity = try writer(context)
            let body = try await request.decodeJSON(Body.self, context: context)
            guard (1...1000).contains(body.keys.count) else {
                throw APIError(.badRequest, "STORAGE_INVALID_PARAMETER", "keys must list 1 to 1000 keys")
            }
            let bucket = try Self.bucket(context)
            var result: (deleted: [String], notFound: [String]) = ([], [])
            var failed: [[String: String]] = []
            let valid = body.keys.filter { key in
                guard let problem = StorageNames.keyProblem(key) else { return true }
                failed.append(["key": key, "message": "Invalid key: \(problem)"])
                return false
            }
            if !valid.isEmpty { result = try await storage.delete(bucket, keys: valid, as: identity, metadata: context.eventMetadata) }
            struct Out: Encodable { var deleted: [String]; var notFound: [String]; var failed: [[String: String]] }
            return try .json(encoding: Out(deleted: result.deleted, notFound: result.notFound, failed: failed))
        }
        let object = objects + "/**"
        for method in [HTTPRequest.Method.get, .head] {
            routes.add(method, object, "Download an object (Range, If-None-Match; no credential on public buckets)", access: .public) { request, context in
                try await download(request, context)
            }
        }
        routes.add(.put, object, "Create or replace the object at a key (multipart field 'file', or the raw body)",
                   access: .anon) { request, context in
            try await upload(request, context, key: try Self.key(request, context))
        }
        routes.add(.post, object, "Upload to a key; or .../confirm-upload, .../download-strategy", access: .anon) { request, context in
            var key = try Self.key(request, context)
            if let action = ["confirm-upload", "download-strategy"].first(where: { key.hasSuffix("/" + $0) }) {
                key = String(key.dropLast(action.count + 1))
                try StorageService.checkKey(key)
                return action == "confirm-upload" ? try await confirm(request, context, key: key)
                    : try await downloadStrategy(request, context, key: key, expiresIn: try await Self.bodyExpiresIn(request, context))
            }
            return try await upload(request, context, key: key)
        }
        routes.add(.delete, object, "Delete an object", access: .anon) { request, context in
            let key = try Self.key(request, context)
            let (deleted, _) = try await storage.delete(try Self.bucket(context), keys: [key], as: try writer(context), metadata: context.eventMetadata)
            guard !deleted.isEmpty else { throw StorageService.objectNotFound(key) }
            return .json(#"{"message":"Object deleted successfully"}"#)
        }
        routes.add(.post, "/api/storage/buckets/:bucket/upload-strategy", "How to upload a file: {filename, contentType?, size?}",
                   access: .anon,
                   body: .object(["filename": .string(minLength: 1), "contentType": .text, "size": .integer(minimum: 0)], required: ["filename"])) { request, context in
            try await uploadStrategy(request, context)
        }
        routes.add(.get, "/api/storage/buckets/:bucket/download-strategy/objects/**", "How to download an object (expiresIn)",
                   access: .public) { request, context in
            var expiresIn: Int?
            if let text = request.uri.queryParameters["expiresIn"].map(String.init) {
                guard let value = Int(text) else { throw APIError(.badRequest, "STORAGE_INVALID_PARAMETER", "expiresIn must be a number of seconds") }
                expiresIn = value
            }
            return try await downloadStrategy(request, context, key: try Self.key(request, context), expiresIn: expiresIn)
        }
    }

    private func registerBuckets(_ routes: RouteTable) {
        routes.add(.get, "/api/storage/buckets", "List buckets", access: .admin) { _, context in
            return try .json(encoding: try await storage.buckets())
        }
        routes.add(.post, "/api/storage/buckets", "Create a bucket: {bucketName, isPublic}", access: .admin,
                   body: .object(["bucketName": .string(pattern: "^[a-zA-Z0-9_-]+$"), "isPublic": .boolean], required: ["bucketName"])) { request, context in
            struct Body: Decodable { var bucketName: String; var isPublic: Bool? }
            let body = try await request.decodeJSON(Body.self, context: context)
            let isPublic = body.isPublic ?? true
            try await storage.createBucket(body.bucketName, isPublic: isPublic, metadata: context.eventMetadata)
            struct Out: Encodable { var message: String; var bucketName: String; var isPublic: Bool; var nextActions: String }
            return try .json(encoding: Out(message: "Bucket created successfully", bucketName: body.bucketName, isPublic: isPublic,
                                           nextActions: "Upload files with PUT /api/storage/buckets/\(body.bucketName)/objects/<key>"),
                             status: .created)
        }
        routes.add(.patch, "/api/storage/buckets/:bucket", "Make a bucket public or private: {isPublic}", access: .admin,
                   body: .object(["isPublic": .boolean], required: ["isPublic"])) { request, context in
            struct Body: Decodable { var isPublic: Bool }
            let body = try await request.decodeJSON(Body.self, context: context)
            let bucket = try Self.bucket(context)
            try await storage.updateBucket(bucket, isPublic: body.isPublic, metadata: context.eventMetadata)
            struct Out: Encodable { var message: String; var bucket: String; var isPublic: Bool; var nextActions: String }
            return try .json(encoding: Out(message: "Bucket visibility updated", bucket: bucket, isPublic: body.isPublic,
                                           nextActions: body.isPublic ? "Objects can now be read without credentials"
                                               : "Objects now need a credential or a download link"))
        }
        routes.add(.delete, "/api/storage/buckets/:bucket", "Delete a bucket (with its objects: ?force=true)", access: .admin) { request, context in
            let force = ["true", "1", "yes"].contains(request.uri.queryParameters["force"].map { $0.lowercased() } ?? "")
            try await storage.deleteBucket(try Self.bucket(context), force: force, metadata: context.eventMetadata)
            return .json(#"{"message":"Bucket deleted successfully","nextActions":"Its objects are gone too"}"#)
        }
        routes.add(.get, "/api/storage/config", "Storage settings", access: .admin) { _, context in
            return try await config()
        }
        routes.add(.put, "/api/storage/config", "Change the size limit: {maxFileSizeMb} or {maxFileSize} (bytes)", access: .admin,
                   body: .object(["maxFileSizeMb": .integer(minimum: 1), "maxFileSize": .integer(minimum: 1)])) { request, context in
            struct Body: Decodable { var maxFileSizeMb: Int64?; var maxFileSize: Int64? }
            let body = try await request.decodeJSON(Body.self, context: context)
            guard let bytes = body.maxFileSize ?? body.maxFileSizeMb.map({ $0 << 20 }), (1...(1 << 40)).contains(bytes),
                  body.maxFileSizeMb.map({ (1...(1 << 20)).contains($0) }) ?? true
            else { throw APIError(.badRequest, "STORAGE_INVALID_PARAMETER", "maxFileSizeMb (1 to 1048576) or maxFileSize (bytes) is required") }
            try await storage.setMaxFileSize(bytes, metadata: context.eventMetadata)
            return try await config()
        }
    }

    private func config() async throws -> Response {
        let bytes = try await storage.maxFileSize()
        struct Out: Encodable { var maxFileSize: Int64; var maxFileSizeMb: Double; var provider: String }
        return try .json(encoding: Out(maxFileSize: bytes, maxFileSizeMb: Double(bytes) / 1_048_576, provider: storage.provider.name))
    }

    // MARK: identity

    /// The caller for reads: no credential reads as `anon` (public buckets only: a private one says 401).
    private func reader(_ context: AppRequestContext, bucket: String) async throws -> (DatabaseIdentity, isPublic: Bool) {
        try StorageService.checkBucket(bucket)
        guard let isPublic = try await storage.isPublic(bucket) else { throw StorageService.bucketNotFound(bucket) }
        if context.credential == .none && !isPublic { throw APIError.missingCredentials }
        return (DatabaseIdentity(context.credential), isPublic)
    }

    /// The caller for writes: a credential is required (the anon key is one; policies then decide).
    private func writer(_ context: AppRequestContext) throws -> DatabaseIdentity {
        if context.credential == .none { throw APIError.missingCredentials }
        return DatabaseIdentity(context.credential)
    }

    static func bucket(_ context: AppRequestContext) throws -> String {
        let bucket = context.parameters.get("bucket") ?? ""
        try StorageService.checkBucket(bucket)
        return bucket
    }

    /// The key after `objects/` in the path as sent (not as the router splits it, which would hide
    /// empty parts), percent-decoded (so `%2F` is a `/`), and checked.
    static func key(_ request: Request, _ context: AppRequestContext) throws -> String {
        let bucket = try Self.bucket(context)
        var rest = Substring(request.uri.path)
        for part in ["/api/storage/buckets/\(bucket)/", "download-strategy/", "objects/"] where rest.hasPrefix(part) {
            rest = rest.dropFirst(part.count)
        }
        guard let key = String(rest).removingPercentEncoding else {
            throw APIError(.badRequest, "STORAGE_INVALID_PARAMETER", "Invalid key: bad percent-encoding")
        }
        try StorageService.checkKey(key)
        return key
    }

    private func base(_ request: Request) -> String { StorageURLs.base(configured: baseURL, request: request) }

    // MARK: objects

    private func upload(_ request: Request, _ context: AppRequestContext, key: String?) async throws -> Response {
        let identity = try writer(context)
        let bucket = try Self.bucket(context)
        let (object, created) = try await storage.upload(bucket, key, from: request, as: identity, metadata: context.eventMetadata)
        return try .json(encoding: StorageFileBody(object, baseURL: base(request)),
                         status: request.method == .put && !created ? .ok : .created)
    }

    private func download(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let bucket = try Self.bucket(context)
        let key = try Self.key(request, context)
        let query = request.uri.queryParameters
        let isPublic: Bool
        let found: StorageService.Object?
        if let token = query["token"].map(String.init) {
            // A signed link: good for the version of the object it was made for, until it expires.
            found = try await storage.object(bucket, key, as: DatabaseIdentity(.admin))
            guard let expires = query["expires"].flatMap({ Int64($0) }), let version = found?.version,
                  storage.links.verify(bucket: bucket, key: key, version: version, expires: expires, token: token) else {
                throw APIError(.forbidden, "STORAGE_PERMISSION_DENIED", "The download link is invalid, has expired, or the object was replaced",
                               nextActions: "Ask for a new one with GET /api/storage/buckets/\(bucket)/download-strategy/objects/<key>")
            }
            isPublic = try await storage.isPublic(bucket) ?? false
        } else {
            let identity: DatabaseIdentity
            (identity, isPublic) = try await reader(context, bucket: bucket)
            found = try await storage.object(bucket, key, as: identity)
        }
        guard let object = found else { throw StorageService.objectNotFound(key) }
        let provider = storage.provider
        return try await ObjectDownload.response(for: object, request: request, isPublic: isPublic) { range in
            try await provider.read(object.blob, range: range)
        }
    }

    private func list(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let bucket = try Self.bucket(context)
        let (identity, _) = try await reader(context, bucket: bucket)
        let query = request.uri.queryParameters
        func number(_ name: String, _ fallback: Int, _ range: ClosedRange<Int>) throws -> Int {
            guard let text = query[name[...]] else { return fallback }
            guard let value = Int(text) else { throw APIError(.badRequest, "STORAGE_INVALID_PARAMETER", "\(name) must be a number") }
            return min(max(value, range.lowerBound), range.upperBound)
        }
        let limit = try number("limit", 100, 1...1000)
        let offset = try number("offset", 0, 0...Int(Int32.max))
        let prefix = query["prefix"].map(String.init)
        let search = query["search"].map(String.init)
        for text in [prefix, search].compactMap({ $0 }) where text.utf8.count > 1024 || text.contains("\u{0}") {
            throw APIError(.badRequest, "STORAGE_INVALID_PARAMETER", "prefix and search must be at most 1024 bytes, without NUL")
        }
        let (objects, total) = try await storage.list(bucket, prefix: prefix, search: search, limit: limit, offset: offset, as: identity)
        struct Page: Encodable { var offset: Int; var limit: Int; var total: Int64 }
        struct Out: Encodable { var data: [StorageFileBody]; var pagination: Page }
        let base = base(request)
        return try .json(encoding: Out(data: objects.map { StorageFileBody($0, baseURL: base) },
                                       pagination: Page(offset: offset, limit: limit, total: total)))
    }

    // MARK: strategies

    private func uploadStrategy(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        struct Body: Decodable { var filename: String; var contentType: String?; var size: Int64? }
        let identity = try writer(context)
        let bucket = try Self.bucket(context)
        let body = try await request.decodeJSON(Body.self, context: context)
        let key = body.filename
        let target = try await storage.prepareUpload(bucket, key, as: identity)
        if let size = body.size {
            guard size >= 0 else { throw APIError(.badRequest, "STORAGE_INVALID_PARAMETER", "size must not be negative") }
            if size > target.maxFileSize { throw UploadReceiver.tooLarge(target.maxFileSize) }
        }
        let base = base(request)
        let objectURL = StorageURLs.object(base: base, bucket: bucket, key: key)
        struct Out: Encodable {
            var method: String
            var uploadUrl: String
            var fields: [String: String]?
            var key: String
            var confirmRequired: Bool
            var confirmUrl: String?
            var expiresAt: Date?
        }
        let contentType = MimeType.normalized(body.contentType) ?? MimeType.byExtension(key) ?? MimeType.fallback
        let blob = BlobLocation(bucket: bucket, key: key, version: UUID())
        if let post = storage.provider.presignedPost(blob, contentType: contentType, maxSize: min(body.size ?? target.maxFileSize, target.maxFileSize),
                                                     expiresIn: Self.uploadLifetime) {
            return try .json(encoding: Out(method: "presigned", uploadUrl: post.url, fields: post.fields, key: key, confirmRequired: true,
                                           confirmUrl: objectURL + "/confirm-upload", expiresAt: post.expiresAt))
        }
        return try .json(encoding: Out(method: "direct", uploadUrl: objectURL, fields: nil, key: key, confirmRequired: false,
                                       confirmUrl: nil, expiresAt: nil))
    }

    /// Records an upload made straight to the provider (the presigned strategy).
    private func confirm(_ request: Request, _ context: AppRequestContext, key: String) async throws -> Response {
        struct Body: Decodable { var size: Int64?; var contentType: String?; var etag: String? }
        let identity = try writer(context)
        let bucket = try Self.bucket(context)
        let body = try await request.decodeJSON(Body.self, context: context)
        let target = try await storage.prepareUpload(bucket, key, as: identity)
        let base = base(request)
        guard let blob = try await storage.provider.pendingUploads(bucket: bucket, key: key).first(where: { $0.version != target.previous }),
              let info = try await storage.provider.info(blob) else {
            // Already confirmed (or uploaded through the API): the object as it is.
            if target.previous != nil, let object = try await storage.object(bucket, key, as: identity) {
                return try .json(encoding: StorageFileBody(object, baseURL: base))
            }
            throw APIError(.notFound, "STORAGE_NOT_FOUND", "Upload not found for key \(key)",
                           nextActions: "Upload the file to the uploadUrl of POST /api/storage/buckets/\(bucket)/upload-strategy first")
        }
        if info.size > target.maxFileSize {
            await storage.drop([blob])
            throw UploadReceiver.tooLarge(target.maxFileSize)
        }
        let head = try await storage.provider.head(blob, bytes: MimeType.sniffLength)
        let mimeType = MimeType.resolve(head: head, declared: info.contentType ?? body.contentType, fileName: StorageNames.fileName(of: key))
        let etag = info.etag ?? body.etag.map { "\"\($0.trimmingCharacters(in: CharacterSet(charactersIn: "\"")))\"" } ?? "\"\(blob.version.uuidString.lowercased())\""
        let object = try await storage.record(blob, size: info.size, mimeType: mimeType, etag: etag, uploadedBy: identity.userId,
                                              replacing: target.previous, metadata: context.eventMetadata)
        return try .json(encoding: StorageFileBody(object, baseURL: base), status: .created)
    }

    private static func bodyExpiresIn(_ request: Request, _ context: AppRequestContext) async throws -> Int? {
        struct Body: Decodable { var expiresIn: Int? }
        let buffer = try await request.body.collect(upTo: 64 * 1024)
        guard buffer.readableBytes > 0 else { return nil }
        do { return try JSONDecoder().decode(Body.self, from: Data(buffer.readableBytesView)).expiresIn } catch {
            throw APIError(.badRequest, "STORAGE_INVALID_PARAMETER", "The body must be {expiresIn?: seconds}")
        }
    }

    private func downloadStrategy(_ request: Request, _ context: AppRequestContext, key: String, expiresIn: Int?) async throws -> Response {
        let bucket = try Self.bucket(context)
        let (identity, isPublic) = try await reader(context, bucket: bucket)
        guard let object = try await storage.object(bucket, key, as: identity) else { throw StorageService.objectNotFound(key) }
        if let expiresIn, !(1...Self.maxLinkLifetime).contains(expiresIn) {
            throw APIError(.badRequest, "STORAGE_INVALID_PARAMETER", "expiresIn must be 1 to \(Self.maxLinkLifetime) seconds")
        }
        let lifetime = isPublic ? Self.maxLinkLifetime : expiresIn ?? Self.maxLinkLifetime
        let expiresAt = Date().addingTimeInterval(TimeInterval(lifetime))
        struct Out: Encodable { var method: String; var url: String; var expiresAt: Date? }
        var response: Response
        if let url = storage.provider.downloadURL(object.blob, fileName: StorageNames.fileName(of: key), expiresIn: lifetime) {
            response = try .json(encoding: Out(method: "presigned", url: url, expiresAt: expiresAt))
        } else {
            let url = StorageURLs.object(base: base(request), bucket: bucket, key: key)
            if isPublic {
                response = try .json(encoding: Out(method: "direct", url: url, expiresAt: nil))
            } else {
                let expires = Int64(expiresAt.timeIntervalSince1970)
                let token = storage.links.token(bucket: bucket, key: key, version: object.version, expires: expires)
                response = try .json(encoding: Out(method: "direct", url: "\(url)?expires=\(expires)&token=\(token)", expiresAt: expiresAt))
            }
        }
        response.headers[.cacheControl] = "no-store"
        return response
    }
}
