import Logging
import PostgresNIO

extension EventStore {
    /// Appends `event` on `connection`, inside the caller's own transaction, with `system.write_event`:
    /// for changes that are themselves a PostgreSQL transaction (DDL, a caller's SQL), so the event
    /// commits or rolls back with them. Commands otherwise append through `append`.
    public static func write<E: DomainEvent>(_ event: E, to stream: String, metadata: EventMetadata, on connection: PostgresConnection,
                                             logger: Logger) async throws {
        let data = try JSONCoding.encodeString(event)
        try await connection.query("""
            SELECT system.write_event(\(EventID.next()), \(stream), \(E.type), \(data)::jsonb, \(metadata.json)::jsonb)
            """, logger: logger)
    }
}
