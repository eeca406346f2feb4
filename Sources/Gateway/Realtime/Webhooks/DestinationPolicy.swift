import Foundation

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
