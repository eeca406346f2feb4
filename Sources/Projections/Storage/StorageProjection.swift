import EventStore
import Foundation
import PostgresNIO

/// Inline read model of storage: `storage.buckets`, `storage.objects` (the metadata that downloads,
/// lists and access policies read) and `storage.settings`.
public struct StorageProjection: Projection {
    public static let buckets = ReadModelTable(schema: "storage", name: "buckets", keyColumns: ["name"])
    public static let objects = ReadModelTable(schema: "storage", name: "objects", keyColumns: ["bucket", "key"])
    public static let settings = ReadModelTable(schema: "storage", name: "settings", keyColumns: ["id"])

    public init() {}

    public var name: String { "storage" }
    public var tables: [ReadModelTable] { [Self.buckets, Self.objects, Self.settings] }
    public var eventTypes: Set<String>? {
        [BucketCreated.type, BucketUpdated.type, BucketDeleted.type, ObjectUploaded.type, ObjectDeleted.type, StorageConfigured.type]
    }

    public func apply(_ events: [RecordedEvent], in context: ProjectionContext) async throws {
        let buckets = context.name(of: Self.buckets)
        let objects = context.name(of: Self.objects)
        let db = context.connection
        for event in events {
            let at = event.recordedAt
            switch event.type {
            case BucketCreated.type:
                let e = try event.decode(BucketCreated.self)
                try await db.query("""
                    INSERT INTO \(unescaped: buckets) (name, public, created_at, updated_at) VALUES (\(e.bucket), \(e.isPublic), \(at), \(at))
                    """, logger: context.logger)
            case BucketUpdated.type:
                let e = try event.decode(BucketUpdated.self)
                try await db.query("UPDATE \(unescaped: buckets) SET public = \(e.isPublic), updated_at = \(at) WHERE name = \(e.bucket)",
                                   logger: context.logger)
            case BucketDeleted.type:
                let e = try event.decode(BucketDeleted.self)
                try await db.query("DELETE FROM \(unescaped: objects) WHERE bucket = \(e.bucket)", logger: context.logger)
                try await db.query("DELETE FROM \(unescaped: buckets) WHERE name = \(e.bucket)", logger: context.logger)
            case ObjectUploaded.type:
                let e = try event.decode(ObjectUploaded.self)
                // The bucket must still exist: an upload racing the bucket's deletion fails here (and its bytes are dropped).
                let rows = try await db.query("""
                    INSERT INTO \(unescaped: objects) (bucket, key, version, size, mime_type, etag, uploaded_by, uploaded_at)
                    SELECT \(e.bucket), \(e.key), \(e.version), \(e.size), \(e.mimeType), \(e.etag), \(e.uploadedBy), \(e.uploadedAt ?? at)
                      FROM \(unescaped: buckets) WHERE name = \(e.bucket)
                    ON CONFLICT (bucket, key) DO UPDATE SET version = excluded.version, size = excluded.size,
                        mime_type = excluded.mime_type, etag = excluded.etag, uploaded_by = excluded.uploaded_by,
                        uploaded_at = excluded.uploaded_at
                    RETURNING 1
                    """, logger: context.logger)
                var stored = false
                for try await _ in rows { stored = true }
                if !stored { throw StorageProjectionError.bucketMissing(e.bucket) }
            case ObjectDeleted.type:
                let e = try event.decode(ObjectDeleted.self)
                try await db.query("DELETE FROM \(unescaped: objects) WHERE bucket = \(e.bucket) AND key = \(e.key) AND version = \(e.version)",
                                   logger: context.logger)
            case StorageConfigured.type:
                let e = try event.decode(StorageConfigured.self)
                try await db.query("""
                    INSERT INTO \(unescaped: context.name(of: Self.settings)) (id, max_file_size, updated_at) VALUES (1, \(e.maxFileSize), \(at))
                    ON CONFLICT (id) DO UPDATE SET max_file_size = excluded.max_file_size, updated_at = excluded.updated_at
                    """, logger: context.logger)
            default:
                continue
            }
        }
    }
}

/// Why an event could not be applied to the storage read model.
public enum StorageProjectionError: Error, Equatable {
    /// An upload arrived for a bucket that no longer exists.
    case bucketMissing(String)
}
