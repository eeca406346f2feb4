import EventStore
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Removes bytes that no object points at: uploads whose event never made it to the log (a crash,
/// a refused append), presigned uploads never confirmed, replaced or deleted versions whose removal
/// failed. Only bytes older than the grace period are candidates, so uploads in flight are safe; one
/// node sweeps at a time (`ClusterOwnership`).
public struct OrphanSweeper: Service {
    let blobs: any StoredBlobs
    let ownership: ClusterOwnership
    let grace: Duration
    let interval: Duration
    let logger: Logger

    public init(blobs: any StoredBlobs, client: PostgresClient, grace: Duration, interval: Duration, logger: Logger) {
        self.blobs = blobs
        self.ownership = ClusterOwnership(.orphanSweep, client: client, logger: logger)
        self.grace = grace
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(min(5, interval.components.seconds))) }
        while !shutdownRequested {
            do {
                let removed = try await sweepOnce()
                if removed > 0 { logger.info("orphan sweep removed stored bytes", metadata: ["count": "\(removed)"]) }
            } catch {
                if shutdownRequested { return }
                logger.warning("orphan sweep failed", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// One pass; returns how many blobs were removed (0 when another node is sweeping).
    @discardableResult
    public func sweepOnce(now: Date = Date()) async throws -> Int {
        try await ownership.ifUnowned { connection in try await sweep(on: connection, now: now) } ?? 0
    }

    private func sweep(on connection: PostgresConnection, now: Date) async throws -> Int {
        let seconds = Double(grace.components.seconds) + Double(grace.components.attoseconds) / 1e18
        let cutoff = now.addingTimeInterval(-seconds)
        let aborted = try await blobs.abortIncompleteUploads(startedBefore: cutoff)
        let candidates = try await blobs.blobs(writtenBefore: cutoff)
        var orphans: [BlobLocation] = []
        for start in stride(from: 0, to: candidates.count, by: 1000) {
            let batch = Array(candidates[start..<min(start + 1000, candidates.count)])
            var live = Set<UUID>()
            for try await version in try await connection.query(
                "SELECT version FROM storage.objects WHERE version = ANY(\(batch.map(\.version)))", logger: logger).decode(UUID.self) {
                live.insert(version)
            }
            orphans += batch.filter { !live.contains($0.version) }
        }
        if !orphans.isEmpty { try await blobs.delete(orphans) }
        return orphans.count + aborted
    }
}
