import AsyncHTTPClient
import Foundation
import NIOCore

/// The large object: random bytes generated once, held as 1 MB slices of one buffer (no copies when sent).
struct Payload: Sendable {
    static let chunkSize = 1 << 20
    let size: Int
    let chunks: ChunkSequence

    init(size: Int) {
        var buffer = ByteBufferAllocator().buffer(capacity: size)
        // splitmix64 from a random seed: fast, and incompressible enough for a transfer benchmark.
        var state = UInt64.random(in: .min ... .max)
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
            for offset in stride(from: 0, to: size & ~7, by: 8) { raw.storeBytes(of: next(), toByteOffset: offset, as: UInt64.self) }
            for offset in (size & ~7)..<size { raw[offset] = UInt8(truncatingIfNeeded: next()) }
            return size
        }
        self.size = size
        self.chunks = ChunkSequence(chunks: stride(from: 0, to: size, by: Self.chunkSize).compactMap {
            buffer.getSlice(at: $0, length: min(Self.chunkSize, size - $0))
        })
    }
}

/// An in-memory list of buffers as the `AsyncSequence` a streamed request body reads.
struct ChunkSequence: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let chunks: [ByteBuffer]

    struct AsyncIterator: AsyncIteratorProtocol {
        var remaining: ArraySlice<ByteBuffer>
        mutating func next() async -> ByteBuffer? { remaining.popFirst() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(remaining: chunks[...]) }
}

/// One large upload or download.
struct Transfer {
    var bytes = 0
    var seconds = Double.nan
    /// The server's RSS growth during the transfer (peak minus before), in MB; nil without a pid.
    var rssGrowthMB: Double?
    var rssSamples = 0
    /// Why it failed; nil when it worked.
    var error: String?

    var mbPerSecond: Double { error == nil ? Double(bytes) / Double(1 << 20) / seconds : .nan }

    var line: String {
        if let error { return "FAILED: \(error)" }
        let rss = rssGrowthMB.map { String(format: "; server RSS +%.1f MB (%d samples)", $0, rssSamples) } ?? ""
        return String(format: "%.1f MB in %.3f s = %.0f MB/s", Double(bytes) / Double(1 << 20), seconds, mbPerSecond) + rss
    }
}

/// One run of concurrent small uploads.
struct SmallRun {
    var label: String
    var uploads = 0
    var errors = 0
    var seconds = Double.nan
    var p50 = Double.nan
    var p99 = Double.nan
    /// The first few failures, as printed.
    var samples: [String] = []

    var perSecond: Double { Double(uploads - errors) / seconds }

    var line: String {
        String(format: "%d uploads (%d errors) in %.2f s = %.0f uploads/s; latency p50 %.1f ms, p99 %.1f ms",
               uploads, errors, seconds, perSecond, p50, p99)
    }
}

/// The HTTP side: one client with a pool large enough for every worker of a small-upload run.
final class Bench: Sendable {
    let apiKey: String
    let bucket: String
    let smallSize: Int
    let workers: Int
    let rounds: Int
    let client: HTTPClient

    init(apiKey: String, bucket: String, smallSize: Int, workers: Int, rounds: Int) {
        self.apiKey = apiKey
        self.bucket = bucket
        self.smallSize = smallSize
        self.workers = workers
        self.rounds = rounds
        client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: .init(timeout: .init(connect: .seconds(30), read: .seconds(300)),
                                 connectionPool: .init(idleTimeout: .seconds(120),
                                                       concurrentHTTP1ConnectionsPerHostSoftLimit: max(workers, 8))))
    }

    func shutdown() async { try? await client.shutdown() }

    func objectURL(_ base: String, _ key: String) -> String { "\(base)/api/storage/buckets/\(bucket)/objects/\(key)" }

    // MARK: setup

    /// Waits for the server's health check, then creates the bucket (an existing one is fine).
    func prepare(base: String) async throws {
        var healthy = false
        for _ in 0..<150 where !healthy {
            let response = try? await client.execute(HTTPClientRequest(url: base + "/api/health"), timeout: .seconds(5))
            healthy = response?.status == .ok
            if !healthy { try await Task.sleep(for: .milliseconds(200)) }
        }
        guard healthy else { throw BenchError("\(base)/api/health never answered 200") }
        let (status, text) = try await postJSON(base + "/api/storage/buckets", token: apiKey,
                                                body: ["bucketName": bucket, "isPublic": false])
        guard status == 201 || status == 409 else { throw BenchError("creating bucket \(bucket): \(status) \(text)") }
    }

    /// Signs up `count` fresh users (mobile clients, so the access token is in the body) and returns their tokens.
    func signUpUsers(base: String, count: Int) async throws -> [String] {
        let run = UInt32.random(in: 0...UInt32.max)
        var tokens: [String] = []
        for i in 0..<count {
            let (status, text) = try await postJSON(base + "/api/auth/users?client_type=mobile", token: nil,
                                                    body: ["email": "bench-\(run)-\(i)@example.com", "password": "Bench-password-\(run)"])
            guard (200..<300).contains(status),
                  let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                  let token = object["accessToken"] as? String
            else { throw BenchError("sign-up \(i): \(status) \(text)") }
            tokens.append(token)
        }
        return tokens
    }

    func postJSON(_ url: String, token: String?, body: [String: any Sendable]) async throws -> (Int, String) {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        let response = try await client.execute(request, timeout: .seconds(60))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        return (Int(response.status.code), text)
    }

    // MARK: large object

    /// PUTs the payload as a raw body streamed in 1 MB chunks, sampling the server's RSS meanwhile.
    func upload(base: String, key: String, payload: Payload, pid: Int32?) async -> Transfer {
        var request = HTTPClientRequest(url: objectURL(base, key))
        request.method = .PUT
        request.headers.add(name: "Authorization", value: "Bearer \(apiKey)")
        request.headers.add(name: "Content-Type", value: "application/octet-stream")
        request.body = .stream(payload.chunks, length: .known(Int64(payload.size)))
        let sampler = pid.map(RSSSampler.start)
        let started = ContinuousClock.now
        var transfer = Transfer(bytes: payload.size)
        do {
            let response = try await client.execute(request, timeout: .seconds(600))
            let body = try await response.body.collect(upTo: 1 << 20)
            transfer.seconds = (ContinuousClock.now - started).inSeconds
            if !(200..<300).contains(response.status.code) {
                transfer.error = "PUT \(key): \(response.status.code) \(String(buffer: body))"
            }
        } catch {
            transfer.error = "PUT \(key): \(error)"
        }
        if let sampler { (transfer.rssGrowthMB, transfer.rssSamples) = await sampler.stop() }
        return transfer
    }

    /// GETs the object and counts its bytes without keeping them, sampling the server's RSS meanwhile.
    func download(base: String, key: String, expected: Int, pid: Int32?) async -> Transfer {
        var request = HTTPClientRequest(url: objectURL(base, key))
        request.headers.add(name: "Authorization", value: "Bearer \(apiKey)")
        let sampler = pid.map(RSSSampler.start)
        let started = ContinuousClock.now
        var transfer = Transfer()
        do {
            let response = try await client.execute(request, timeout: .seconds(600))
            if response.status == .ok {
                for try await chunk in response.body { transfer.bytes += chunk.readableBytes }
                transfer.seconds = (ContinuousClock.now - started).inSeconds
                if transfer.bytes != expected { transfer.error = "GET \(key): \(transfer.bytes) bytes, expected \(expected)" }
            } else {
                let body = try await response.body.collect(upTo: 1 << 20)
                transfer.error = "GET \(key): \(response.status.code) \(String(buffer: body))"
            }
        } catch {
            transfer.error = "GET \(key): \(error)"
        }
        if let sampler { (transfer.rssGrowthMB, transfer.rssSamples) = await sampler.stop() }
        return transfer
    }

    // MARK: small objects

    /// `workers` concurrent workers, each doing one untimed warm-up upload (opening its connection),
    /// then `rounds` timed ones, with the tokens handed out round-robin; distinct keys throughout.
    func smallUploads(base: String, label: String, tokens: [String]) async -> SmallRun {
        let body = ByteBuffer(bytes: (0..<smallSize).map { _ in UInt8.random(in: 0...255) })
        let run = "\(UInt32.random(in: 0...UInt32.max))"
        let workers = self.workers, rounds = self.rounds
        let start = Gate()

        struct Outcome: Sendable {
            var latencies: [Double] = []
            var errors = 0
            var samples: [String] = []
        }
        return await withTaskGroup(of: Outcome.self) { group in
            for worker in 0..<workers {
                let token = tokens[worker % tokens.count]
                group.addTask {
                    var outcome = Outcome()
                    func put(_ key: String) async -> String? {
                        var request = HTTPClientRequest(url: self.objectURL(base, key))
                        request.method = .PUT
                        request.headers.add(name: "Authorization", value: "Bearer \(token)")
                        request.headers.add(name: "Content-Type", value: "application/octet-stream")
                        request.body = .bytes(body)
                        do {
                            let response = try await self.client.execute(request, timeout: .seconds(120))
                            let text = try await response.body.collect(upTo: 1 << 20)
                            return (200..<300).contains(response.status.code) ? nil
                                : "PUT \(key): \(response.status.code) \(String(buffer: text).prefix(300))"
                        } catch {
                            return "PUT \(key): \(error)"
                        }
                    }
                    _ = await put("small/\(run)/warmup-\(worker)")
                    await start.wait()
                    for round in 0..<rounds {
                        let began = ContinuousClock.now
                        let failure = await put("small/\(run)/\(worker)-\(round)")
                        outcome.latencies.append((ContinuousClock.now - began).inSeconds * 1000)
                        if let failure {
                            outcome.errors += 1
                            if outcome.samples.isEmpty { outcome.samples.append(failure) }
                        }
                    }
                    return outcome
                }
            }
            // Every worker has a connection: start the clock and release them together.
            while await start.waiting < workers { try? await Task.sleep(for: .milliseconds(5)) }
            let began = ContinuousClock.now
            await start.open()
            var total = Outcome()
            for await outcome in group {
                total.latencies += outcome.latencies
                total.errors += outcome.errors
                if total.samples.count < 5 { total.samples += outcome.samples }
            }
            let seconds = (ContinuousClock.now - began).inSeconds
            let sorted = total.latencies.sorted()
            for sample in total.samples.prefix(5) { print("    error: \(sample)") }
            return SmallRun(label: label, uploads: workers * rounds, errors: total.errors, seconds: seconds,
                            p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), samples: Array(total.samples.prefix(5)))
        }
    }
}

/// Holds workers until it is opened.
actor Gate {
    private var isOpen = false
    private var waiters: [CheckedContinuation<Void, Never>] = []
    /// How many are waiting.
    var waiting: Int { waiters.count }

    func wait() async {
        if isOpen { return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func open() {
        isOpen = true
        for waiter in waiters { waiter.resume() }
        waiters = []
    }
}

/// Samples a process's resident set (VmRSS of /proc/<pid>/status) every 20 ms until stopped.
struct RSSSampler {
    let beforeKB: Int?
    let task: Task<(peakKB: Int, samples: Int), Never>

    static func start(pid: Int32) -> RSSSampler {
        let before = rssKB(pid)
        let task = Task.detached(priority: .high) {
            var peak = before ?? 0, samples = 0
            repeat {
                if let kb = rssKB(pid) {
                    peak = max(peak, kb)
                    samples += 1
                }
            } while (try? await Task.sleep(for: .milliseconds(20))) != nil
            return (peakKB: peak, samples: samples)
        }
        return RSSSampler(beforeKB: before, task: task)
    }

    /// Stops sampling (after one last sample); the growth in MB and the number of samples.
    func stop() async -> (Double?, Int) {
        task.cancel()
        let (peak, samples) = await task.value
        guard let beforeKB else { return (nil, samples) }
        return (Double(peak - beforeKB) / 1024, samples)
    }

    /// VmRSS in kB, read straight from procfs (nil when the process is gone).
    static func rssKB(_ pid: Int32) -> Int? {
        let fd = open("/proc/\(pid)/status", O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 8192)
        let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        let text = String(decoding: bytes[..<count], as: UTF8.self)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
        return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap { Int($0) }
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension Duration {
    var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// The value at fraction `p` of sorted values (NaN when empty).
func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

/// The median of values (NaN when empty).
func median(_ values: [Double]) -> Double {
    let sorted = values.filter { !$0.isNaN }.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}
