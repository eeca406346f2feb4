import EventStore
import Foundation

/// Changes to how sign-in works: the auth settings and the OAuth providers' stored configuration.
/// The only code that appends their events (`authconfig-main`, `oauthprovider-<name>`).
struct AuthSettingsCommands: Sendable {
    let store: EventStore

    /// Merges `patch` into `current` (fields not sent keep their value), checks the result and appends
    /// it; returns the new settings.
    func change(_ current: AuthSettings, patch: [String: JSONValue], metadata: EventMetadata) async throws -> AuthSettings {
        let known = Set(AuthSettings.CodingKeys.allCases.map(\.rawValue))
        if let unknown = patch.keys.sorted().first(where: { !known.contains($0) }) {
            throw DomainError.invalidInput("\(unknown) is not an auth setting")
        }
        guard case .object(var merged) = try JSONCoding.decoder.decode(JSONValue.self, from: JSONCoding.encoder.encode(current)) else {
            throw DomainError.invalidInput("the current settings could not be read")
        }
        for (key, value) in patch { merged[key] = value }
        let settings = try JSONCoding.decoder.decode(AuthSettings.self, from: JSONCoding.encoder.encode(JSONValue.object(merged)))
        if let problem = settings.problem { throw DomainError.invalidInput(problem) }
        let document = try JSONCoding.decoder.decode(JSONValue.self, from: JSONCoding.encoder.encode(settings))
        try await store.append([try EventData(AuthConfigChanged(settings: document), metadata: metadata)], to: "authconfig-main")
        return settings
    }

    /// Stores a provider's configuration (its client secret already sealed in `configured`).
    func configure(_ configured: OAuthProviderConfigured, metadata: EventMetadata) async throws {
        try await store.append([try EventData(configured, metadata: metadata)], to: Self.stream(configured.provider))
    }

    /// Removes a provider's stored configuration (the environment's, if any, applies again).
    func remove(provider: String, metadata: EventMetadata) async throws {
        try await store.append([try EventData(OAuthProviderRemoved(provider: provider), metadata: metadata)], to: Self.stream(provider))
    }

    static func stream(_ provider: String) -> String { "oauthprovider-\(provider)" }
}
