import EventStore
import Foundation
import Hummingbird

/// `/api/secrets` (admin): list, read, create, change and delete the project's secrets, as InsForge.
/// (`POST /api/secrets/api-key/rotate` and `/anon-key/rotate` are the keys' own, in `KeysController`.)
struct SecretsController {
    let commands: SecretCommands

    func register(_ routes: RouteTable) {
        routes.add(.get, "/api/secrets", "Every secret's metadata (never values), newest first", access: .admin) { _, _ in
            try .json(encoding: ["secrets": try await commands.list()])
        }
        routes.add(.post, "/api/secrets", "Store a secret: {key, value, isReserved?, expiresAt?} (a deleted key is revived)",
                   access: .admin, body: .object(["key": .string(pattern: "^[A-Z0-9_]+$"), "value": .text, "isReserved": .boolean,
                                                  "expiresAt": .text], required: ["key", "value"]), create)
        routes.add(.get, "/api/secrets/:key", "A secret's value: {key, value} (active and unexpired only)", access: .admin) { _, context in
            let key = context.parameters.get("key") ?? ""
            guard let value = try await commands.value(of: key) else { throw DomainError(.secretNotFound, "Secret not found: \(key)") }
            return try .json(encoding: ["key": key, "value": value])
        }
        routes.add(.put, "/api/secrets/:key", "Change a secret: {value?, isActive?, isReserved?, expiresAt?|null}", access: .admin,
                   body: .object(["value": .text, "isActive": .boolean, "isReserved": .boolean, "expiresAt": .text]), update)
        routes.add(.delete, "/api/secrets/:key", "Delete a secret (softly: storing its key again revives it)", access: .admin) { _, context in
            let key = context.parameters.get("key") ?? ""
            try await commands.delete(key: key, metadata: context.eventMetadata)
            return try .json(encoding: Done(success: true, message: "Secret \(key) has been deleted successfully"))
        }
    }

    struct Done: Encodable {
        var success: Bool
        var message: String
        var id: UUID?
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await Self.object(request, context)
        guard case .string(let key)? = body["key"], case .string(let value)? = body["value"], !key.isEmpty, !value.isEmpty else {
            throw DomainError.invalidInput("Both key and value are required")
        }
        let id = try await commands.create(key: key, value: value, isReserved: try Self.bool(body, "isReserved") ?? false,
                                           expiresAt: try Self.date(body, "expiresAt") ?? nil, metadata: context.eventMetadata)
        return try .json(encoding: Done(success: true, message: "Secret \(key) has been created successfully", id: id), status: .created)
    }

    @Sendable func update(_ request: Request, context: AppRequestContext) async throws -> Response {
        let key = context.parameters.get("key") ?? ""
        let body = try await Self.object(request, context)
        var value: String?
        switch body["value"] {
        case nil: break
        case .string(let text)? where !text.isEmpty: value = text
        default: throw DomainError.invalidInput("value must be a non-empty string")
        }
        try await commands.update(key: key, value: value, isActive: try Self.bool(body, "isActive"),
                                  isReserved: try Self.bool(body, "isReserved"), expiresAt: try Self.date(body, "expiresAt"),
                                  metadata: context.eventMetadata)
        return try .json(encoding: Done(success: true, message: "Secret \(key) has been updated successfully"))
    }

    static func object(_ request: Request, _ context: AppRequestContext) async throws -> [String: JSONValue] {
        guard case .object(let body) = try await request.decodeJSON(JSONValue.self, context: context) else {
            throw DomainError.invalidInput("body must be a JSON object")
        }
        return body
    }

    static func bool(_ body: [String: JSONValue], _ name: String) throws -> Bool? {
        switch body[name] {
        case nil, .null?: return nil
        case .bool(let value)?: return value
        default: throw DomainError.invalidInput("\(name) must be a boolean")
        }
    }

    /// Absent: nil; `null`: `.some(nil)` (clear it); an ISO 8601 time: that time.
    static func date(_ body: [String: JSONValue], _ name: String) throws -> Date?? {
        switch body[name] {
        case nil: return nil
        case .null?: return .some(nil)
        case .string(let text)?:
            guard let date = JSONCoding.parseTimestamp(text) else { throw DomainError.invalidInput("\(name) must be an ISO 8601 time") }
            return .some(date)
        default: throw DomainError.invalidInput("\(name) must be an ISO 8601 time or null")
        }
    }
}
