import Foundation
import PostgresNIO
import Testing
import TestSupport

@testable import EventStore

/// The group commit binds its arrays in PostgreSQL's binary format by hand (`PackedArray`); the server
/// must read back exactly what was sent, empty arrays and multi-byte text included.
struct PackedArrayTests {
    @Test func everyElementTypeRoundTripsThroughPostgreSQL() async throws {
        try await withEventStore { store, _ in
            let id = UUID(uuidString: "0192f0c1-7a3b-7c00-8abc-0123456789ab")!
            let text: String = try await scalar(store.client, """
                SELECT concat_ws(' | ', \(PackedArray([Int64.min, 0, 42, Int64.max]))::text, \(PackedArray([Int32(-7), 1, Int32.max]))::text,
                                 \(PackedArray(["a", "", "quote\"back\\slash", "ü 𝄞 名前"]))::text, \(PackedArray([id]))::text,
                                 \(PackedArray([Int64]()))::text, cardinality(\(PackedArray([String]()))))
                """)
            #expect(text == #"{-9223372036854775808,0,42,9223372036854775807} | {-7,1,2147483647} | {a,"","quote\"back\\slash","ü 𝄞 名前"} | {0192f0c1-7a3b-7c00-8abc-0123456789ab} | {} | 0"#)
        }
    }

    /// The records API binds its parameters as one text array with NULLs (`PackedArray<String?>`).
    @Test func nullElementsArriveAsNull() async throws {
        try await withEventStore { store, _ in
            let values: [String?] = [nil, "x", nil, "", "ü"]
            let text: String = try await scalar(store.client, """
                SELECT concat_ws(' | ', a::text, array_position(a, NULL), a[4] = '', cardinality(a))
                  FROM (SELECT \(PackedArray(values)) AS a) x
                """)
            #expect(text == #"{NULL,x,NULL,"",ü} | 1 | t | 5"#)
        }
    }
}
