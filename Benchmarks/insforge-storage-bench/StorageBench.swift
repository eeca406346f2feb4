import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore

/// Load figures for storage (issue 6), against running servers over the network:
///   1. one large object (100 MB) uploaded and downloaded through the API: MB/s and the server's RSS growth;
///   2. many small (10 KB) uploads from 1,000 concurrent workers, with the admin key and with user tokens;
/// for a server on the local provider and one on the S3 provider, next to the baselines measured by
/// `scripts/bench-storage.sh` in the same run (raw disk with `dd`, the S3 server straight with boto3).
/// MB means 2^20 bytes throughout.
@main
struct StorageBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "insforge-storage-bench")

    @Option(help: "Base URL of our server on the local provider (empty to skip).") var localURL = ""
    @Option(help: "Pid of that server (for its RSS).") var localPid: Int32?
    @Option(help: "Base URL of our server on the S3 provider (empty to skip).") var s3URL = ""
    @Option(help: "Pid of that server (for its RSS).") var s3Pid: Int32?
    @Option(help: "The admin API key (the same on both servers).") var apiKey: String
    @Option(help: "Bucket to create and use.") var bucket = "bench"
    @Option(help: "Size of the large object, in MB.") var largeMB = 100
    @Option(help: "Large uploads and downloads, each.") var repeats = 3
    @Option(help: "Concurrent workers of the small-upload runs.") var workers = 1000
    @Option(help: "Uploads per worker.") var rounds = 5
    @Option(help: "Size of a small object, in KB (2^10 bytes).") var smallKB = 10
    @Option(help: "Users signed up for the user-token run (0 to skip it).") var users = 10
    @Option(name: .customLong("disk-write-mbps"), help: "Baseline: raw disk write of the large object with dd, MB/s.") var diskWriteMBps: Double?
    @Option(name: .customLong("disk-read-mbps"), help: "Baseline: raw disk read of the large object with dd, MB/s.") var diskReadMBps: Double?
    @Option(name: .customLong("s3-direct-put-mbps"), help: "Baseline: put_object of the large object straight to the S3 server, MB/s.") var s3DirectPutMBps: Double?
    @Option(name: .customLong("s3-direct-get-mbps"), help: "Baseline: get_object of the large object straight from the S3 server, MB/s.") var s3DirectGetMBps: Double?
    @Option(help: "Baseline: small put_objects per second straight to the S3 server.") var s3DirectPutsPerSecond: Double?

    func validate() throws {
        guard largeMB > 0, repeats > 0, workers > 0, rounds > 0, smallKB > 0, users >= 0 else {
            throw ValidationError("sizes and counts must be positive")
        }
        guard !localURL.isEmpty || !s3URL.isEmpty else { throw ValidationError("give --local-url, --s3-url or both") }
    }

    func run() async throws {
        raiseFileLimit()
        let bench = Bench(apiKey: apiKey, bucket: bucket, smallSize: smallKB << 10, workers: workers, rounds: rounds)
        print("== payload: \(largeMB) MB of random bytes in memory, sent in 1 MB chunks")
        let payload = Payload(size: largeMB << 20)

        var sections: [Section] = []
        let targets: [(name: String, url: String, pid: Int32?, write: Double?, read: Double?, puts: Double?)] = [
            ("local", localURL, localPid, diskWriteMBps, diskReadMBps, nil),
            ("s3", s3URL, s3Pid, s3DirectPutMBps, s3DirectGetMBps, s3DirectPutsPerSecond),
        ]
        for target in targets where !target.url.isEmpty {
            print("== \(target.name) provider: \(target.url)")
            var section = Section(provider: target.name, writeBaseline: target.write, readBaseline: target.read, putsBaseline: target.puts)
            do {
                try await bench.prepare(base: target.url)
            } catch {
                print("  preparing \(target.url) failed: \(error)")
                sections.append(section)
                continue
            }
            for i in 1...repeats {
                let key = "large/\(UInt32.random(in: 0...UInt32.max))-\(i).bin"
                let up = await bench.upload(base: target.url, key: key, payload: payload, pid: target.pid)
                print("  upload \(i): \(up.line)")
                section.uploads.append(up)
                let down = await bench.download(base: target.url, key: key, expected: payload.size, pid: target.pid)
                print("  download \(i): \(down.line)")
                section.downloads.append(down)
            }
            let admin = await bench.smallUploads(base: target.url, label: "admin", tokens: [apiKey])
            print("  small uploads, admin key: \(admin.line)")
            section.small.append(admin)
            if users > 0 {
                do {
                    let tokens = try await bench.signUpUsers(base: target.url, count: users)
                    let run = await bench.smallUploads(base: target.url, label: "\(users) users", tokens: tokens)
                    print("  small uploads, \(users) user tokens: \(run.line)")
                    section.small.append(run)
                } catch {
                    print("  signing up users failed: \(error)")
                }
            }
            sections.append(section)
        }
        await bench.shutdown()
        Report(sections: sections, largeMB: largeMB, smallKB: smallKB, uploads: workers * rounds, workers: workers).print()
    }

    func raiseFileLimit() {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}

/// The figures of one provider, with the baselines to compare them with.
struct Section {
    var provider: String
    var writeBaseline: Double?
    var readBaseline: Double?
    var putsBaseline: Double?
    var uploads: [Transfer] = []
    var downloads: [Transfer] = []
    var small: [SmallRun] = []
}
