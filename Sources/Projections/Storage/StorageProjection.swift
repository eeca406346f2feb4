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
        // Uploads in a row (what a busy group commit brings) go in as one statement.
        var uploads: [(ObjectUploaded, Date)] = []
        for event in events {
            if event.type == ObjectUploaded.type {
                uploads.append((try event.decode(ObjectUploaded.self), event.recordedAt))
                continue
            }
            try await insert(uploads, in: context)
            uploads.removeAll()
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
        try await insert(uploads, in: context)
    }

    /// Upserts the objects of consecutive uploads in one statement. The last upload of a key wins
    /// (one statement may not touch a row twice). Every bucket must still exist: an upload racing
    /// its bucket's deletion fails here, and the store then retries the commands one by one, so
    /// only that upload fails (and its bytes are dropped).
    private func insert(_ uploads: [(ObjectUploaded, Date)], in context: ProjectionContext) async throws {
        guard !uploads.isEmpty else { return }
        var seen = Set<[String]>()
        let latest = uploads.reversed().filter { seen.insert([$0.0.bucket, $0.0.key]).inserted }
        let none = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        let rows = try await context.connection.query("""
            INSERT INTO \(unescaped: context.name(of: Self.objects)) (bucket, key, version, size, mime_type, etag, uploaded_by, uploaded_at)
            SELECT u.bucket, u.key, u.version, u.size, u.mime_type, u.etag, nullif(u.uploaded_by, \(none)), u.uploaded_at
              FROM unnest(\(latest.map(\.0.bucket)), \(latest.map(\.0.key)), \(latest.map(\.0.version)), \(latest.map(\.0.size)),
                          \(latest.map(\.0.mimeType)), \(latest.map(\.0.etag)), \(latest.map { $0.0.uploadedBy ?? none }),
                          \(latest.map { $0.0.uploadedAt ?? $0.1 }))
                   AS u(bucket, key, version, size, mime_type, etag, uploaded_by, uploaded_at)
              JOIN \(unescaped: context.name(of: Self.buckets)) b ON b.name = u.bucket
            ON CONFLICT (bucket, key) DO UPDATE SET version = excluded.version, size = excluded.size,
                mime_type = excluded.mime_type, etag = excluded.etag, uploaded_by = excluded.uploaded_by,
                uploaded_at = excluded.uploaded_at
            RETURNING bucket
            """, logger: context.logger)
        var stored = Set<String>()
        for try await bucket in rows.decode(String.self) { stored.insert(bucket) }
        if let missing = latest.first(where: { !stored.contains($0.0.bucket) }) { throw StorageProjectionError.bucketMissing(missing.0.bucket) }
    }
}

/// Why an event could not be applied to the storage read model.
public enum StorageProjectionError: Error, Equatable {
    /// An upload arrived for a bucket that no longer exists.
    case bucketMissing(String)
}
