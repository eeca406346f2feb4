import Foundation
import Synchronization

/// The browser origins that may make credentialed (cookie-carrying) requests: `CORS_ORIGINS` when it is
/// set; otherwise this server's own origin, the origins `allowedRedirectUrls` names (globs allowed:
/// `https://*.example.com`) and, while that list is empty, `localhost` origins, as the redirect rules do.
/// Other origins still get CORS for bearer-token requests, without credentials.
final class CredentialedOrigins: Sendable {
    /// `CORS_ORIGINS`, as origins or origin globs; nil when not set.
    let configured: [String]?
    let ownOrigin: String?
    /// The project's redirect patterns (read again at most every few seconds).
    let redirectPatterns: @Sendable () async throws -> [String]
    private let cache = Mutex<(patterns: [String], at: ContinuousClock.Instant)?>(nil)
    static let cacheLifetime: Duration = .seconds(5)

    init(configured: [String]?, ownOrigin: String?, redirectPatterns: @escaping @Sendable () async throws -> [String]) {
        self.configured = configured
        self.ownOrigin = ownOrigin.flatMap(RedirectAllowList.origin(of:))
        self.redirectPatterns = redirectPatterns
    }

    func allows(_ origin: String) async -> Bool {
        guard let origin = RedirectAllowList.origin(of: origin) else { return false }
        if origin == ownOrigin { return true }
        if let configured { return Self.matches(origin, configured) }
        let patterns = await currentPatterns()
        if patterns.isEmpty {
            return RedirectAllowList.loopbackHosts.contains(URLComponents(string: origin)?.host?.lowercased() ?? "")
        }
        return Self.matches(origin, patterns.map(Self.originPart))
    }

    private func currentPatterns() async -> [String] {
        let now = ContinuousClock.now
        if let cached = cache.withLock({ $0 }), now - cached.at < Self.cacheLifetime { return cached.patterns }
        let patterns = (try? await redirectPatterns()) ?? cache.withLock { $0?.patterns } ?? []
        cache.withLock { $0 = (patterns, now) }
        return patterns
    }

    static func matches(_ origin: String, _ patterns: [String]) -> Bool {
        patterns.contains { RedirectAllowList.glob($0.lowercased(), matches: origin) }
    }

    /// `scheme://host[:port]` of a URL pattern (everything before the path).
    static func originPart(_ pattern: String) -> String {
        guard let scheme = pattern.range(of: "://") else { return pattern }
        let rest = pattern[scheme.upperBound...]
        return String(pattern[..<scheme.upperBound]) + String(rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" })
    }
}
