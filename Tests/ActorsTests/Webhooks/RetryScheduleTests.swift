import Actors
import Foundation
import Testing

struct RetryScheduleTests {
    @Test func schedulesParseAndJitter() throws {
        let schedule = try #require(RetrySchedule.parse("0, 5s, 5m, 2h, 250ms", jitter: 0.1))
        #expect(schedule.delays == [.zero, .seconds(5), .seconds(300), .seconds(7200), .milliseconds(250)])
        #expect(schedule.attempts == 5)
        #expect(RetrySchedule.parse("soon") == nil && RetrySchedule.parse("") == nil && RetrySchedule.parse("5d") == nil
                && RetrySchedule.parse("-1") == nil)
        #expect(schedule.delay(beforeAttempt: 1) == .zero)
        #expect(schedule.delay(beforeAttempt: 2, random: { $0.upperBound }) == .seconds(5.5))
        #expect(schedule.delay(beforeAttempt: 2, random: { $0.lowerBound }) == .seconds(4.5))
        #expect(schedule.delay(beforeAttempt: 6) == nil && schedule.delay(beforeAttempt: 0) == nil)
        // Retry-After wins when it asks for longer, capped at a day.
        #expect(schedule.delay(beforeAttempt: 2, retryAfter: .seconds(60), random: { _ in 1 }) == .seconds(60))
        #expect(schedule.delay(beforeAttempt: 2, retryAfter: .seconds(1), random: { _ in 1 }) == .seconds(5))
        #expect(schedule.delay(beforeAttempt: 2, retryAfter: .seconds(1_000_000), random: { _ in 1 }) == .seconds(86_400))
        #expect(RetrySchedule.standard.delays.count == 7)
    }

    @Test func retryAfterIsSecondsOrAnHTTPDate() {
        #expect(RetrySchedule.retryAfter("120") == .seconds(120))
        #expect(RetrySchedule.retryAfter(" 3 ") == .seconds(3))
        #expect(RetrySchedule.retryAfter("-3") == nil && RetrySchedule.retryAfter("later") == nil && RetrySchedule.retryAfter(nil) == nil)
        let now = Date(timeIntervalSince1970: 1_700_000_000)  // Tue, 14 Nov 2023 22:13:20 GMT
        #expect(RetrySchedule.retryAfter("Tue, 14 Nov 2023 22:13:50 GMT", now: now) == .seconds(30))
        #expect(RetrySchedule.retryAfter("Tue, 14 Nov 2023 22:00:00 GMT", now: now) == .zero)
    }
}
