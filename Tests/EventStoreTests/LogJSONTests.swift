import Foundation
import Testing

@testable import EventStore

@Suite struct LogJSONTests {
    /// `ObjectUploaded` writes its JSON by hand; it must be the very text the shared encoder writes,
    /// for every optional left out or not and for names that need escaping.
    @Test func objectUploadedMatchesTheEncoder() throws {
        let names = ["a.txt", "dir/sub/ü ñ 𝄞.png", "quote\"back\\slash", "tab\tnew\nline\rctl\u{01}\u{1f}\u{7f}", "", "/slashes/ are/not/escaped"]
        var generator = SystemRandomNumberGenerator()
        for name in names {
            for (uploadedBy, uploadedAt) in [(UUID?.none, Date?.none), (UUID(), Date(timeIntervalSince1970: 1_795_756_100.613)),
                                             (UUID(), nil), (nil, Date(timeIntervalSince1970: Double(Int64.random(in: 0...4_102_444_800_000, using: &generator)) / 1000))] {
                let event = ObjectUploaded(bucket: "b-" + String(name.prefix(3)), key: name, version: UUID(), size: Int64.random(in: 0...Int64.max, using: &generator),
                                           mimeType: name.isEmpty ? "application/octet-stream" : "text/\(name)", etag: "\"\(name)\"",
                                           uploadedBy: uploadedBy, uploadedAt: uploadedAt)
                #expect(event.logJSON() == (try JSONCoding.encodeString(event)), "\(name)")
                // Dates are cut to the millisecond on the way in, so the JSON decodes to the same value.
                #expect(try JSONCoding.decoder.decode(ObjectUploaded.self, from: Data(event.logJSON().utf8)) == event)
            }
        }
    }

    /// Events appended from a typed payload reach inline projections typed; the JSON stays the source of truth elsewhere.
    @Test func recordedEventsDecodeFromTheTypedPayloadWhenPresent() throws {
        let event = BucketCreated(bucket: "typed", isPublic: true)
        let data = try EventData(event)
        // BucketCreated does not claim an exact round trip: it travels as JSON only.
        #expect(data.typed.value == nil)
        let upload = ObjectUploaded(bucket: "typed", key: "k", version: UUID(), size: 1, mimeType: "text/plain", etag: "\"e\"",
                                    uploadedBy: nil, uploadedAt: Date(timeIntervalSince1970: 1_795_756_100.123_456))
        let uploadData = try EventData(upload)
        #expect(uploadData.typed.value as? ObjectUploaded == upload)
        #expect(upload.uploadedAt == JSONCoding.parseTimestamp("2026-11-27T05:08:20.123Z"))
        var recorded = RecordedEvent(position: 1, streamId: "bucket-typed", streamVersion: 1, eventId: uploadData.eventId, type: uploadData.type,
                                     data: #"{"bucket":"from-json","etag":"x","key":"j","mimeType":"a/b","size":2,"version":"\#(UUID())"}"#,
                                     metadata: "{}", recordedAt: Date(), typed: uploadData.typed)
        #expect(try recorded.decode(ObjectUploaded.self) == upload)
        recorded.typed = TypedPayload()
        #expect(try recorded.decode(ObjectUploaded.self).bucket == "from-json")
        // The cache is not part of the value.
        #expect(uploadData == EventData(eventId: uploadData.eventId, type: uploadData.type, data: uploadData.data, metadata: uploadData.metadata))
    }
}
