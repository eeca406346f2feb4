/// A token bucket: `rate` tokens a second, at most `burst` saved up. A value type, so its owner
/// decides where it lives (a socket's mutex, a test's variable).
public struct TokenBucket: Sendable, Equatable {
    /// Tokens per second and how many may be saved up.
    public struct Rate: Sendable, Equatable {
        public var perSecond: Double
        public var burst: Double
        public init(perSecond: Double, burst: Double) {
            self.perSecond = perSecond
            self.burst = burst
        }
    }

    public let rate: Rate
    private var tokens: Double
    /// Seconds on the owner's clock when `tokens` was last brought up to date.
    private var updated: Double

    /// A full bucket at `now` (seconds on any monotonic clock).
    public init(rate: Rate, now: Double) {
        self.rate = rate
        self.tokens = rate.burst
        self.updated = now
    }

    /// Takes one token if there is one.
    public mutating func take(now: Double) -> Bool {
        tokens = min(rate.burst, tokens + max(0, now - updated) * rate.perSecond)
        updated = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
