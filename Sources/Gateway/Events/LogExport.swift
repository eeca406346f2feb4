import EventStore

/// Writes the log as NDJSON (optionally an LZ4 frame) page by page: memory stays at one page
/// whatever the log's size. Used by `GET /api/events/export` and `insforge events export`.
public struct LogExport: Sendable {
    let store: EventStore
    let after: Int64
    let until: Int64
    let filter: EventFilter
    let pageSize = 5000

    public init(store: EventStore, after: Int64, until: Int64, filter: EventFilter = .all) {
        self.store = store
        self.after = after
        self.until = until
        self.filter = filter
    }

    /// Sends the bytes to `sink` in chunks; `progress` gets the last position written.
    public func write(compressed: Bool, progress: (Int64) -> Void = { _ in },
                      to sink: ([UInt8]) async throws -> Void) async throws {
        let encoder = compressed ? try LZ4FrameEncoder() : nil
        if let encoder { try await sink(try encoder.begin()) }
        var cursor = after
        var filter = self.filter
        filter.until = until
        while cursor < until {
            let page = try await store.readAll(after: cursor, limit: pageSize, filter: filter)
            guard let last = page.last else { break }
            var chunk: [UInt8] = []
            chunk.reserveCapacity(page.count * 256)
            for event in page {
                chunk.append(contentsOf: event.envelopeJSON().utf8)
                chunk.append(0x0A)
            }
            let out = try encoder?.update(chunk) ?? chunk
            if !out.isEmpty { try await sink(out) }
            cursor = last.position
            progress(cursor)
        }
        if let encoder { try await sink(try encoder.end()) }
    }
}
