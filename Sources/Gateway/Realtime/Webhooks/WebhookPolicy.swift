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

/// Which destinations outbound calls (webhooks; later functions and AI upstreams) may reach.
/// Private, loopback, link-local, translated and reserved addresses are refused unless allowed
/// (a server inside a network must not become a way into it).
struct DestinationPolicy: Sendable {
    var allowPrivate: Bool

    /// What vetting a host came to: the address to connect to, or why not.
    enum Verdict: Sendable, Equatable {
        /// Connect to `address` (the one that was checked), or to whatever the name resolves to
        /// when private destinations are allowed (`address` nil).
        case allowed(address: String?)
        case refused(String)
    }

    /// Why `host` may not be called, or nil. Names are resolved; every address must be public.
    func problem(host: String) -> String? {
        if case .refused(let problem) = vet(host: host) { return problem }
        return nil
    }

    /// Resolves `host` once and checks every address; the caller connects to the address returned,
    /// so a name that resolves differently a moment later (DNS rebinding) reaches nothing new.
    func vet(host: String) -> Verdict {
        if allowPrivate { return .allowed(address: nil) }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let addresses = Self.resolve(bare)
        guard let first = addresses.first else { return .refused("the host \(host) does not resolve") }
        if let bad = addresses.first(where: Self.isPrivate) { return .refused("the destination \(host) (\(bad)) is a private address") }
        return .allowed(address: first)
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

    /// Whether `address` (numeric, IPv4 or IPv6) is anything but a public unicast address: loopback,
    /// private (RFC 1918, unique local), link-local, site-local, CGNAT, benchmarking, documentation,
    /// unspecified, multicast and reserved ranges; NAT64, 6to4 and Teredo (which reach IPv4 addresses
    /// through a translator); IPv4-mapped and -compatible forms of a private IPv4 address. What does
    /// not parse counts as private.
    static func isPrivate(_ address: String) -> Bool {
        guard let bytes = ClientAddress.bytes(of: address) else { return true }
        return bytes.count == 4 ? isPrivateIPv4(bytes) : isPrivateIPv6(bytes)
    }

    static func isPrivateIPv4(_ b: [UInt8]) -> Bool {
        guard b.count == 4 else { return true }
        switch (b[0], b[1], b[2]) {
        case (0, _, _), (10, _, _), (127, _, _), (169, 254, _), (192, 168, _): return true
        case (172, 16...31, _), (100, 64...127, _), (198, 18...19, _): return true
        case (192, 0, 0), (192, 0, 2), (198, 51, 100), (203, 0, 113), (192, 88, 99): return true
        case (224..., _, _): return true  // multicast, reserved, broadcast
        default: return false
        }
    }

    static func isPrivateIPv6(_ b: [UInt8]) -> Bool {
        guard b.count == 16 else { return true }
        let zeroTo = { (n: Int) in b[0..<n].allSatisfy { $0 == 0 } }
        if zeroTo(15) && (b[15] == 0 || b[15] == 1) { return true }  // :: and ::1
        if zeroTo(10) && b[10] == 0xFF && b[11] == 0xFF { return isPrivateIPv4(Array(b[12...])) }  // ::ffff:a.b.c.d
        if zeroTo(12) { return isPrivateIPv4(Array(b[12...])) }  // ::a.b.c.d (IPv4-compatible, deprecated)
        if zeroTo(8) && b[8] == 0xFF && b[9] == 0xFF && b[10] == 0 && b[11] == 0 { return true }  // ::ffff:0:a.b.c.d (SIIT)
        if b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B { return true }  // 64:ff9b::/96 and 64:ff9b:1::/48 (NAT64)
        if b[0] == 0x01 && b[1] == 0x00 && b[2...7].allSatisfy({ $0 == 0 }) { return true }  // 100::/64 discard
        if b[0] == 0x20 && b[1] == 0x02 { return true }  // 2002::/16 6to4
        if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00 { return true }  // 2001::/32 Teredo
        if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0D && b[3] == 0xB8 { return true }  // 2001:db8::/32 documentation
        if b[0] & 0xFE == 0xFC { return true }  // fc00::/7 unique local
        if b[0] == 0xFE && b[1] & 0xC0 == 0x80 { return true }  // fe80::/10 link-local
        if b[0] == 0xFE && b[1] & 0xC0 == 0xC0 { return true }  // fec0::/10 site-local
        if b[0] == 0xFF { return true }  // multicast
        return false
    }
}
