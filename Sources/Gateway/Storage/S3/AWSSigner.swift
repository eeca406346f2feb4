import Crypto
import EventStore
import Foundation

/// AWS Signature Version 4 (`AWS4-HMAC-SHA256`) for S3 and S3-compatible stores.
///
/// Every function is pure: the signing time is passed in, so the same inputs always
/// give the same output (and tests can replay AWS's published examples).
///
/// Canonicalisation follows the S3 rules: the path is URI-encoded once (never
/// normalised or double-encoded), query parameters are sorted by encoded key then
/// value, header names are lowercased and sorted, and header values are trimmed with
/// inner runs of whitespace collapsed to one space.
///
/// References:
/// - https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
/// - https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
/// - https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-authentication-HTTPPOST.html
struct AWSSigner: Sendable {
    /// The access key id, e.g. `AKIAIOSFODNN7EXAMPLE`.
    var accessKeyId: String
    /// The secret access key; used only to derive the signing key.
    var secretAccessKey: String
    /// The STS session token of temporary credentials, if any.
    var sessionToken: String?
    /// The region in the credential scope, e.g. `us-east-1` (`auto` for R2).
    var region: String
    /// The service in the credential scope.
    var service: String

    init(
        accessKeyId: String,
        secretAccessKey: String,
        sessionToken: String? = nil,
        region: String,
        service: String = "s3"
    ) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.region = region
        self.service = service
    }

    /// The signing algorithm name that appears in headers, query strings and policies.
    static let algorithm = "AWS4-HMAC-SHA256"
    /// The payload hash to sign when the body is not hashed (streamed uploads, presigned URLs).
    static let unsignedPayload = "UNSIGNED-PAYLOAD"
    /// SHA-256 of the empty body.
    static let emptyPayloadHash = sha256Hex(Data())

    /// Lowercase hex SHA-256 of `data`, the form used for `x-amz-content-sha256`.
    static func sha256Hex(_ data: some DataProtocol) -> String {
        SHA256.hash(data: data).hexString
    }

    // MARK: - Authorization header

    /// Signs a request with the `Authorization` header and returns the headers to add.
    ///
    /// The returned list holds `x-amz-date`, `x-amz-content-sha256` (S3 only, as the AWS
    /// SDKs do), `x-amz-security-token` (when there is a session token) and
    /// `Authorization`. `host` is signed but not returned: the HTTP client sends it.
    ///
    /// - Parameters:
    ///   - method: The HTTP method, e.g. `GET`.
    ///   - url: The full request URL. Its path and query must be percent-encoded the way
    ///     they go on the wire; build them with ``uriEncode(_:encodeSlash:)`` (note that a
    ///     literal `+` is signed as `%2B`, so send it as `%2B` too).
    ///   - headers: Other headers to sign (e.g. `Range`, `Content-Type`,
    ///     `x-amz-storage-class`). Names are matched case-insensitively; repeated names are
    ///     joined with commas in order. A `Host` here overrides the URL's host; any
    ///     `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token` or `Authorization`
    ///     here is ignored, since this function sets them.
    ///   - payloadHash: ``sha256Hex(_:)`` of the body, or ``unsignedPayload``.
    ///   - date: The signing time.
    func sign(
        method: String,
        url: URL,
        headers: [(String, String)],
        payloadHash: String,
        date: Date
    ) -> [(String, String)] {
        let stamp = Self.timestamps(date)
        var added: [(String, String)] = [("x-amz-date", stamp.dateTime)]
        if service == "s3" { added.append(("x-amz-content-sha256", payloadHash)) }
        if let sessionToken { added.append(("x-amz-security-token", sessionToken)) }

        let reserved: Set<String> = ["x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "authorization"]
        var toSign = headers.filter { !reserved.contains($0.0.lowercased()) }
        if !toSign.contains(where: { $0.0.lowercased() == "host" }) {
            toSign.append(("host", Self.hostHeader(url)))
        }
        toSign += added

        let request = canonicalRequest(
            method: method, url: url, query: Self.queryPairs(url), headers: toSign, payloadHash: payloadHash)
        let signature = signature(canonicalRequest: request.text, date: date)
        let authorization = "\(Self.algorithm) Credential=\(accessKeyId)/\(scope(date)), "
            + "SignedHeaders=\(request.signedHeaders), Signature=\(signature)"
        return added + [("Authorization", authorization)]
    }

    // MARK: - Presigned URL

    /// Returns `url` with query-string authentication (a "presigned URL").
    ///
    /// Only `host` is signed and the payload is ``unsignedPayload``, so the URL can be
    /// used by any client. The session token, if any, is part of the signed query.
    ///
    /// - Parameters:
    ///   - method: The HTTP method the URL is for (`GET`, `PUT`, ...).
    ///   - url: The object URL, percent-encoded as in ``sign(method:url:headers:payloadHash:date:)``.
    ///     Any query it already has is kept and signed.
    ///   - expires: Lifetime in seconds, clamped to S3's limits of 1 s ... 7 days.
    ///   - date: The signing time (the URL is valid from then).
    /// - Returns: The signed URL. (`url` comes back unchanged only if Foundation cannot
    ///   split it into components, which does not happen for http(s) URLs.)
    func presignedURL(method: String, url: URL, expires: Int, date: Date) -> URL {
        let stamp = Self.timestamps(date)
        var query = Self.queryPairs(url)
        query += [
            ("X-Amz-Algorithm", Self.algorithm),
            ("X-Amz-Credential", "\(accessKeyId)/\(scope(date))"),
            ("X-Amz-Date", stamp.dateTime),
            ("X-Amz-Expires", String(min(max(expires, 1), 604_800))),
            ("X-Amz-SignedHeaders", "host"),
        ]
        if let sessionToken { query.append(("X-Amz-Security-Token", sessionToken)) }

        let request = canonicalRequest(
            method: method, url: url, query: query, headers: [("host", Self.hostHeader(url))],
            payloadHash: Self.unsignedPayload)
        let signature = signature(canonicalRequest: request.text, date: date)

        guard var components = URLComponents(url: url, resolvingAgainstBaseURL: false) else { return url }
        components.fragment = nil
        // Only unreserved characters, `%XX`, `=` and `&`: always a valid query.
        components.percentEncodedQuery = request.query + "&X-Amz-Signature=" + signature
        return components.url ?? url
    }

    // MARK: - Browser POST upload

    /// Returns the form fields for an S3 browser-based POST upload of exactly one key.
    ///
    /// The policy pins the bucket, the key, the `Content-Type` and the size range, and
    /// carries the credential fields that S3 requires. Post the fields (plus `file`, last)
    /// as `multipart/form-data` to the bucket's URL.
    ///
    /// - Parameters:
    ///   - bucket: The bucket name.
    ///   - key: The exact object key.
    ///   - contentType: The exact `Content-Type` the form must send.
    ///   - minSize: Smallest accepted body, in bytes.
    ///   - maxSize: Largest accepted body, in bytes.
    ///   - expires: Policy lifetime in seconds from `date`.
    ///   - date: The signing time.
    /// - Returns: `key`, `Content-Type`, `policy`, `x-amz-algorithm`, `x-amz-credential`,
    ///   `x-amz-date`, `x-amz-signature` and, with a session token, `x-amz-security-token`.
    func presignedPost(
        bucket: String,
        key: String,
        contentType: String,
        minSize: Int,
        maxSize: Int,
        expires: Int,
        date: Date
    ) -> [String: String] {
        let stamp = Self.timestamps(date)
        let credential = "\(accessKeyId)/\(scope(date))"
        let expiration = Self.timestamps(date.addingTimeInterval(TimeInterval(expires))).iso8601

        var conditions = [
            Self.jsonObject("bucket", bucket),
            Self.jsonObject("key", key),
            Self.jsonObject("Content-Type", contentType),
            "[\"content-length-range\",\(minSize),\(maxSize)]",
            Self.jsonObject("x-amz-algorithm", Self.algorithm),
            Self.jsonObject("x-amz-credential", credential),
            Self.jsonObject("x-amz-date", stamp.dateTime),
        ]
        if let sessionToken { conditions.append(Self.jsonObject("x-amz-security-token", sessionToken)) }
        let policyJSON = "{\"expiration\":\(JSONCoding.quoted(expiration)),\"conditions\":[\(conditions.joined(separator: ","))]}"
        let policy = Data(policyJSON.utf8).base64EncodedString()

        var fields = [
            "key": key,
            "Content-Type": contentType,
            "policy": policy,
            "x-amz-algorithm": Self.algorithm,
            "x-amz-credential": credential,
            "x-amz-date": stamp.dateTime,
            "x-amz-signature": postPolicySignature(base64Policy: policy, date: date),
        ]
        if let sessionToken { fields["x-amz-security-token"] = sessionToken }
        return fields
    }

    /// The `x-amz-signature` of a POST policy: hex HMAC-SHA256 of the base64 policy
    /// under the SigV4 signing key of `date`'s day.
    func postPolicySignature(base64Policy: String, date: Date) -> String {
        HMAC<SHA256>.authenticationCode(for: Data(base64Policy.utf8), using: signingKey(date)).hexString
    }

    // MARK: - URI encoding

    /// URI-encodes `s` the SigV4 way: every byte of its UTF-8 except `A-Z a-z 0-9 - . _ ~`
    /// becomes `%XX` (uppercase hex); `/` is kept unless `encodeSlash` is true.
    static func uriEncode(_ s: String, encodeSlash: Bool) -> String {
        var out = [UInt8]()
        out.reserveCapacity(s.utf8.count)
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: "/") where !encodeSlash:
                out.append(byte)
            default:
                out += [UInt8(ascii: "%"), upperHexDigits[Int(byte >> 4)], upperHexDigits[Int(byte & 0x0F)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: - Signing steps (internal so tests can compare them with published intermediates)

    /// The pieces of a canonical request that the signers need.
    struct CanonicalRequest: Equatable {
        /// The canonical request text that is hashed into the string to sign.
        var text: String
        /// The canonical query string (also used to build presigned URLs).
        var query: String
        /// Lowercased, sorted, `;`-joined header names.
        var signedHeaders: String
    }

    /// Builds the canonical request from already-decoded query pairs and raw headers.
    func canonicalRequest(
        method: String,
        url: URL,
        query: [(String, String)],
        headers: [(String, String)],
        payloadHash: String
    ) -> CanonicalRequest {
        let canonicalQuery = query
            .map { (Self.uriEncode($0.0, encodeSlash: true), Self.uriEncode($0.1, encodeSlash: true)) }
            .sorted { $0.0 == $1.0 ? Self.byteOrder($0.1, $1.1) : Self.byteOrder($0.0, $1.0) }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")

        // Lowercase names, merge repeats (comma-joined, in order), then sort by name.
        var merged: [String: [String]] = [:]
        for (name, value) in headers {
            merged[name.lowercased(), default: []].append(Self.normalizeHeaderValue(value))
        }
        let names = merged.keys.sorted(by: Self.byteOrder)
        let canonicalHeaders = names.map { "\($0):\(merged[$0, default: []].joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")

        let text = [
            method.uppercased(),
            Self.canonicalURI(url),
            canonicalQuery,
            canonicalHeaders,
            signedHeaders,
            payloadHash,
        ].joined(separator: "\n")
        return CanonicalRequest(text: text, query: canonicalQuery, signedHeaders: signedHeaders)
    }

    /// The string to sign for a canonical request.
    func stringToSign(canonicalRequest: String, date: Date) -> String {
        [
            Self.algorithm,
            Self.timestamps(date).dateTime,
            scope(date),
            Self.sha256Hex(Data(canonicalRequest.utf8)),
        ].joined(separator: "\n")
    }

    /// The hex signature of a canonical request.
    func signature(canonicalRequest: String, date: Date) -> String {
        let message = Data(stringToSign(canonicalRequest: canonicalRequest, date: date).utf8)
        return HMAC<SHA256>.authenticationCode(for: message, using: signingKey(date)).hexString
    }

    /// The credential scope: `yyyyMMdd/region/service/aws4_request`.
    func scope(_ date: Date) -> String {
        "\(Self.timestamps(date).day)/\(region)/\(service)/aws4_request"
    }

    /// The SigV4 signing key for `date`'s day, region and service.
    func signingKey(_ date: Date) -> SymmetricKey {
        var key = SymmetricKey(data: Data("AWS4\(secretAccessKey)".utf8))
        for part in [Self.timestamps(date).day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        return key
    }

    /// The canonical URI: each segment of the URL's percent-encoded path is decoded and
    /// URI-encoded once (so `%2F` inside a segment survives); `/` separators are kept.
    static func canonicalURI(_ url: URL) -> String {
        let path = URLComponents(url: url, resolvingAgainstBaseURL: false)?.percentEncodedPath ?? ""
        if path.isEmpty { return "/" }
        return path.split(separator: "/", omittingEmptySubsequences: false)
            .map { segment in
                uriEncode(String(segment).removingPercentEncoding ?? String(segment), encodeSlash: true)
            }
            .joined(separator: "/")
    }

    /// The URL's query as decoded `(name, value)` pairs; a name without `=` gets value `""`.
    /// A `+` is taken literally (RFC 3986), not as a space.
    static func queryPairs(_ url: URL) -> [(String, String)] {
        guard let query = URLComponents(url: url, resolvingAgainstBaseURL: false)?.percentEncodedQuery,
              !query.isEmpty
        else { return [] }
        return query.split(separator: "&").map { item in
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (s: Substring) in String(s).removingPercentEncoding ?? String(s) }
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }

    /// The `host` header value: the URL's host, plus the port when it is not the
    /// scheme's default.
    static func hostHeader(_ url: URL) -> String {
        let components = URLComponents(url: url, resolvingAgainstBaseURL: false)
        var host = components?.percentEncodedHost ?? ""
        if host.contains(":"), !host.hasPrefix("[") { host = "[\(host)]" }  // IPv6 literal
        guard let port = components?.port else { return host }
        switch (components?.scheme?.lowercased(), port) {
        case ("http", 80), ("https", 443): return host
        default: return "\(host):\(port)"
        }
    }

    // MARK: - Private helpers

    private static let upperHexDigits = Array("0123456789ABCDEF".utf8)

    /// Trims a header value and collapses inner runs of whitespace to one space.
    private static func normalizeHeaderValue(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" })
            .joined(separator: " ")
    }

    /// Byte-wise (UTF-8) ordering, as SigV4 sorts names and values.
    private static func byteOrder(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    /// The UTC forms of one instant that SigV4 needs.
    private struct Timestamps {
        /// `yyyyMMdd`
        var day: String
        /// `yyyyMMdd'T'HHmmss'Z'`
        var dateTime: String
        /// `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`
        var iso8601: String
    }

    private static func timestamps(_ date: Date) -> Timestamps {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .gmt
        // Split into whole seconds and milliseconds, flooring (also before 1970).
        let millis = Int((date.timeIntervalSince1970 * 1000).rounded(.down))
        let seconds = millis >= 0 ? millis / 1000 : (millis - 999) / 1000
        let c = calendar.dateComponents(
            [.year, .month, .day, .hour, .minute, .second], from: Date(timeIntervalSince1970: TimeInterval(seconds)))
        func pad(_ value: Int?, _ width: Int) -> String {
            let s = String(value ?? 0)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        let day = pad(c.year, 4) + pad(c.month, 2) + pad(c.day, 2)
        let time = [pad(c.hour, 2), pad(c.minute, 2), pad(c.second, 2)]
        let iso = "\(pad(c.year, 4))-\(pad(c.month, 2))-\(pad(c.day, 2))T\(time.joined(separator: ":"))."
            + pad(millis - seconds * 1000, 3) + "Z"
        return Timestamps(day: day, dateTime: day + "T" + time.joined() + "Z", iso8601: iso)
    }

    private static func jsonObject(_ name: String, _ value: String) -> String {
        "{\(JSONCoding.quoted(name)):\(JSONCoding.quoted(value))}"
    }
}
