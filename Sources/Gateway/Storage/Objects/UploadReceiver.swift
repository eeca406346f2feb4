import Crypto
import Foundation
import Hummingbird
import MultipartKit
import NIOCore

/// What an upload stored: its size, type and the quoted hex MD5 of its bytes.
struct ReceivedFile: Sendable {
    var size: Int64
    var mimeType: String
    var etag: String
}

/// Takes the file out of an upload request (the multipart field `file`, or the whole body) and
/// streams it to a provider as it arrives: the first 512 bytes are held to learn the type, then
/// everything goes straight through, counted against the size limit and hashed on the way.
/// Nothing is kept in memory beyond the provider's own write buffer.
struct UploadReceiver {
    /// Largest file accepted, in bytes.
    var limit: Int64
    /// The object's key, when given (its last part names the file when the upload does not).
    var key: String?

    /// Why a request's body cannot be read as an upload.
    static func tooLarge(_ limit: Int64) -> APIError {
        let size = limit % (1 << 20) == 0 ? "\(limit >> 20) MB" : "\(limit) bytes"
        return APIError(.contentTooLarge, "STORAGE_INVALID_PARAMETER", "File size exceeds the configured maximum upload size of \(size)",
                        nextActions: "Upload a smaller file, or raise the limit with PUT /api/storage/config")
    }

    /// Streams the file of `request` into a writer that `open` makes once the type and the file's
    /// name are known (`open(type, fileName, declared size)`), and commits it. On any failure the writer is
    /// aborted: nothing is left behind.
    func receive(_ request: Request, open: @escaping (String, String?, Int64?) async throws -> any BlobWriter) async throws -> ReceivedFile {
        let contentType = request.headers[.contentType] ?? ""
        let length = request.headers[.contentLength].flatMap(Int64.init)
        if let length, length > limit + (1 << 20) { throw Self.tooLarge(limit) }
        let sink = FileSink(limit: limit, key: key, open: open)
        // One iterator for the whole request: a body can only be iterated once.
        let body = BodyReader(request.body)
        do {
            if contentType.lowercased().hasPrefix("multipart/form-data") {
                guard let boundary = Self.boundary(of: contentType) else {
                    throw APIError(.badRequest, "STORAGE_INVALID_PARAMETER", "multipart/form-data needs a boundary")
                }
                try await Self.multipart(body, boundary: boundary, into: sink)
            } else {
                // curl's default for a raw body says nothing about the file.
                sink.declaredType = MimeType.normalized(contentType).flatMap { $0 == "application/x-www-form-urlencoded" ? nil : $0 }
                // A raw body's declared length is the file's (checked against the limit as it streams).
                sink.expectedSize = length.flatMap { $0 <= limit ? $0 : nil }
                while let chunk = try await body.next() { try await sink.write(chunk) }
            }
            return try await sink.finish()
        } catch {
            await sink.abort()
            if let tooLarge = error as? FileSink.TooLarge {
                // Read (and drop) the rest of a moderately oversized body so that the client sees the 413.
                var drained = tooLarge.received
                while drained <= limit * 2 + (16 << 20), let chunk = try await body.next() {
                    drained += Int64(chunk.readableBytes)
                }
                throw Self.tooLarge(limit)
            }
            throw error
        }
    }

    static func boundary(of contentType: String) -> String? {
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces).lowercased() == "boundary" else { continue }
            let value = pair[1].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            return value.isEmpty || value.utf8.count > 200 ? nil : value
        }
        return nil
    }

    /// The `name` and `filename` parameters of a `Content-Disposition: form-data` header.
    static func dispositionParameters(_ header: String) -> [String: String] {
        var out: [String: String] = [:]
        for parameter in header.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            guard pair.count == 2 else { continue }
            var value = pair[1].trimmingCharacters(in: .whitespaces)
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            out[pair[0].trimmingCharacters(in: .whitespaces).lowercased()] = value
        }
        return out
    }

    /// Feeds the body through the streaming multipart parser; the bytes of the part named `file` go to `sink`.
    /// Bytes of a multipart body that may be something other than the file.
    static let maxEnvelopeBytes = 1 << 20

    private static func multipart(_ body: BodyReader, boundary: String, into sink: FileSink) async throws {
        enum Piece { case header(String, String), body(ByteBuffer), end }
        final class Pieces { var list: [Piece] = [] }
        let pieces = Pieces()
        let parser = MultipartParser(boundary: boundary)
        parser.onHeader = { name, value in pieces.list.append(.header(name, value)) }
        parser.onBody = { buffer in pieces.list.append(.body(buffer)) }
        parser.onPartComplete = { pieces.list.append(.end) }

        /// Whether a part with these headers is the file; if so, the sink learns its name and declared type.
        func adoptIfFile(_ headers: [(String, String)]) -> Bool {
            let disposition = headers.first { $0.0 == "content-disposition" }.map { dispositionParameters($0.1) } ?? [:]
            guard disposition["name"] == "file" else { return false }
            sink.fileName = disposition["filename"]
            sink.declaredType = MimeType.normalized(headers.first { $0.0 == "content-type" }?.1)
            return true
        }
        var headers: [(String, String)] = []
        var inFile = false
        var sawFile = false
        var partsSeen = 0
        var finished = false
        var received = 0
        while let chunk = try await body.next() {
            received += chunk.readableBytes
            do { try parser.execute(chunk) } catch {
                throw APIError(.badRequest, "STORAGE_INVALID_PARAMETER", "The multipart body is malformed")
            }
            for piece in pieces.list {
                switch piece {
                case .header(let name, let value):
                    guard headers.count < 32 else { throw APIError(.badRequest, "STORAGE_INVALID_PARAMETER", "Too many part headers") }
                    headers.append((name.lowercased(), value))
                case .body(let buffer):
                    if !headers.isEmpty {
                        inFile = !sawFile && adoptIfFile(headers)
                        sawFile = sawFile || inFile
                        headers.removeAll()
                    }
                    if inFile { try await sink.write(buffer) }
                case .end:
                    // A part with headers left has no body: an empty file, if it is the one.
                    if !headers.isEmpty, !sawFile, adoptIfFile(headers) { sawFile = true }
                    if inFile { finished = true }
                    inFile = false
                    headers.removeAll()
                    partsSeen += 1
                    guard partsSeen <= 64 else { throw APIError(.badRequest, "STORAGE_INVALID_PARAMETER", "Too many parts") }
                }
            }
            pieces.list.removeAll(keepingCapacity: true)
            // Everything but the file's bytes (boundaries, part headers, other fields) is held by the parser
            // or thrown away: bounded, whatever the parts look like.
            guard received - Int(sink.size) <= Self.maxEnvelopeBytes else {
                throw APIError(.contentTooLarge, "PAYLOAD_TOO_LARGE", "The multipart body holds more than the file and 1 MiB of parts")
            }
        }
        guard sawFile else {
            throw APIError(.badRequest, "STORAGE_INVALID_PARAMETER", "File is required",
                           nextActions: "Send the file as the multipart field 'file', or as the raw request body")
        }
        guard finished || sink.size == 0 && partsSeen > 0 else {
            throw APIError(.badRequest, "STORAGE_INVALID_PARAMETER", "The multipart body ended before the file did")
        }
    }
}

/// A request body read through one iterator (a body cannot be iterated twice).
final class BodyReader {
    private var iterator: RequestBody.AsyncIterator

    init(_ body: RequestBody) { iterator = body.makeAsyncIterator() }

    func next() async throws -> ByteBuffer? { try await iterator.next() }
}

/// Counts, hashes and forwards a file's bytes, holding back only the first 512 to learn its type.
final class FileSink {
    struct TooLarge: Error { var received: Int64 }

    let limit: Int64
    let key: String?
    let open: (String, String?, Int64?) async throws -> any BlobWriter
    var fileName: String?
    /// The file's length when the request said it (a raw body with `Content-Length`).
    var expectedSize: Int64?
    var declaredType: String?
    private(set) var size: Int64 = 0
    private var md5 = Insecure.MD5()
    private var head = ByteBuffer()
    private var writer: (any BlobWriter)?
    private var mimeType: String?

    init(limit: Int64, key: String?, open: @escaping (String, String?, Int64?) async throws -> any BlobWriter) {
        self.limit = limit
        self.key = key
        self.open = open
    }

    func write(_ buffer: ByteBuffer) async throws {
        size += Int64(buffer.readableBytes)
        guard size <= limit else { throw TooLarge(received: size) }
        buffer.withUnsafeReadableBytes { md5.update(bufferPointer: $0) }
        if let writer {
            try await writer.write(buffer)
            return
        }
        var buffer = buffer
        head.writeBuffer(&buffer)
        if head.readableBytes >= MimeType.sniffLength { try await start() }
    }

    /// Opens the writer once the type is known and sends it what was held back.
    private func start() async throws {
        let name = key.map(StorageNames.fileName) ?? fileName ?? ""
        let type = MimeType.resolve(head: head.readableBytesView, declared: declaredType, fileName: name)
        mimeType = type
        let writer = try await open(type, fileName, expectedSize)
        self.writer = writer
        if head.readableBytes > 0 { try await writer.write(head) }
        head = ByteBuffer()
    }

    func finish() async throws -> ReceivedFile {
        if writer == nil { try await start() }
        try await writer?.commit()
        writer = nil
        let etag = "\"" + md5.finalize().hexString + "\""
        return ReceivedFile(size: size, mimeType: mimeType ?? MimeType.fallback, etag: etag)
    }

    func abort() async {
        await writer?.abort()
        writer = nil
    }
}
