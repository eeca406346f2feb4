import EventStore
import Foundation
import Hummingbird

/// `GET /api/metadata/api-key|anon-key` and `POST /api/secrets/api-key/rotate|anon-key/rotate` (admin).
struct KeysController {
    let issuer: KeyIssuer

    func register(_ routes: RouteTable) {
        routes.add(.get, "/api/metadata/api-key", "The admin API key", access: .admin) { _, context in
            return try .json(encoding: ["apiKey": try await key(.admin)])
        }
        routes.add(.get, "/api/metadata/anon-key", "The anon key", access: .admin) { _, context in
            return try .json(encoding: ["anonKey": try await key(.anon)])
        }
        routes.add(.post, "/api/secrets/api-key/rotate", "Rotate the admin API key (the old one stays valid for a grace period)",
                   access: .admin) { _, context in
            let (key, until) = try await issuer.rotate(.admin, metadata: context.eventMetadata)
            return try .json(encoding: Rotated(apiKey: key, anonKey: nil, previousKeyValidUntil: until))
        }
        routes.add(.post, "/api/secrets/anon-key/rotate", "Rotate the anon key (the old one stays valid for a grace period)",
                   access: .admin) { _, context in
            let (key, until) = try await issuer.rotate(.anon, metadata: context.eventMetadata)
            return try .json(encoding: Rotated(apiKey: nil, anonKey: key, previousKeyValidUntil: until))
        }
    }

    private func key(_ kind: ApiKeyKind) async throws -> String {
        guard let key = try await issuer.currentKey(kind) else { throw APIError.notFound("No \(kind.rawValue) key has been issued") }
        return key
    }

    struct Rotated: Encodable {
        var apiKey: String?
        var anonKey: String?
        var previousKeyValidUntil: Date
    }
}

extension AppRequestContext {
    /// Event metadata for what this request appends: the caller, the request id, the client IP.
    var eventMetadata: EventMetadata {
        let actor: EventMetadata.Actor = switch credential {
        case .admin: .init(type: .admin)
        case .anon, .none: .init(type: .anon)
        case .token(let subject) where subject.role == "project_admin": .init(type: .admin, id: subject.id)
        case .token(let subject) where subject.role == "authenticated": .init(type: .user, id: subject.id)
        case .token: .init(type: .anon)
        }
        return EventMetadata(actor: actor, requestId: requestId, correlationId: requestId, clientIp: clientIP)
    }
}
