import Foundation
import HTTPTypes
import Hummingbird

/// The client's address as limits see it. Behind trusted proxies (`TRUSTED_PROXIES`) it is the
/// right-most `X-Forwarded-For` hop that is not a trusted proxy (hops further left are whatever the
/// client wrote); otherwise the peer. IPv6 clients are counted per /64, the block one host gets.
enum ClientAddress {
    /// An address block, `10.0.0.0/8` or `fd00::/8` (a bare address is a block of one).
    struct Block: Sendable, Equatable {
        let bytes: [UInt8]
        let prefix: Int

        init?(_ text: String) {
            let parts = text.trimmingCharacters(in: .whitespaces).split(separator: "/", maxSplits: 1)
            guard let first = parts.first, let bytes = ClientAddress.bytes(of: String(first)) else { return nil }
            let prefix = parts.count == 2 ? Int(parts[1]) : bytes.count * 8
            guard let prefix, (0...(bytes.count * 8)).contains(prefix) else { return nil }
            self.bytes = bytes
            self.prefix = prefix
        }

        func contains(_ address: String) -> Bool {
            guard let other = ClientAddress.bytes(of: address), other.count == bytes.count else { return false }
            var left = prefix
            for (a, b) in zip(bytes, other) where left > 0 {
                let mask: UInt8 = left >= 8 ? 0xFF : ~(0xFF >> UInt8(left))
                if a & mask != b & mask { return false }
                left -= 8
            }
            return true
        }
    }

    /// The address's bytes (4 or 16); an IPv4-mapped IPv6 address as its IPv4 bytes. Brackets and a zone
    /// id (`fe80::1%eth0`) are dropped; what does not parse is nil.
    static func bytes(of address: String) -> [UInt8]? {
        var text = address.hasPrefix("[") && address.hasSuffix("]") ? String(address.dropFirst().dropLast()) : address
        text = text.split(separator: "%", maxSplits: 1).first.map(String.init) ?? text
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4.s_addr) { Array($0) } }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let b = withUnsafeBytes(of: &v6) { Array($0) }
        if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF { return Array(b[12...]) }
        return b
    }

    /// The key a limit counts `address` under: IPv4 as it is, IPv6 by its /64.
    static func limitKey(_ address: String) -> String {
        guard let b = bytes(of: address) else { return address }
        guard b.count == 16 else { return b.map(String.init).joined(separator: ".") }
        return stride(from: 0, to: 8, by: 2).map { String(UInt16(b[$0]) << 8 | UInt16(b[$0 + 1]), radix: 16) }.joined(separator: ":") + "::/64"
    }

    /// The client behind `peer`: the right-most hop of `forwardedFor` that is not in `trusted`, when the
    /// peer itself is trusted; else the peer.
    static func resolve(peer: String?, forwardedFor: String?, trusted: [Block]) -> String? {
        guard let peer, !trusted.isEmpty, trusted.contains(where: { $0.contains(peer) }), let forwardedFor else { return peer }
        let hops = forwardedFor.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        for hop in hops.reversed() {
            guard bytes(of: hop) != nil else { return peer }  // garbage: do not trust anything further left
            if !trusted.contains(where: { $0.contains(hop) }) { return hop }
        }
        return hops.first ?? peer
    }
}

/// Sets the request's client address from `X-Forwarded-For` when the peer is a trusted proxy.
struct ClientAddressMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let trusted: [ClientAddress.Block]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard !trusted.isEmpty else { return try await next(request, context) }
        var context = context
        context.clientIP = ClientAddress.resolve(peer: context.clientIP, forwardedFor: request.headers[values: .xForwardedFor].joined(separator: ","),
                                                 trusted: trusted)
        return try await next(request, context)
    }
}

extension HTTPField.Name {
    static let xForwardedFor = Self("X-Forwarded-For")!
}
