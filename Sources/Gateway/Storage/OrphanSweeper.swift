import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// The provider chosen by the configuration: S3 when `AWS_S3_BUCKET` is set, else the local folder.
func makeStorageProvider(_ configuration: ServerConfiguration, logger: Logger) throws -> any StorageProvider {
    if let s3 = configuration.s3 { return try S3StorageProvider(settings: s3, logger: logger) }
    return try LocalStorageProvider(root: configuration.storageDirectory.path)
}

/// Removes bytes that no object points at: uploads whose event never made it to the log (a crash,
/// a refused append), presigned uploads never confirmed, replaced or deleted versions whose removal
/// failed. Only bytes older than the grace period are candidates, so uploads in flight are safe; one
/// node sweeps at a time (an advisory lock).
struct OrphanSweeper: Service {
    let storage: StorageService
    let grace: Duration
    let interval: Duration
    static let lockKey: Int64 = 0x5354_4F52_4147_4531 // "STORAGE1"

    func run() async throws {
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(min(5, interval.components.seconds))) }
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let removed = try await sweepOnce()
                if removed > 0 { storage.logger.info("orphan sweep removed stored bytes", metadata: ["count": "\(removed)"]) }
            } catch {
                if Task.isShuttingDownGracefully || Task.isCancelled { return }
                storage.logger.warning("orphan sweep failed", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// One pass; returns how many blobs were removed (0 when another node holds the lock).
    @discardableResult
    func sweepOnce(now: Date = Date()) async throws -> Int {
        try await storage.client.withConnection { connection in
            var locked = false
            for try await value in try await connection.query("SELECT pg_try_advisory_lock(\(Self.lockKey))", logger: storage.logger).decode(Bool.self) {
                locked = value
            }
            guard locked else { return 0 }
            let result: Result<Int, any Error>
            do { result = .success(try await sweep(on: connection, now: now)) } catch { result = .failure(error) }
            for try await _ in try await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: storage.logger) {}
            return try result.get()
        }
    }

    private func sweep(on connection: PostgresConnection, now: Date) async throws -> Int {
        let seconds = Double(grace.components.seconds) + Double(grace.components.attoseconds) / 1e18
        let cutoff = now.addingTimeInterval(-seconds)
        let aborted = try await storage.provider.abortIncompleteUploads(startedBefore: cutoff)
        let candidates = try await storage.provider.blobs(writtenBefore: cutoff)
        var orphans: [BlobLocation] = []
        for start in stride(from: 0, to: candidates.count, by: 1000) {
            let batch = Array(candidates[start..<min(start + 1000, candidates.count)])
            var live = Set<UUID>()
            for try await version in try await connection.query(
                "SELECT version FROM storage.objects WHERE version = ANY(\(batch.map(\.version)))", logger: storage.logger).decode(UUID.self) {
                live.insert(version)
            }
            orphans += batch.filter { !live.contains($0.version) }
        }
        if !orphans.isEmpty { try await storage.provider.delete(orphans) }
        return orphans.count + aborted
    }
}
