import Actors
import Crypto
import EventStore
import Foundation
import Hummingbird
import NIOCore

/// The event log over HTTP (admin only): read, read a stream, append to a stream, export, stats.
struct EventsController {
    let store: EventStore
    let runners: [ProjectionRunner]

    func register(_ routes: RouteTable) {
        routes.add(.get, "/api/events", "Events after a position: ?after&limit&stream&type&category -> {data, nextPosition}",
                   access: .admin) { request, context in
            let after = try request.queryInt("after", default: 0, range: 0...Int64.max)
            let limit = try request.queryInt("limit", default: 100, range: 1...1000)
            let filter = try Self.filter(request)
            await store.sequencer.flush()  // what this caller wrote to tables is in the log before it reads
            let events = try await store.readAll(after: after, limit: Int(limit), filter: filter)
            let next = events.last?.position ?? after
            return .json("{\"data\":[\(events.map { $0.envelopeJSON() }.joined(separator: ","))],\"nextPosition\":\(next)}")
        }

        routes.add(.get, "/api/events/streams/:streamId", "One stream's events in version order: ?afterVersion&limit",
                   access: .admin) { request, context in
            let streamId = try Self.streamId(context)
            let after = try request.queryInt("afterVersion", default: 0, range: 0...Int64.max)
            let limit = try request.queryInt("limit", default: 1000, range: 1...10_000)
            await store.sequencer.flush()
            let events = try await store.readStream(streamId, afterVersion: after, limit: Int(limit))
            let version = events.last?.streamVersion ?? after
            return .json("""
                {"streamId":\(JSONCoding.quoted(streamId)),"version":\(version),"data":[\(events.map { $0.envelopeJSON() }.joined(separator: ","))]}
                """)
        }

        routes.add(.post, "/api/events/streams/:streamId",
                   "Append events to a stream: {events: [{type, data, eventId?}], expectedVersion?: n|any|no_stream|stream_exists}",
                   access: .admin, body: .object([
                       "events": .array(.object(["type": .string(pattern: "^[A-Z][A-Za-z0-9]{0,99}$"), "data": .object([:]),
                                                 "eventId": .string(format: "uuid")], required: ["type", "data"]), maxItems: 1000),
                       "expectedVersion": .anyOf([.integer(minimum: -1), .string(oneOf: ["any", "no_stream", "stream_exists"])])],
                                     required: ["events"])) { request, context in
            let streamId = try Self.streamId(context)
            guard !StreamID.isServerStream(streamId) else {
                throw APIError(.forbidden, "FORBIDDEN", "Streams of category \(StreamID.category(of: streamId)) are written by the server only",
                               nextActions: "Append to a category of your own (for example app-\(streamId.drop { $0 != "-" }.dropFirst()))")
            }
            var request = request
            let body = try await request.collectBody(upTo: context.maxUploadSize)
            let append = try AppendRequest.parse(Data(buffer: body), streamId: streamId,
                                                 idempotencyKey: request.headers[.idempotencyKey], metadata: context.eventMetadata)
            let result = try await store.append(append.events, to: streamId, expected: append.expected)
            return .json("""
                {"streamId":\(JSONCoding.quoted(streamId)),"positions":[\(result.positions.map(String.init).joined(separator: ","))],\
                "nextExpectedVersion":\(result.nextExpectedVersion),"duplicate":\(result.wasDuplicate)}
                """, status: .created)
        }

        routes.add(.get, "/api/events/export", "Stream the log as NDJSON (?after&format=ndjson|ndjson.lz4)", access: .admin) { request, context in
            let after = try request.queryInt("after", default: 0, range: 0...Int64.max)
            let format = request.queryString("format") ?? "ndjson"
            guard format == "ndjson" || format == "ndjson.lz4" else {
                throw APIError.invalidInput("format must be ndjson or ndjson.lz4")
            }
            let filter = try Self.filter(request)
            await store.sequencer.flush()
            let head = try await store.headPosition()
            let compressed = format == "ndjson.lz4"
            let export = LogExport(store: store, after: after, until: head, filter: filter)
            return Response(
                status: .ok,
                headers: [
                    .contentType: compressed ? "application/x-lz4" : "application/x-ndjson",
                    .contentDisposition: "attachment; filename=\"events.\(format)\"",
                ],
                body: ResponseBody { writer in
                    try await export.write(compressed: compressed) { bytes in
                        try await writer.write(ByteBuffer(bytes: bytes))
                    }
                    try await writer.finish(nil)
                })
        }

        routes.add(.get, "/api/events/stats", "Counts per category and type, head position, projection checkpoints",
                   access: .admin) { _, context in
            return try .json(encoding: try await LogStats.read(store: store, runners: runners))
        }

        routes.add(.get, "/api/events/parked", "Events a projection gave up on after repeated failures", access: .admin) { request, context in
            let limit = try request.queryInt("limit", default: 100, range: 1...1000)
            let rows = try await store.client.query("""
                SELECT projection, position, event_id, type, attempts, error, parked_at FROM system.parked_events
                ORDER BY parked_at DESC LIMIT \(limit)
                """)
            var parked: [ParkedEvent] = []
            for try await (projection, position, eventId, type, attempts, error, parkedAt)
                in rows.decode((String, Int64, UUID, String, Int32, String, Date).self) {
                parked.append(ParkedEvent(projection: projection, position: position, eventId: eventId, type: type,
                                          attempts: Int(attempts), error: error, parkedAt: parkedAt))
            }
            return try .json(encoding: ["data": parked])
        }
    }

    static func streamId(_ context: AppRequestContext) throws -> String {
        let streamId = context.parameters.get("streamId") ?? ""
        if let problem = StreamID.problem(with: streamId) { throw APIError.invalidInput(problem) }
        return streamId
    }

    static func filter(_ request: Request) throws -> EventFilter {
        var filter = EventFilter()
        if let stream = request.queryString("stream") {
            if let problem = StreamID.problem(with: stream) { throw APIError.invalidInput("stream: \(problem)") }
            filter.streamId = stream
        }
        if let type = request.queryString("type") {
            let types = type.split(separator: ",").map(String.init)
            for t in types { if let problem = StreamID.typeProblem(with: t) { throw APIError.invalidInput("type: \(problem)") } }
            filter.types = Set(types)
        }
        if let category = request.queryString("category") {
            if let problem = StreamID.categoryProblem(with: category) { throw APIError.invalidInput(problem) }
            filter.category = category
        }
        return filter
    }

    struct ParkedEvent: Encodable {
        var projection: String
        var position: Int64
        var eventId: UUID
        var type: String
        var attempts: Int
        var error: String
        var parkedAt: Date
    }
}

/// The body of an append request, validated.
struct AppendRequest {
    var events: [EventData]
    var expected: ExpectedVersion

    static func parse(_ body: Data, streamId: String, idempotencyKey: String?, metadata: EventMetadata) throws -> AppendRequest {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            throw APIError.invalidInput("The request body must be a JSON object")
        }
        guard let list = object["events"] as? [Any], !list.isEmpty else {
            throw APIError.invalidInput("events must be a non-empty array")
        }
        guard list.count <= 1000 else { throw APIError.invalidInput("events: at most 1000 per request") }
        var events: [EventData] = []
        for (index, item) in list.enumerated() {
            guard let event = item as? [String: Any] else { throw APIError.invalidInput("events[\(index)] must be an object") }
            guard let type = event["type"] as? String else { throw APIError.invalidInput("events[\(index)].type is required") }
            if let problem = StreamID.typeProblem(with: type) { throw APIError.invalidInput("events[\(index)].type: \(problem)") }
            guard let data = event["data"] as? [String: Any] else {
                throw APIError.invalidInput("events[\(index)].data must be a JSON object")
            }
            let json = String(decoding: try JSONSerialization.data(withJSONObject: data, options: [.sortedKeys, .withoutEscapingSlashes]),
                              as: UTF8.self)
            guard json.utf8.count <= 256 * 1024 else { throw APIError.invalidInput("events[\(index)].data is larger than 256 KiB") }
            let eventId: UUID
            if let raw = event["eventId"] {
                guard let s = raw as? String, let id = UUID(uuidString: s) else {
                    throw APIError.invalidInput("events[\(index)].eventId must be a UUID")
                }
                eventId = id
            } else if let idempotencyKey {
                eventId = Self.derivedId(idempotencyKey, streamId, index)
            } else {
                eventId = EventID.next()
            }
            events.append(EventData(eventId: eventId, type: type, data: json, metadata: metadata))
        }
        var expected = ExpectedVersion.any
        if let field = (try? JSONDecoder().decode(ExpectedField.self, from: body))?.expectedVersion {
            guard let value = field.value else {
                throw APIError.invalidInput("expectedVersion must be a version number >= 0, any, no_stream or stream_exists")
            }
            expected = value
        }
        return AppendRequest(events: events, expected: expected)
    }

    /// `expectedVersion`, decoded strictly (JSONDecoder tells numbers from booleans).
    private struct ExpectedField: Decodable {
        var expectedVersion: Value?

        struct Value: Decodable {
            var value: ExpectedVersion?
            init(from decoder: any Decoder) throws {
                let c = try decoder.singleValueContainer()
                if c.decodeNil() {
                    value = .any
                } else if let n = try? c.decode(Int64.self) {
                    value = n >= 0 ? .exact(n) : nil
                } else if let s = try? c.decode(String.self) {
                    value = ["any": .any, "no_stream": .noStream, "stream_exists": .streamExists][s]
                }
            }
        }
    }

    /// The same key, stream and index always give the same event id: a retried request is a no-op.
    static func derivedId(_ key: String, _ streamId: String, _ index: Int) -> UUID {
        var bytes = Array(SHA256.hash(data: Data("idempotency:\(key):\(streamId):\(index)".utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x50  // version 5 layout (name-based)
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                           bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
    }
}
