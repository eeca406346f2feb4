import EventStore
import Foundation
import HTTPTypes
import Hummingbird

/// An object as the API returns it (InsForge's `StorageFile`, plus `etag` and `uploadedBy`).
struct StorageFileBody: Encodable {
    var key: String
    var bucket: String
    var size: Int64
    var mimeType: String
    var uploadedAt: Date
    var url: String
    var etag: String
    var uploadedBy: String?

    init(_ object: StorageService.Object, baseURL: String) {
        key = object.key
        bucket = object.bucket
        size = object.size
        mimeType = object.mimeType
        uploadedAt = object.uploadedAt
        url = StorageURLs.object(base: baseURL, bucket: object.bucket, key: object.key)
        etag = object.etag
        uploadedBy = object.uploadedBy?.uuidString.lowercased()
    }

    enum CodingKeys: String, CodingKey { case key, bucket, size, mimeType, uploadedAt, url, etag, uploadedBy }

    /// `uploadedBy` is always present (null for admin uploads).
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(key, forKey: .key)
        try c.encode(bucket, forKey: .bucket)
        try c.encode(size, forKey: .size)
        try c.encode(mimeType, forKey: .mimeType)
        try c.encode(uploadedAt, forKey: .uploadedAt)
        try c.encode(url, forKey: .url)
        try c.encode(etag, forKey: .etag)
        try c.encode(uploadedBy, forKey: .uploadedBy)
    }
}

/// Absolute URLs of the storage API.
enum StorageURLs {
    /// `API_BASE_URL`, else the scheme and host the request came to.
    static func base(configured: String?, request: Request) -> String {
        if let configured { return configured.hasSuffix("/") ? String(configured.dropLast()) : configured }
        let forwarded = request.headers[HTTPField.Name("X-Forwarded-Proto")!]?.lowercased()
        let scheme = forwarded == "https" ? "https" : "http"
        let host = request.head.authority ?? "localhost:7130"
        // A Host header is the client's to choose: keep it only if it looks like one.
        let safe = host.utf8.count <= 255 && host.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || ".-:[]".unicodeScalars.contains($0)) }
        return "\(scheme)://\(safe ? host : "localhost:7130")"
    }

    /// `encodeURIComponent`: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )` percent-encoded (so `/` is `%2F`).
    static func component(_ s: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        out.reserveCapacity(s.utf8.count)
        for byte in s.utf8 {
            if unreserved.contains(byte) {
                out.append(byte)
            } else {
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static let unreserved = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()".utf8)

    static func object(base: String, bucket: String, key: String) -> String {
        "\(base)/api/storage/buckets/\(bucket)/objects/\(component(key))"
    }
}

/// Builds a download response: conditional requests (`If-None-Match` -> 304), one `Range` (206, or
/// 416 when it cannot be satisfied), and the headers that keep active content from running.
enum ObjectDownload {
    /// A requested byte range, already checked against the size.
    enum RangeRequest: Equatable {
        case whole
        case part(ClosedRange<Int64>)
        case unsatisfiable
    }

    /// Reads `Range: bytes=a-b | a- | -n`. Anything else (other units, several ranges) means the whole object.
    static func range(_ header: String?, size: Int64) -> RangeRequest {
        guard let header = header?.trimmingCharacters(in: .whitespaces), header.lowercased().hasPrefix("bytes=") else { return .whole }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return .whole }
        let first = spec[..<dash].trimmingCharacters(in: .whitespaces)
        let last = spec[spec.index(after: dash)...].trimmingCharacters(in: .whitespaces)
        if first.isEmpty {
            guard let suffix = Int64(last), suffix >= 0 else { return .whole }
            guard suffix > 0, size > 0 else { return .unsatisfiable }
            return .part(max(0, size - suffix)...(size - 1))
        }
        guard let start = Int64(first), start >= 0 else { return .whole }
        var end = size - 1
        if !last.isEmpty {
            guard let value = Int64(last), value >= start else { return .whole }
            end = min(value, size - 1)
        }
        guard start < size else { return .unsatisfiable }
        return .part(start...end)
    }

    /// Whether `If-None-Match` names the current entity tag (or `*`).
    static func notModified(_ header: String?, etag: String) -> Bool {
        guard let header else { return false }
        let bare = etag.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        return header.split(separator: ",").contains { candidate in
            var tag = candidate.trimmingCharacters(in: .whitespaces)
            if tag == "*" { return true }
            if tag.hasPrefix("W/") { tag.removeFirst(2) }
            return tag.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) == bare
        }
    }

    /// `Content-Disposition` for a file name: inline, or attachment for types a browser would run.
    static func disposition(fileName: String, mimeType: String) -> String {
        let kind = MimeType.isActive(mimeType) ? "attachment" : "inline"
        let ascii = String(fileName.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 && $0 != "\"" && $0 != "\\" ? Character($0) : "_" })
        let encoded = fileName.addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn:
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&+-.^_`|~")) ?? ascii
        return "\(kind); filename=\"\(ascii)\"; filename*=UTF-8''\(encoded)"
    }

    static let httpDate: DateFormatter = {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return f
    }()

    /// The response for `object`; `body` is asked for only when bytes are to be sent.
    static func response(for object: StorageService.Object, request: Request, isPublic: Bool,
                         body: (ClosedRange<Int64>?) async throws -> ResponseBody) async throws -> Response {
        var headers = HTTPFields()
        headers[.eTag] = object.etag
        headers[.lastModified] = httpDate.string(from: object.uploadedAt)
        headers[.acceptRanges] = "bytes"
        headers[.cacheControl] = isPublic ? "public, max-age=0, must-revalidate" : "private, no-cache"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        if notModified(request.headers[.ifNoneMatch], etag: object.etag) {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = object.mimeType
        headers[.contentDisposition] = disposition(fileName: StorageNames.fileName(of: object.key), mimeType: object.mimeType)
        if MimeType.isActive(object.mimeType) {
            headers[.contentSecurityPolicy] = "default-src 'none'; sandbox"
        }
        let head = request.method == .head
        switch range(request.headers[.range], size: object.size) {
        case .unsatisfiable:
            headers[.contentRange] = "bytes */\(object.size)"
            headers[.contentType] = "application/json"
            headers[.contentDisposition] = nil
            let error = APIError(.rangeNotSatisfiable, "STORAGE_INVALID_PARAMETER", "The range is outside the object's \(object.size) bytes")
            return Response(status: .rangeNotSatisfiable, headers: headers, body: .init(byteBuffer: .init(string: error.body)))
        case .part(let part):
            headers[.contentRange] = "bytes \(part.lowerBound)-\(part.upperBound)/\(object.size)"
            headers[.contentLength] = String(part.count)
            return Response(status: .partialContent, headers: headers, body: head ? .init() : try await body(part))
        case .whole:
            headers[.contentLength] = String(object.size)
            return Response(status: .ok, headers: headers, body: head || object.size == 0 ? .init() : try await body(nil))
        }
    }
}
