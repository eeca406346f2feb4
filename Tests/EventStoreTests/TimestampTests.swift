import Foundation
import Testing

@testable import EventStore

@Suite struct TimestampTests {
    /// The hand-written formatter agrees with Foundation's on whole milliseconds, across leap years and eras.
    @Test func agreesWithFoundationOnWholeMilliseconds() throws {
        let reference = ISO8601DateFormatter()
        reference.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        reference.timeZone = TimeZone(identifier: "UTC")
        var generator = SystemRandomNumberGenerator()
        let fixed: [Int64] = [0, -1, 951_782_400_000, 951_868_799_999, 4_107_542_400_000, 1_795_756_100_613, 253_402_300_799_999]
        let random = (0..<5000).map { _ in Int64.random(in: 0...4_102_444_800_000, using: &generator) }
        for ms in fixed + random {
            let date = Date(timeIntervalSince1970: Double(ms) / 1000)
            #expect(JSONCoding.timestamp(date) == reference.string(from: date), "\(ms)")
            #expect(JSONCoding.parseTimestamp(JSONCoding.timestamp(date)).map { JSONCoding.timestamp($0) } == JSONCoding.timestamp(date))
        }
    }

    /// A binary fraction just under a millisecond prints as that millisecond; anything later in it, too.
    @Test func roundsToTheMicrosecondThenTruncates() {
        #expect(JSONCoding.timestamp(Date(timeIntervalSince1970: 1_795_756_100.612_999_999_9)) == "2026-11-27T05:08:20.613Z")
        #expect(JSONCoding.timestamp(Date(timeIntervalSince1970: 1_795_756_100.613_9)) == "2026-11-27T05:08:20.613Z")
        #expect(JSONCoding.timestamp(Date(timeIntervalSince1970: -0.000_5)) == "1969-12-31T23:59:59.999Z")
        #expect([UInt8](arrayLiteral: 0, 15, 255).hexString == "000fff")
    }
}
