import Foundation

/// Where one upload's bytes are: `<bucket>/<key>/<version>` with the provider. A version is fresh
/// per upload, so writing never disturbs the bytes the current metadata points at.
public struct BlobLocation: Sendable, Hashable {
    public var bucket: String
    public var key: String
    public var version: UUID

    /// The provider-relative path (the key is already checked by `StorageNames.keyProblem`).
    public var path: String { "\(bucket)/\(key)/\(version.uuidString.lowercased())" }

    /// Reads a provider-relative path back (nil: not one of ours).
    public init?(path: String) {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 3, let version = UUID(uuidString: String(parts[parts.count - 1])) else { return nil }
        self.init(bucket: String(parts[0]), key: parts[1..<(parts.count - 1)].joined(separator: "/"), version: version)
    }

    public init(bucket: String, key: String, version: UUID) {
        self.bucket = bucket
        self.key = key
        self.version = version
    }
}

/// Stored bytes as the orphan sweeper sees them; every storage provider (local folder, S3) has them.
public protocol StoredBlobs: Sendable {
    /// Removes blobs (absent ones are not an error).
    func delete(_ blobs: [BlobLocation]) async throws
    /// Every stored blob last written before `before`, for the orphan sweep.
    func blobs(writtenBefore before: Date) async throws -> [BlobLocation]
    /// Drops uploads begun before `before` and never finished (S3 multipart uploads); returns how many.
    func abortIncompleteUploads(startedBefore before: Date) async throws -> Int
}
