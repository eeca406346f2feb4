import Actors
import AsyncHTTPClient
import EventStore
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

/// Objects in an S3 bucket (AWS, or any S3-compatible service at `AWS_ENDPOINT_URL`, addressed
/// path-style), under `[<prefix>/]<bucket>/<key>/<version>`. Requests are signed with SigV4
/// (`AWSSigner`); uploads stream as a multipart upload of 8 MiB parts (one part in memory, one in
/// flight), or one PUT when smaller; downloads stream the response body.
struct S3StorageProvider: StorageProvider {
    let settings: ServerConfiguration.S3Settings
    let signer: AWSSigner
    let endpoint: String
    let cloudFront: CloudFrontSigner?
    let logger: Logger
    var http: HTTPClient { Self.client }

    /// One client for the process (never shut down), with room for many concurrent transfers.
    static let client = HTTPClient(
        eventLoopGroupProvider: .singleton,
        configuration: .init(timeout: .init(connect: .seconds(30), read: .seconds(60)),
                             connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)))
    /// Part size of multipart uploads (S3's minimum is 5 MiB).
    static let partSize = 8 << 20

    init(settings: ServerConfiguration.S3Settings, logger: Logger) throws {
        self.settings = settings
        self.signer = AWSSigner(accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey,
                                sessionToken: settings.sessionToken, region: settings.region)
        self.endpoint = settings.endpoint ?? "https://s3.\(settings.region).amazonaws.com"
        self.cloudFront = try settings.cloudFront.map { try CloudFrontSigner(settings: $0) }
        self.logger = logger
    }

    var name: String { "s3" }

    // MARK: addressing

    /// The S3 key of a provider-relative path.
    func objectKey(_ path: String) -> String { settings.prefix.isEmpty ? path : settings.prefix + "/" + path }

    /// The path-style URL of an S3 key, with an optional (already encoded) query.
    func url(key: String?, query: String = "") throws(StorageProviderError) -> URL {
        var text = endpoint + "/" + AWSSigner.uriEncode(settings.bucket, encodeSlash: true)
        if let key { text += "/" + AWSSigner.uriEncode(key, encodeSlash: false) } else { text += "/" }
        if !query.isEmpty { text += "?" + query }
        guard let url = URL(string: text) else { throw StorageProviderError(message: "the S3 endpoint and key make no valid URL") }
        return url
    }

    static func query(_ pairs: [(String, String)]) -> String {
        pairs.map { AWSSigner.uriEncode($0.0, encodeSlash: true) + "=" + AWSSigner.uriEncode($0.1, encodeSlash: true) }.joined(separator: "&")
    }

    // MARK: requests

    /// A request with `headers` and the SigV4 headers for them and `payloadHash`.
    func signedRequest(_ method: HTTPMethod, _ url: URL, headers: [(String, String)], payloadHash: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        for (name, value) in signer.sign(method: method.rawValue, url: url, headers: headers, payloadHash: payloadHash, date: Date()) {
            request.headers.replaceOrAdd(name: name, value: value)
        }
        return request
    }

    /// Runs a request, an HTTP client failure reported as a provider error.
    func execute(_ request: HTTPClientRequest, timeout: TimeAmount) async throws -> HTTPClientResponse {
        do {
            return try await http.execute(request, timeout: timeout)
        } catch let error as HTTPClientError {
            throw Self.providerError(error)
        }
    }

    /// Sends a signed request; `body` is hashed into the signature (empty when nil).
    func send(_ method: HTTPMethod, _ url: URL, headers: [(String, String)] = [], body: ByteBuffer? = nil,
              timeout: TimeAmount = .seconds(60)) async throws -> HTTPClientResponse {
        let payloadHash = body.map { AWSSigner.sha256Hex($0.readableBytesView) } ?? AWSSigner.emptyPayloadHash
        var request = signedRequest(method, url, headers: headers, payloadHash: payloadHash)
        if let body {
            request.headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
            request.body = .bytes(body)
        }
        return try await execute(request, timeout: timeout)
    }

    /// An HTTP client failure as the API reports it: waiting too long for a connection means S3 is
    /// overloaded (503, retry); anything else, that it failed (502).
    static func providerError(_ error: HTTPClientError) -> StorageProviderError {
        if error == .getConnectionFromPoolTimeout || error == .connectTimeout {
            return StorageProviderError(message: "S3 is busy: \(error)", busy: true)
        }
        return StorageProviderError(message: "S3 request failed: \(error)")
    }

    /// Sends a request and fails unless the status is 2xx; returns the response and its body text.
    @discardableResult
    func expectOK(_ method: HTTPMethod, _ url: URL, headers: [(String, String)] = [], body: ByteBuffer? = nil,
                  what: String) async throws -> (HTTPClientResponse, String) {
        let response = try await send(method, url, headers: headers, body: body)
        let text = String(buffer: try await response.body.collect(upTo: 16 << 20))
        guard (200..<300).contains(response.status.code) else {
            let code = S3XML.values(of: "Code", in: text).first ?? "HTTP \(response.status.code)"
            logger.warning("S3 request failed", metadata: ["what": "\(what)", "code": "\(code)"])
            throw StorageProviderError(message: "S3 \(what) failed: \(code)")
        }
        return (response, text)
    }

    // MARK: StorageProvider

    func writer(for blob: BlobLocation, contentType: String, size: Int64?) async throws -> any BlobWriter {
        S3BlobWriter(provider: self, key: objectKey(blob.path), contentType: contentType, size: size)
    }

    func read(_ blob: BlobLocation, range: ClosedRange<Int64>?) async throws -> ResponseBody {
        var headers: [(String, String)] = []
        if let range { headers.append(("Range", "bytes=\(range.lowerBound)-\(range.upperBound)")) }
        let response = try await send(.GET, url(key: objectKey(blob.path)), headers: headers, timeout: .hours(1))
        guard (200..<300).contains(response.status.code) else {
            _ = try? await response.body.collect(upTo: 1 << 20)
            throw StorageProviderError(message: "S3 GET failed: HTTP \(response.status.code)")
        }
        return ResponseBody { writer in
            for try await chunk in response.body { try await writer.write(chunk) }
            try await writer.finish(nil)
        }
    }

    func delete(_ blobs: [BlobLocation]) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, blob) in blobs.enumerated() {
                if index >= 16 { try await group.next() }
                group.addTask {
                    let response = try await send(.DELETE, url(key: objectKey(blob.path)))
                    _ = try await response.body.collect(upTo: 1 << 20)
                    guard (200..<300).contains(response.status.code) || response.status.code == 404 else {
                        throw StorageProviderError(message: "S3 DELETE failed: HTTP \(response.status.code)")
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Lists S3 keys under a prefix with their modification times (ListObjectsV2, every page).
    func list(prefix: String) async throws -> [(key: String, modified: Date?)] {
        var out: [(String, Date?)] = []
        var token: String?
        repeat {
            var pairs = [("list-type", "2"), ("prefix", prefix)]
            if let token { pairs.append(("continuation-token", token)) }
            let (_, text) = try await expectOK(.GET, url(key: nil, query: Self.query(pairs)), what: "list")
            for block in S3XML.blocks(of: "Contents", in: text) {
                guard let key = S3XML.values(of: "Key", in: block).first else { continue }
                let modified = S3XML.values(of: "LastModified", in: block).first
                out.append((key, modified.flatMap(JSONCoding.parseTimestamp)))
            }
            token = S3XML.values(of: "IsTruncated", in: text).first == "true" ? S3XML.values(of: "NextContinuationToken", in: text).first : nil
        } while token != nil
        return out
    }

    /// A provider-relative path from an S3 key (nil: not under our prefix).
    func path(ofKey key: String) -> String? {
        guard !settings.prefix.isEmpty else { return key }
        guard key.hasPrefix(settings.prefix + "/") else { return nil }
        return String(key.dropFirst(settings.prefix.count + 1))
    }

    func blobs(writtenBefore before: Date) async throws -> [BlobLocation] {
        try await list(prefix: settings.prefix.isEmpty ? "" : settings.prefix + "/").compactMap { entry in
            guard let modified = entry.modified, modified < before, let path = path(ofKey: entry.key) else { return nil }
            return BlobLocation(path: path)
        }
    }

    func abortIncompleteUploads(startedBefore before: Date) async throws -> Int {
        let prefix = settings.prefix.isEmpty ? "" : settings.prefix + "/"
        let (_, text) = try await expectOK(.GET, url(key: nil, query: Self.query([("prefix", prefix), ("uploads", "")])), what: "list uploads")
        var aborted = 0
        for upload in S3XML.blocks(of: "Upload", in: text) {
            guard let key = S3XML.values(of: "Key", in: upload).first, let id = S3XML.values(of: "UploadId", in: upload).first,
                  let started = S3XML.values(of: "Initiated", in: upload).first.flatMap(JSONCoding.parseTimestamp),
                  started < before, path(ofKey: key).flatMap(BlobLocation.init(path:)) != nil
            else { continue }
            try await expectOK(.DELETE, url(key: key, query: Self.query([("uploadId", id)])), what: "abort multipart upload")
            aborted += 1
        }
        return aborted
    }

    func info(_ blob: BlobLocation) async throws -> BlobInfo? {
        let response = try await send(.HEAD, url(key: objectKey(blob.path)))
        _ = try? await response.body.collect(upTo: 1 << 20)
        if response.status.code == 404 { return nil }
        guard (200..<300).contains(response.status.code), let size = response.headers.first(name: "Content-Length").flatMap(Int64.init) else {
            throw StorageProviderError(message: "S3 HEAD failed: HTTP \(response.status.code)")
        }
        return BlobInfo(size: size, etag: response.headers.first(name: "ETag"), contentType: response.headers.first(name: "Content-Type"),
                        lastModified: nil)
    }

    func head(_ blob: BlobLocation, bytes: Int) async throws -> [UInt8] {
        let response = try await send(.GET, url(key: objectKey(blob.path)), headers: [("Range", "bytes=0-\(bytes - 1)")])
        var body = try await response.body.collect(upTo: bytes + (1 << 16))
        guard (200..<300).contains(response.status.code) else { return [] }
        return body.readBytes(length: min(bytes, body.readableBytes)) ?? []
    }

    func downloadURL(_ blob: BlobLocation, fileName: String, expiresIn: Int) -> String? {
        let key = objectKey(blob.path)
        if let cloudFront, settings.endpoint == nil {
            let expires = Date().addingTimeInterval(TimeInterval(expiresIn))
            return cloudFront.signedURL(cloudFront.settings.url + "/" + AWSSigner.uriEncode(key, encodeSlash: false), expires: expires)
        }
        guard let target = try? url(key: key) else { return nil }
        return signer.presignedURL(method: "GET", url: target, expires: expiresIn, date: Date()).absoluteString
    }

    func presignedPost(_ blob: BlobLocation, contentType: String, maxSize: Int64, expiresIn: Int) -> PresignedPost? {
        let now = Date()
        let fields = signer.presignedPost(bucket: settings.bucket, key: objectKey(blob.path), contentType: contentType, minSize: 0,
                                          maxSize: Int(maxSize), expires: expiresIn, date: now)
        return PresignedPost(url: endpoint + "/" + AWSSigner.uriEncode(settings.bucket, encodeSlash: true), fields: fields,
                             expiresAt: now.addingTimeInterval(TimeInterval(expiresIn)))
    }

    func pendingUploads(bucket: String, key: String) async throws -> [BlobLocation] {
        let entries = try await list(prefix: objectKey("\(bucket)/\(key)/"))
        return entries.sorted { ($0.modified ?? .distantPast) > ($1.modified ?? .distantPast) }.compactMap { entry in
            guard let path = path(ofKey: entry.key), let blob = BlobLocation(path: path), blob.bucket == bucket, blob.key == key else { return nil }
            return blob
        }
    }
}

/// An upload to S3. With a declared length over one part, the bytes stream through as one PUT
/// while they arrive. Otherwise they gather into 8 MiB parts: the first full part starts a
/// multipart upload and each part is sent while the next one fills (at most one in flight), and
/// a small object is one PUT at `commit`. `abort` cancels the PUT or the multipart upload, so
/// nothing is left visible (or billed).
final class S3BlobWriter: BlobWriter {
    let provider: S3StorageProvider
    let key: String
    let contentType: String
    let size: Int64?
    private var buffer = ByteBuffer()
    private var uploadId: String?
    private var parts: [(number: Int, etag: String)] = []
    private var inFlight: Task<(Int, String), any Error>?
    private var streamed: (body: StreamedBody, request: Task<Void, any Error>)?

    init(provider: S3StorageProvider, key: String, contentType: String, size: Int64?) {
        self.provider = provider
        self.key = key
        self.contentType = contentType
        self.size = size
    }

    /// Starts the single streamed PUT (unsigned payload, known length).
    private func startStreamedPut(length: Int64) throws -> (body: StreamedBody, request: Task<Void, any Error>) {
        let body = StreamedBody()
        let provider = self.provider
        let url = try provider.url(key: key)
        let headers = [("Content-Type", contentType)]
        let request = Task {
            var request = provider.signedRequest(.PUT, url, headers: headers, payloadHash: AWSSigner.unsignedPayload)
            request.body = .stream(body, length: .known(length))
            do {
                let response = try await provider.execute(request, timeout: .hours(1))
                let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
                guard (200..<300).contains(response.status.code) else {
                    throw StorageProviderError(message: "S3 put object failed: \(S3XML.values(of: "Code", in: text).first ?? "HTTP \(response.status.code)")")
                }
            } catch {
                body.fail(error)
                throw error
            }
        }
        return (body, request)
    }

    func write(_ chunk: ByteBuffer) async throws {
        if let size, size > S3StorageProvider.partSize {
            let streamed = try self.streamed ?? startStreamedPut(length: size)
            self.streamed = streamed
            try await streamed.body.send(chunk)
            return
        }
        var chunk = chunk
        buffer.writeBuffer(&chunk)
        if buffer.readableBytes >= S3StorageProvider.partSize { try await sendPart() }
    }

    private func start() async throws -> String {
        if let uploadId { return uploadId }
        let (_, text) = try await provider.expectOK(.POST, provider.url(key: key, query: "uploads="), headers: [("Content-Type", contentType)],
                                                    what: "create multipart upload")
        guard let id = S3XML.values(of: "UploadId", in: text).first else { throw StorageProviderError(message: "S3 gave no UploadId") }
        uploadId = id
        return id
    }

    private func sendPart() async throws {
        let id = try await start()
        if let inFlight { parts.append(try await inFlight.value) }
        let part = buffer
        buffer = ByteBuffer()
        let number = parts.count + 1
        let provider = self.provider
        let url = try provider.url(key: key, query: S3StorageProvider.query([("partNumber", String(number)), ("uploadId", id)]))
        inFlight = Task {
            let (response, _) = try await provider.expectOK(.PUT, url, body: part, what: "upload part")
            guard let etag = response.headers.first(name: "ETag") else { throw StorageProviderError(message: "S3 gave no part ETag") }
            return (number, etag)
        }
    }

    func commit() async throws {
        if let streamed {
            streamed.body.finish()
            try await streamed.request.value
            return
        }
        guard uploadId != nil else {
            try await provider.expectOK(.PUT, provider.url(key: key), headers: [("Content-Type", contentType)], body: buffer, what: "put object")
            return
        }
        if buffer.readableBytes > 0 { try await sendPart() }
        if let inFlight { parts.append(try await inFlight.value) }
        inFlight = nil
        let body = "<CompleteMultipartUpload>" + parts.map {
            "<Part><PartNumber>\($0.number)</PartNumber><ETag>\(S3XML.escape($0.etag))</ETag></Part>"
        }.joined() + "</CompleteMultipartUpload>"
        let (_, text) = try await provider.expectOK(.POST, provider.url(key: key, query: S3StorageProvider.query([("uploadId", uploadId!)])),
                                                    headers: [("Content-Type", "application/xml")], body: ByteBuffer(string: body),
                                                    what: "complete multipart upload")
        // S3 can answer 200 with an error document.
        if text.contains("<Error>") { throw StorageProviderError(message: "S3 complete multipart upload failed") }
    }

    func abort() async {
        if let streamed {
            streamed.body.fail(CancellationError())
            streamed.request.cancel()
            _ = try? await streamed.request.value
        }
        inFlight?.cancel()
        _ = try? await inFlight?.value
        inFlight = nil
        guard let uploadId else { return }
        _ = try? await provider.expectOK(.DELETE, provider.url(key: key, query: S3StorageProvider.query([("uploadId", uploadId)])),
                                         what: "abort multipart upload")
    }
}
