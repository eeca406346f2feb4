import Crypto
import Foundation

/// Standard Webhooks signing: `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`,
/// keyed with the base64 part of the channel's `whsec_...` secret.
enum WebhookSignature {
    static func sign(secret: String, id: String, timestamp: Int64, body: String) -> String? {
        guard secret.hasPrefix("whsec_"), let key = Data(base64Encoded: String(secret.dropFirst(6))), !key.isEmpty else { return nil }
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(id).\(timestamp).\(body)".utf8), using: SymmetricKey(data: key))
        return "v1," + Data(mac).base64EncodedString()
    }
}

/// When to try a failed delivery again: a delay per attempt (the first entry is the first
/// attempt's), spread by a random jitter; a receiver's `Retry-After` wins when it asks for longer.
struct RetrySchedule: Sendable, Equatable {
    var delays: [Duration]
    /// The fraction of a delay added or taken at random (0.1: +-10%).
    var jitter: Double

    /// InsForge's: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h.
    static let standard = RetrySchedule(
        delays: [.zero, .seconds(5), .seconds(300), .seconds(1800), .seconds(7200), .seconds(18000), .seconds(36000)], jitter: 0.1)

    /// How many attempts a delivery gets.
    var attempts: Int { delays.count }

    /// `0,5s,5m,30m,2h,5h,10h` (a bare number is seconds; `ms`, `s`, `m`, `h` suffixes); nil when malformed.
    static func parse(_ text: String, jitter: Double = 0.1) -> RetrySchedule? {
        var delays: [Duration] = []
        for part in text.split(separator: ",") {
            let item = part.trimmingCharacters(in: .whitespaces)
            let (digits, unit) = (item.prefix { $0.isNumber || $0 == "." }, item.drop { $0.isNumber || $0 == "." })
            guard let n = Double(digits), n >= 0, n <= 7 * 86_400 * 1000 else { return nil }
            let seconds: Double
            switch unit {
            case "", "s": seconds = n
            case "ms": seconds = n / 1000
            case "m": seconds = n * 60
            case "h": seconds = n * 3600
            default: return nil
            }
            delays.append(.milliseconds(Int64(seconds * 1000)))
        }
        guard !delays.isEmpty, delays.count <= 50 else { return nil }
        return RetrySchedule(delays: delays, jitter: jitter)
    }

    /// The wait before attempt number `attempt` (1-based, counting the first), or nil when none is left.
    func delay(beforeAttempt attempt: Int, retryAfter: Duration? = nil,
               random: (ClosedRange<Double>) -> Double = { Double.random(in: $0) }) -> Duration? {
        guard attempt >= 1, attempt <= delays.count else { return nil }
        var delay = delays[attempt - 1]
        if jitter > 0, delay > .zero { delay = delay * random(max(0, 1 - jitter)...(1 + jitter)) }
        if let retryAfter, retryAfter > delay { delay = min(retryAfter, .seconds(86_400)) }
        return delay
    }

    /// A `Retry-After` header: seconds, or an HTTP date.
    static func retryAfter(_ header: String?, now: Date = Date()) -> Duration? {
        guard let header = header?.trimmingCharacters(in: .whitespaces), !header.isEmpty else { return nil }
        if let seconds = Int64(header) { return seconds >= 0 ? .seconds(seconds) : nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: header) else { return nil }
        return .milliseconds(Int64(max(0, date.timeIntervalSince(now)) * 1000))
    }
}

/// Which destinations webhooks may reach. Private, loopback and link-local addresses are refused
/// unless allowed (a server inside a network must not become a way into it).
struct DestinationPolicy: Sendable {
    var allowPrivate: Bool

    /// Why `host` may not be called, or nil. Names are resolved; every address must be public.
    func problem(host: String) -> String? {
        if allowPrivate { return nil }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let addresses = Self.resolve(bare)
        guard !addresses.isEmpty else { return "the host \(host) does not resolve" }
        if let bad = addresses.first(where: Self.isPrivate) { return "the destination \(host) (\(bad)) is a private address" }
        return nil
    }

    static func resolve(_ host: String) -> [String] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var out: [String] = []
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let current = node {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(current.pointee.ai_addr, current.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                out.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            node = current.pointee.ai_next
        }
        return out
    }

    /// Loopback, private (RFC 1918, unique local), link-local, CGNAT, unspecified and multicast addresses.
    static func isPrivate(_ address: String) -> Bool {
        if address.contains(":") {
            let a = address.lowercased()
            if a == "::1" || a == "::" { return true }
            if a.hasPrefix("::ffff:") { return isPrivate(String(a.dropFirst(7))) }
            return a.hasPrefix("fc") || a.hasPrefix("fd") || a.hasPrefix("fe8") || a.hasPrefix("fe9") || a.hasPrefix("fea")
                || a.hasPrefix("feb") || a.hasPrefix("ff")
        }
        let octets = address.split(separator: ".").compactMap { UInt8($0) }
        guard octets.count == 4 else { return true }
        switch (octets[0], octets[1]) {
        case (0, _), (10, _), (127, _), (169, 254), (192, 168): return true
        case (172, 16...31), (100, 64...127): return true
        case (224..., _): return true
        default: return false
        }
    }
}
