import EventStore
import Foundation
import PostgresNIO

/// Inline read model of auth settings: `auth.config` (one row) and `auth.oauth_configs` (one per provider).
public struct AuthSettingsProjection: Projection {
    public static let config = ReadModelTable(schema: "auth", name: "config", keyColumns: ["id"])
    public static let oauth = ReadModelTable(schema: "auth", name: "oauth_configs", keyColumns: ["provider"])

    public init() {}

    public var name: String { "auth_settings" }
    public var tables: [ReadModelTable] { [Self.config, Self.oauth] }
    public var eventTypes: Set<String>? { [AuthConfigChanged.type, OAuthProviderConfigured.type, OAuthProviderRemoved.type] }

    public func apply(_ events: [RecordedEvent], in context: ProjectionContext) async throws {
        let config = context.name(of: Self.config)
        let oauth = context.name(of: Self.oauth)
        let db = context.connection
        for event in events {
            let at = event.recordedAt
            switch event.type {
            case AuthConfigChanged.type:
                let e = try event.decode(AuthConfigChanged.self)
                try await db.query("""
                    INSERT INTO \(unescaped: config) (id, settings, updated_at) VALUES (1, \(e.settings.jsonText)::jsonb, \(at))
                    ON CONFLICT (id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at
                    """, logger: context.logger)
            case OAuthProviderConfigured.type:
                let e = try event.decode(OAuthProviderConfigured.self)
                try await db.query("""
                    INSERT INTO \(unescaped: oauth) (provider, client_id, secret_ciphertext, scopes, redirect_uri, updated_at)
                    VALUES (\(e.provider), \(e.clientId), \(e.secretCiphertext), \(e.scopes), \(e.redirectUri), \(at))
                    ON CONFLICT (provider) DO UPDATE SET client_id = excluded.client_id,
                        secret_ciphertext = excluded.secret_ciphertext, scopes = excluded.scopes,
                        redirect_uri = excluded.redirect_uri, updated_at = excluded.updated_at
                    """, logger: context.logger)
            case OAuthProviderRemoved.type:
                let e = try event.decode(OAuthProviderRemoved.self)
                try await db.query("DELETE FROM \(unescaped: oauth) WHERE provider = \(e.provider)", logger: context.logger)
            default:
                continue
            }
        }
    }
}
