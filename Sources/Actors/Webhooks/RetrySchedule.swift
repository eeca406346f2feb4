import Foundation

/// When to try a failed delivery again: a delay per attempt (the first entry is the first
/// attempt's), spread by a random jitter; a receiver's `Retry-After` wins when it asks for longer.
public struct RetrySchedule: Sendable, Equatable {
    public var delays: [Duration]
    /// The fraction of a delay added or taken at random (0.1: +-10%).
    public var jitter: Double

    public init(delays: [Duration], jitter: Double) {
        self.delays = delays
        self.jitter = jitter
    }

    /// InsForge's: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h.
    public static let standard = RetrySchedule(
        delays: [.zero, .seconds(5), .seconds(300), .seconds(1800), .seconds(7200), .seconds(18000), .seconds(36000)], jitter: 0.1)

    /// How many attempts a delivery gets.
    public var attempts: Int { delays.count }

    /// `0,5s,5m,30m,2h,5h,10h` (a bare number is seconds; `ms`, `s`, `m`, `h` suffixes); nil when malformed.
    public static func parse(_ text: String, jitter: Double = 0.1) -> RetrySchedule? {
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
    public func delay(beforeAttempt attempt: Int, retryAfter: Duration? = nil,
               random: (ClosedRange<Double>) -> Double = { Double.random(in: $0) }) -> Duration? {
        guard attempt >= 1, attempt <= delays.count else { return nil }
        var delay = delays[attempt - 1]
        if jitter > 0, delay > .zero { delay = delay * random(max(0, 1 - jitter)...(1 + jitter)) }
        if let retryAfter, retryAfter > delay { delay = min(retryAfter, .seconds(86_400)) }
        return delay
    }

    /// A `Retry-After` header: seconds, or an HTTP date.
    public static func retryAfter(_ header: String?, now: Date = Date()) -> Duration? {
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
