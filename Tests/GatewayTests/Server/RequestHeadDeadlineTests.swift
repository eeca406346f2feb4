import NIOCore
import NIOEmbedded
import Testing
@testable import Gateway

/// The slowloris guard: a first request head that does not end in time closes the connection.
struct RequestHeadDeadlineTests {
    func channel(limit: TimeAmount = .seconds(5)) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(RequestHeadDeadlineHandler(limit: limit))
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    @Test func aHeadThatNeverEndsIsClosedAtTheDeadline() throws {
        let channel = try channel()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        try channel.writeInbound(ByteBuffer(string: "X-Slow: 1\r\n"))  // trickling bytes do not buy time
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
    }

    @Test func aCompleteHeadPassesAndTheGuardLeaves() throws {
        let channel = try channel()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r"))
        try channel.writeInbound(ByteBuffer(string: "\n\r"))
        try channel.writeInbound(ByteBuffer(string: "\nbody"))  // the blank line split across three reads
        channel.embeddedEventLoop.advanceTime(by: .seconds(60))
        #expect(channel.isActive)
        #expect(throws: (any Error).self) { try channel.pipeline.syncOperations.handler(type: RequestHeadDeadlineHandler.self) }
        var seen = ""
        while let part = try channel.readInbound(as: ByteBuffer.self) { seen += String(buffer: part) }
        #expect(seen == "GET / HTTP/1.1\r\nHost: x\r\n\r\nbody")
        _ = try? channel.finish()
    }

    @Test func headEndsAreFoundAcrossReads() {
        var tail: [UInt8] = []
        #expect(!RequestHeadDeadlineHandler.endsHead(tail: &tail, ByteBuffer(string: "a\r\n").readableBytesView))
        #expect(RequestHeadDeadlineHandler.endsHead(tail: &tail, ByteBuffer(string: "\r\n").readableBytesView))
        tail = []
        #expect(!RequestHeadDeadlineHandler.endsHead(tail: &tail, ByteBuffer(string: "\r\n\r").readableBytesView))
        #expect(!RequestHeadDeadlineHandler.endsHead(tail: &tail, ByteBuffer(string: "x\n").readableBytesView))
    }
}
