import Foundation
import Hummingbird
import NIOCore

/// Where one upload's bytes are: `<bucket>/<key>/<version>` with the provider. A version is fresh
/// per upload, so writing never disturbs the bytes the current metadata points at.
struct BlobLocation: Sendable, Hashable {
    var bucket: String
    var key: String
    var version: UUID

    /// The provider-relative path (the key is already checked by `StorageNames.keyProblem`).
    var path: String { "\(bucket)/\(key)/\(version.uuidString.lowercased())" }

    /// Reads a provider-relative path back (nil: not one of ours).
    init?(path: String) {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 3, let version = UUID(uuidString: String(parts[parts.count - 1])) else { return nil }
        self.init(bucket: String(parts[0]), key: parts[1..<(parts.count - 1)].joined(separator: "/"), version: version)
    }

    init(bucket: String, key: String, version: UUID) {
        self.bucket = bucket
        self.key = key
        self.version = version
    }
}

/// An upload in progress: bytes go in with `write`; nothing is visible until `commit`, and `abort`
/// leaves nothing behind. Used by one task at a time.
protocol BlobWriter: AnyObject {
    func write(_ buffer: ByteBuffer) async throws
    /// Makes the bytes visible at the writer's location.
    func commit() async throws
    /// Drops what was written (never throws; a failure leaves an orphan for the sweeper).
    func abort() async
}

/// What a provider knows of stored bytes.
struct BlobInfo: Sendable {
    var size: Int64
    var etag: String?
    var contentType: String?
    var lastModified: Date?
}

/// A form upload straight to the provider (S3's POST policy).
struct PresignedPost: Sendable {
    var url: String
    var fields: [String: String]
    var expiresAt: Date
}

/// Where object bytes are kept: the local folder or an S3-compatible service.
protocol StorageProvider: Sendable {
    /// `local` or `s3`.
    var name: String { get }
    /// Starts an upload to `blob` (`contentType` is known from the first bytes; `size` when the
    /// request declared its length).
    func writer(for blob: BlobLocation, contentType: String, size: Int64?) async throws -> any BlobWriter
    /// The bytes of `blob` in `range` (all of them when nil), streamed.
    func read(_ blob: BlobLocation, range: ClosedRange<Int64>?) async throws -> ResponseBody
    /// Removes blobs (absent ones are not an error).
    func delete(_ blobs: [BlobLocation]) async throws
    /// Every stored blob last written before `before`, for the orphan sweep.
    func blobs(writtenBefore before: Date) async throws -> [BlobLocation]
    /// Drops uploads begun before `before` and never finished (S3 multipart uploads); returns how many.
    func abortIncompleteUploads(startedBefore before: Date) async throws -> Int
    /// What is stored at `blob`, if anything (confirming a direct-to-provider upload).
    func info(_ blob: BlobLocation) async throws -> BlobInfo?
    /// The first bytes of `blob` (to sniff a direct upload's type).
    func head(_ blob: BlobLocation, bytes: Int) async throws -> [UInt8]
    /// A URL that reads `blob` without our credentials (nil: downloads go through the API).
    func downloadURL(_ blob: BlobLocation, fileName: String, expiresIn: Int) -> String?
    /// A form upload straight to the provider (nil: uploads go through the API).
    func presignedPost(_ blob: BlobLocation, contentType: String, maxSize: Int64, expiresIn: Int) -> PresignedPost?
    /// Blobs uploaded straight to the provider under `bucket/key/`, newest first.
    func pendingUploads(bucket: String, key: String) async throws -> [BlobLocation]
}

/// A provider's failure, reported as 502 (or 503 when it is only overloaded) without its internals.
struct StorageProviderError: Error, CustomStringConvertible {
    var message: String
    /// Too many requests already waiting for the provider: worth retrying shortly.
    var busy = false
    var description: String { message }
}
