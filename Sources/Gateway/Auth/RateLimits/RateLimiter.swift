import HTTPTypes
import Foundation
import Synchronization

/// Fixed-window request counting per key (an IP, or an e-mail address), in memory on each node.
///
/// `check` either admits a request or says how long until the window resets; the gateway turns
/// the refusal into 429 `TOO_MANY_REQUESTS` with `Retry-After` and `RateLimit-*` headers.
/// Memory is bounded without scanning: counts live in the current and the previous window's
/// tables, swapped when a window ends; past `maxKeys` keys in a window, new keys share one count
/// (a flood of fresh addresses is limited as one client instead of growing the table).
public final class RateLimiter: Sendable {
    /// What a check decided.
    public struct Decision: Sendable, Equatable {
        public var allowed: Bool
        public var limit: Int
        public var remaining: Int
        /// Seconds until the window resets (at least 1).
        public var resetSeconds: Int
    }

    struct Window {
        var start: Double
        var count: Int
    }

    struct Tables {
        var current: [String: Window] = [:]
        var previous: [String: Window] = [:]
        var rotatedAt: Double
    }

    public let limit: Int
    public let window: TimeInterval
    public let maxKeys: Int
    private let tables: Mutex<Tables>
    private let clock: @Sendable () -> Double
    static let overflowKey = "\u{0}overflow"

    public init(limit: Int, per window: TimeInterval, maxKeys: Int = 100_000,
                clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.limit = limit
        self.window = window
        self.maxKeys = maxKeys
        self.clock = clock
        self.tables = Mutex(Tables(rotatedAt: clock()))
    }

    /// Counts one request for `key` and decides.
    public func check(_ key: String) -> Decision {
        let now = clock()
        return tables.withLock { t in
            // Every window still running started less than one window ago, so after two rotations a
            // key's window has ended: dropping the older table loses nothing that counts.
            if now - t.rotatedAt >= window {
                t.previous = now - t.rotatedAt >= 2 * window ? [:] : t.current
                t.current = [:]
                t.rotatedAt = now
            }
            var key = key
            if t.current[key] == nil, t.previous[key] == nil, t.current.count >= maxKeys { key = Self.overflowKey }
            var w = t.current[key] ?? t.previous[key] ?? Window(start: now, count: 0)
            if now - w.start >= window { w = Window(start: now, count: 0) }
            let reset = max(1, Int((w.start + window - now).rounded(.up)))
            guard w.count < limit else {
                t.current[key] = w
                return Decision(allowed: false, limit: limit, remaining: 0, resetSeconds: reset)
            }
            w.count += 1
            t.current[key] = w
            return Decision(allowed: true, limit: limit, remaining: limit - w.count, resetSeconds: reset)
        }
    }
}

extension APIError {
    /// 429 `TOO_MANY_REQUESTS` with `Retry-After` and the `RateLimit-*` headers of `decision`.
    static func tooManyRequests(_ decision: RateLimiter.Decision) -> APIError {
        var error = APIError(.tooManyRequests, "TOO_MANY_REQUESTS", "Too many requests; try again in \(decision.resetSeconds) seconds")
        error.headers[.retryAfter] = String(decision.resetSeconds)
        error.headers[HTTPField.Name("RateLimit-Limit")!] = String(decision.limit)
        error.headers[HTTPField.Name("RateLimit-Remaining")!] = "0"
        error.headers[HTTPField.Name("RateLimit-Reset")!] = String(decision.resetSeconds)
        return error
    }
}
