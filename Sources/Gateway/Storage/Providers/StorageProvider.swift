import Actors
import Foundation
import Hummingbird
import Logging
import NIOCore

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
protocol StorageProvider: StoredBlobs {
    /// `local` or `s3`.
    var name: String { get }
    /// Starts an upload to `blob` (`contentType` is known from the first bytes; `size` when the
    /// request declared its length).
    func writer(for blob: BlobLocation, contentType: String, size: Int64?) async throws -> any BlobWriter
    /// The bytes of `blob` in `range` (all of them when nil), streamed.
    func read(_ blob: BlobLocation, range: ClosedRange<Int64>?) async throws -> ResponseBody
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

/// The provider chosen by the configuration: S3 when `AWS_S3_BUCKET` is set, else the local folder.
func makeStorageProvider(_ configuration: ServerConfiguration, logger: Logger) throws -> any StorageProvider {
    if let s3 = configuration.s3 { return try S3StorageProvider(settings: s3, logger: logger) }
    return try LocalStorageProvider(root: configuration.storageDirectory.path)
}
