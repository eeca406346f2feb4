import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import Synchronization

/// What one socket does during a run.
enum SocketRole: Sendable {
    /// Connects and stays idle (the memory figure).
    case idle
    /// Subscribes and counts `tick` frames.
    case subscriber
    /// Subscribes, then publishes `tick` messages at a steady rate once `start` fires.
    case publisher(rate: Int, seconds: Int)
}

/// Shared by every socket of a run: readiness counters, the writers (to close them), the results.
final class LoadRun: Sendable {
    let connected = Atomic<Int>(0)
    let subscribed = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let publishing = Atomic<Bool>(false)
    let published = Atomic<Int>(0)
    private let writers = Mutex<[WebSocketOutboundWriter]>([])
    private let tally = Mutex<(frames: Int, latencies: [UInt64], last: UInt64)>((0, [], 0))
    let publishStarted = Atomic<UInt64>(0)
    let publishEnded = Atomic<UInt64>(0)
    /// When the last `tick` frame arrived at any socket.
    let lastFrame = Atomic<UInt64>(0)

    func add(_ writer: WebSocketOutboundWriter) { writers.withLock { $0.append(writer) } }

    func merge(frames: Int, latencies: [UInt64], last: UInt64) {
        tally.withLock { t in
            t.frames += frames
            t.latencies += latencies
            t.last = max(t.last, last)
        }
    }

    var results: (frames: Int, latencies: [UInt64], last: UInt64) { tally.withLock { $0 } }

    func closeAll() async {
        for writer in writers.withLock({ $0 }) { try? await writer.close(.normalClosure, reason: nil) }
    }
}

/// Now, in nanoseconds of the monotonic clock shared by every process on the machine.
func monotonicNanos() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// A minimal Socket.IO v5 client over a WebSocket: the open packet, CONNECT with an auth object,
/// `realtime:subscribe` with an ack, pings answered, `tick` frames counted with their latency (the
/// publisher puts its send time in the payload as `t`).
enum LoadSocket {
    static func run(base: String, auth: String, channel: String, role: SocketRole, in load: LoadRun, logger: Logger) async {
        let url = base.replacingOccurrences(of: "http://", with: "ws://") + "/socket.io/?EIO=4&transport=websocket"
        do {
            try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 20), logger: logger) { inbound, outbound, _ in
                load.add(outbound)
                var frames = 0
                var latencies: [UInt64] = []
                var last: UInt64 = 0
                var publisher: Task<Void, Never>?
                defer {
                    publisher?.cancel()
                    load.merge(frames: frames, latencies: latencies, last: last)
                }
                for try await message in inbound.messages(maxSize: 1 << 20) {
                    guard case .text(let text) = message else { continue }
                    guard let first = text.utf8.first else { continue }
                    switch first {
                    case UInt8(ascii: "2"):  // ping
                        try await outbound.write(.text("3"))
                    case UInt8(ascii: "0"):  // open
                        try await outbound.write(.text("40" + auth))
                    case UInt8(ascii: "4"):
                        if text.hasPrefix("42[\"tick\"") {
                            guard load.publishing.load(ordering: .relaxed) || load.publishEnded.load(ordering: .relaxed) > 0,
                                  let sent = sentTime(text) else { continue }
                            let now = monotonicNanos()
                            frames += 1
                            latencies.append(now &- sent)
                            last = now
                            load.lastFrame.store(now, ordering: .relaxed)
                        } else if text.hasPrefix("40") {
                            load.connected.add(1, ordering: .relaxed)
                            if case .idle = role { continue }
                            try await outbound.write(.text(#"420["realtime:subscribe",{"channel":"\#(channel)"}]"#))
                        } else if text.hasPrefix("430") {
                            guard text.contains("\"ok\":true") else {
                                load.failed.add(1, ordering: .relaxed)
                                return
                            }
                            load.subscribed.add(1, ordering: .relaxed)
                            if case .publisher(let rate, let seconds) = role {
                                publisher = Task { await publish(rate: rate, seconds: seconds, channel: channel, outbound, load) }
                            }
                        } else if text.hasPrefix("44") {
                            load.failed.add(1, ordering: .relaxed)
                            return
                        }
                    default:
                        continue
                    }
                }
            }
        } catch {
            load.failed.add(1, ordering: .relaxed)
        }
    }

    /// Waits for `publishing`, then sends `rate` messages a second for `seconds`, on a fixed schedule.
    static func publish(rate: Int, seconds: Int, channel: String, _ outbound: WebSocketOutboundWriter, _ load: LoadRun) async {
        while !load.publishing.load(ordering: .relaxed) {
            if Task.isCancelled { return }
            try? await Task.sleep(for: .milliseconds(5))
        }
        let clock = ContinuousClock()
        let start = clock.now
        let interval = Duration.seconds(1) / rate
        load.publishStarted.store(monotonicNanos(), ordering: .relaxed)
        for i in 0..<(rate * seconds) {
            try? await clock.sleep(until: start + interval * i)
            let frame = #"42["realtime:publish",{"channel":"\#(channel)","event":"tick","payload":{"t":\#(monotonicNanos()),"i":\#(i)}}]"#
            do { try await outbound.write(.text(frame)) } catch { break }
            load.published.add(1, ordering: .relaxed)
        }
        load.publishEnded.store(monotonicNanos(), ordering: .relaxed)
        load.publishing.store(false, ordering: .relaxed)
    }

    /// The digits after `"t":` in a frame.
    static func sentTime(_ text: String) -> UInt64? {
        var text = text
        return text.withUTF8 { bytes -> UInt64? in
            var i = 0
            while i + 4 <= bytes.count {
                if bytes[i] == 34, bytes[i + 1] == 116, bytes[i + 2] == 34, bytes[i + 3] == 58 {  // "t":
                    var j = i + 4
                    while j < bytes.count, bytes[j] == 32 { j += 1 }  // Postgres prints `"t": 1`
                    var value: UInt64 = 0
                    while j < bytes.count, (48...57).contains(bytes[j]) {
                        value = value * 10 + UInt64(bytes[j] - 48)
                        j += 1
                    }
                    return value
                }
                i += 1
            }
            return nil
        }
    }
}
