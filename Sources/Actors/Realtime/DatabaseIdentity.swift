import Foundation

/// Who a caller is to Postgres when a statement runs as them (realtime subscribe and publish,
/// storage access): the role (nil for admins, who keep the server's and bypass policies), the JWT
/// claims that `auth.uid()`/`auth.jwt()` read, and the user id (nil for keys).
public struct DatabaseIdentity: Sendable {
    public var role: String?
    public var claims: String
    public var userId: UUID?
    public var isAdmin: Bool { role == nil }

    public init(role: String?, claims: String, userId: UUID?) {
        self.role = role
        self.claims = claims
        self.userId = userId
    }
}
