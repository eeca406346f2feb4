import Logging
import Testing

@testable import Gateway

/// The server's log lines keep swift-log's `StreamLogHandler` format while formatting metadata lazily.
struct LogHandlerTests {
    @Test func linesHaveStreamLogHandlersShapeWithMetadataSortedByKey() {
        let line = StandardErrorLogHandler.line(time: "2026-11-27T13:00:00+0000", level: .warning, label: "insforge",
                                                metadata: ["request_id": "r-1", "hb.request.id": "7", "error": "x y"],
                                                source: "Gateway", message: "slow request")
        #expect(line == "2026-11-27T13:00:00+0000 warning insforge: error=x y hb.request.id=7 request_id=r-1 [Gateway] slow request\n")
        let bare = StandardErrorLogHandler.line(time: "t", level: .info, label: "", metadata: [:], source: "s", message: "m")
        #expect(bare == "t info: [s] m\n")
    }

    @Test func metadataSetOnALoggerIsKeptPerCopy() {
        var first = Logger(label: "a", factory: { StandardErrorLogHandler(label: $0, level: .critical, metadataProvider: nil) })
        var second = first
        first[metadataKey: "request_id"] = "one"
        second[metadataKey: "request_id"] = "two"
        #expect(first[metadataKey: "request_id"] == "one")
        #expect(second[metadataKey: "request_id"] == "two")
        #expect(first.logLevel == .critical)
    }
}
