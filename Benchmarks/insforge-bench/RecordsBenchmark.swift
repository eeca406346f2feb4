import Gateway

/// Measures parsing plus SQL generation for a typical records read, so regressions in the hot
/// path show up as a number (`insforge-bench` can print it).
public enum RecordsBenchmark {
    /// The request measured: `GET /records/t?select=id,name,age&age=gte.18&name=ilike.*a*&order=id.desc&limit=20`.
    public static let typicalRequest = RecordsRequest(
        method: .get, target: .table("t"),
        query: [("select", "id,name,age"), ("age", "gte.18"), ("name", "ilike.*a*"), ("order", "id.desc"), ("limit", "20")])

    /// A catalog with one ten-column table `public.t`.
    public static let catalog = SchemaCatalog(tables: [
        SchemaCatalog.Table(schema: "public", name: "t", columns: [
            .init(name: "id", type: "integer", nullable: false, hasDefault: true),
            .init(name: "name", type: "text"),
            .init(name: "age", type: "integer"),
            .init(name: "email", type: "text"),
            .init(name: "created_at", type: "timestamp with time zone", hasDefault: true),
            .init(name: "score", type: "numeric"),
            .init(name: "active", type: "boolean"),
            .init(name: "data", type: "jsonb"),
            .init(name: "tags", type: "text[]"),
            .init(name: "city", type: "text"),
        ], primaryKey: ["id"]),
    ])

    /// Parses and builds `typicalRequest` repeatedly for about `seconds` on the calling thread.
    public static func run(seconds: Double) -> (queriesPerSecond: Double, sample: GeneratedSQL) {
        let request = typicalRequest
        let catalog = catalog
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + .nanoseconds(Int64(seconds * 1_000_000_000))
        var sample = GeneratedSQL(sql: "", binds: [])
        var built = 0
        repeat {
            for _ in 0..<512 {
                do {
                    sample = try RecordsSQLBuilder.build(request, catalog: catalog)
                } catch {
                    return (0, GeneratedSQL(sql: "error: \(error.message)", binds: []))
                }
                built += 1
            }
        } while clock.now < deadline
        let elapsed = start.duration(to: clock.now)
        let elapsedSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return (Double(built) / elapsedSeconds, sample)
    }
}
