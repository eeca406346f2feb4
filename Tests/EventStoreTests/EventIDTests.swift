import Foundation
import Testing

@testable import EventStore

/// New event ids are UUIDv7: time-ordered (the log's event_id index takes them at its right edge),
/// unique, and with the version and variant bits RFC 9562 asks for.
struct EventIDTests {
    @Test func idsAreVersion7WithTheRFCVariantAndTodaysTime() {
        let before = UInt64(Date().timeIntervalSince1970 * 1000)
        let id = EventID.next().uuid
        let after = UInt64(Date().timeIntervalSince1970 * 1000)
        #expect(id.6 >> 4 == 7)
        #expect(id.8 >> 6 == 0b10)
        let millis = [id.0, id.1, id.2, id.3, id.4, id.5].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        #expect(millis >= before && millis <= after + 1)
    }

    @Test func laterIdsSortLaterAndNeverRepeat() {
        // More than one 4 KB pool of random bytes and more than 4,096 ids in some millisecond.
        let ids = (0..<20_000).map { _ in EventID.next() }
        let texts = ids.map { $0.uuidString.lowercased() }
        #expect(Set(texts).count == ids.count)
        #expect(zip(texts, texts.dropFirst()).allSatisfy { $0 < $1 })
    }

    @Test func idsFromManyThreadsAreDistinct() async {
        let ids = await withTaskGroup(of: [UUID].self) { group in
            for _ in 0..<8 { group.addTask { (0..<2_000).map { _ in EventID.next() } } }
            var all: [UUID] = []
            for await some in group { all += some }
            return all
        }
        #expect(Set(ids).count == 16_000)
    }
}
