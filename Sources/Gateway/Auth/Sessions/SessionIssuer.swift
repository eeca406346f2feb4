import Crypto
import EventStore
import Foundation

/// How a client keeps its refresh token: `web` in an httpOnly cookie (with a CSRF token in the body),
/// the others in the response body.
public enum ClientType: String, Sendable, CaseIterable {
    case web, mobile, desktop, server

    /// `?client_type=` (default web); 400 for an unknown value.
    static func from(query value: String?) throws -> ClientType {
        guard let value, !value.isEmpty else { return .web }
        guard let type = ClientType(rawValue: value.lowercased()) else {
            throw DomainError.invalidInput("client_type must be one of web, mobile, desktop, server")
        }
        return type
    }
}

/// A session handed to a client: access token plus the family's current refresh token.
public struct SessionGrant: Sendable {
    public var sessionId: UUID
    public var accessToken: String
    public var refreshToken: String
    public var csrfToken: String
    public var clientType: ClientType
    public var expiresAt: Date
}

/// Why a refresh was refused.
public enum RefreshRefusal: Error, Sendable, Equatable {
    /// Not a token we issued, or its session ended or expired.
    case invalid
    /// A rotated token came back: the family was revoked.
    case reused
}

/// Starts, rotates and ends session families; each step is an event on `session-<id>`.
public struct SessionIssuer: Sendable {
    let store: EventStore
    let directory: AuthDirectory
    let access: AccessTokens
    let refresh: RefreshTokens

    public init(store: EventStore, directory: AuthDirectory, access: AccessTokens, refresh: RefreshTokens) {
        self.store = store
        self.directory = directory
        self.access = access
        self.refresh = refresh
    }

    static func stream(_ session: UUID) -> String { "session-\(session.uuidString.lowercased())" }

    /// A new family for `subject` (a user id or `admin`), appended as `SessionStarted`.
    public func start(subject: String, email: String, role: String, clientType: ClientType, method: String,
                      metadata: EventMetadata) async throws -> SessionGrant {
        let session = UUID()
        let token = refresh.token(session: session, generation: 0)
        let expires = Date().addingTimeInterval(refresh.lifetime)
        let started = SessionStarted(sessionId: session, subject: subject, clientType: clientType.rawValue, method: method,
                                     tokenHash: RefreshTokens.digest(token), expiresAt: expires)
        try await store.append([try EventData(started, metadata: metadata)], to: Self.stream(session), expected: .noStream)
        return SessionGrant(sessionId: session, accessToken: try await access.issue(subject: subject, email: email, role: role),
                            refreshToken: token, csrfToken: refresh.csrf(for: token), clientType: clientType, expiresAt: expires)
    }

    /// Rotates `token`: returns the session's subject and the next token. A token older than the
    /// family's current one revokes the family (`reused`). `issue` makes the access token for the subject.
    public func rotate(_ token: String, metadata: EventMetadata,
                       issue: (_ subject: String) async throws -> (email: String, role: String)?) async throws
        -> (subject: String, grant: SessionGrant) {
        guard let (sessionId, generation) = refresh.parse(token),
              let session = try await directory.session(id: sessionId), !session.revoked, session.expiresAt > Date()
        else { throw RefreshRefusal.invalid }
        if generation < session.generation {
            try await revoke(sessionId, reason: "reuse", metadata: metadata)
            throw RefreshRefusal.reused
        }
        guard generation == session.generation, RefreshTokens.digest(token) == session.tokenHash,
              let who = try await issue(session.subject)
        else { throw RefreshRefusal.invalid }
        let next = refresh.token(session: sessionId, generation: generation + 1)
        let expires = Date().addingTimeInterval(refresh.lifetime)
        // The event id is derived from (session, generation): two concurrent refreshes with one token
        // append once and both answer with the same next token.
        let event = try EventData(eventId: Self.derivedId("refresh \(sessionId) \(generation + 1)"),
                                  SessionRefreshed(sessionId: sessionId, generation: generation + 1,
                                                   tokenHash: RefreshTokens.digest(next), expiresAt: expires),
                                  metadata: metadata)
        try await store.append([event], to: Self.stream(sessionId), expected: .streamExists)
        let clientType = ClientType(rawValue: session.clientType) ?? .web
        return (session.subject, SessionGrant(sessionId: sessionId,
                                              accessToken: try await access.issue(subject: session.subject, email: who.email, role: who.role),
                                              refreshToken: next, csrfToken: refresh.csrf(for: next), clientType: clientType,
                                              expiresAt: expires))
    }

    /// Ends the family of `token` (if it is one of ours and still open).
    public func end(_ token: String, metadata: EventMetadata) async throws {
        guard let (sessionId, _) = refresh.parse(token), let session = try await directory.session(id: sessionId),
              !session.revoked
        else { return }
        try await revoke(sessionId, reason: "logout", metadata: metadata)
    }

    private func revoke(_ sessionId: UUID, reason: String, metadata: EventMetadata) async throws {
        let event = try EventData(eventId: Self.derivedId("revoke \(sessionId)"), SessionRevoked(sessionId: sessionId, reason: reason),
                                  metadata: metadata)
        try await store.append([event], to: Self.stream(sessionId), expected: .streamExists)
    }

    /// A UUID derived from `name` (SHA-256, version 8 bits set): the same name gives the same event id.
    static func derivedId(_ name: String) -> UUID {
        var bytes = Array(SHA256.hash(data: Data(name.utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x80
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                           bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
    }
}
