import Foundation

// Storage events, all on `bucket-<name>`: the bucket's own and those of its objects, so one stream
// tells a bucket's whole history. The bytes are with the provider under `<bucket>/<key>/<version>`;
// the events say which version is current.

/// A bucket was created.
public struct BucketCreated: DomainEvent, Equatable {
    public static let type = "BucketCreated"
    public var bucket: String
    public var isPublic: Bool
    public init(bucket: String, isPublic: Bool) {
        self.bucket = bucket
        self.isPublic = isPublic
    }
}

/// A bucket was made public or private.
public struct BucketUpdated: DomainEvent, Equatable {
    public static let type = "BucketUpdated"
    public var bucket: String
    public var isPublic: Bool
    public init(bucket: String, isPublic: Bool) {
        self.bucket = bucket
        self.isPublic = isPublic
    }
}

/// A bucket was deleted, with every object still in it (`force`).
public struct BucketDeleted: DomainEvent, Equatable {
    public static let type = "BucketDeleted"
    public var bucket: String
    /// How many objects went with it.
    public var objectCount: Int
    public init(bucket: String, objectCount: Int) {
        self.bucket = bucket
        self.objectCount = objectCount
    }
}

/// An object's bytes were stored (a new key, or new bytes for a key): `version` names them.
public struct ObjectUploaded: DomainEvent, Equatable {
    public static let type = "ObjectUploaded"
    public var bucket: String
    public var key: String
    public var version: UUID
    public var size: Int64
    public var mimeType: String
    /// The quoted hex MD5 of the bytes (as S3 gives it for single-part objects).
    public var etag: String
    /// The user who uploaded it (nil: an admin key or the server).
    public var uploadedBy: UUID?
    /// When the upload finished, in whole milliseconds as the log keeps it; the read model's `uploaded_at`.
    public var uploadedAt: Date?
    public init(bucket: String, key: String, version: UUID, size: Int64, mimeType: String, etag: String, uploadedBy: UUID?,
                uploadedAt: Date?) {
        self.bucket = bucket
        self.key = key
        self.version = version
        self.size = size
        self.mimeType = mimeType
        self.etag = etag
        self.uploadedBy = uploadedBy
        self.uploadedAt = uploadedAt.map(JSONCoding.asLogged)
    }

    /// Dates are cut to the log's millisecond by `init`, so the JSON gives the same value back.
    public static var typedPayloadIsExact: Bool { true }

    /// What `JSONCoding.encodeString` writes (sorted keys), by hand: one of these per upload.
    public func logJSON() -> String {
        var out = "{\"bucket\":" + JSONCoding.quoted(bucket) + ",\"etag\":" + JSONCoding.quoted(etag) + ",\"key\":" + JSONCoding.quoted(key)
        out += ",\"mimeType\":" + JSONCoding.quoted(mimeType) + ",\"size\":" + String(size)
        if let uploadedAt { out += ",\"uploadedAt\":\"" + JSONCoding.timestamp(uploadedAt) + "\"" }
        if let uploadedBy { out += ",\"uploadedBy\":\"" + uploadedBy.uuidString + "\"" }
        return out + ",\"version\":\"" + version.uuidString + "\"}"
    }
}

/// An object was deleted (`version`: the bytes it had).
public struct ObjectDeleted: DomainEvent, Equatable {
    public static let type = "ObjectDeleted"
    public var bucket: String
    public var key: String
    public var version: UUID
    public init(bucket: String, key: String, version: UUID) {
        self.bucket = bucket
        self.key = key
        self.version = version
    }
}

/// An admin changed storage settings (stream `storage-settings`).
public struct StorageConfigured: DomainEvent, Equatable {
    public static let type = "StorageConfigured"
    /// Largest object accepted, in bytes.
    public var maxFileSize: Int64
    public init(maxFileSize: Int64) { self.maxFileSize = maxFileSize }
}
