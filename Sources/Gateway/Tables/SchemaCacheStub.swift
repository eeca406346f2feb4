// TEMPORARY until the records catalog lands.
public final class SchemaCache: Sendable {
    public init() {}
    public func reload() async throws {}
}
