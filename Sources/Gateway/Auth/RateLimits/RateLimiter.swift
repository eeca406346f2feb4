import HTTPTypes
import Foundation
import Synchronization

/// Fixed-window request counting per key (an IP, or an e-mail address), in memory on each node.
///
/// `check` either admits a request or says how long until the window resets; the gateway turns
/// the refusal into 429 `TOO_MANY_REQUESTS` with `Retry-After` and `RateLimit-*` headers.
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

    public let limit: Int
    public let window: TimeInterval
    private let windows = Mutex<[String: Window]>([:])
    private let clock: @Sendable () -> Double

    public init(limit: Int, per window: TimeInterval, clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.limit = limit
        self.window = window
        self.clock = clock
    }

    /// Counts one request for `key` and decides.
    public func check(_ key: String) -> Decision {
        let now = clock()
        return windows.withLock { windows in
            if windows.count > 100_000 { windows = windows.filter { now - $0.value.start < window } }
            var w = windows[key] ?? Window(start: now, count: 0)
            if now - w.start >= window { w = Window(start: now, count: 0) }
            let reset = max(1, Int((w.start + window - now).rounded(.up)))
            guard w.count < limit else {
                windows[key] = w
                return Decision(allowed: false, limit: limit, remaining: 0, resetSeconds: reset)
            }
            w.count += 1
            windows[key] = w
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
