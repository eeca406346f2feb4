import Foundation

/// Who a caller is to Postgres when a statement runs as them (realtime subscribe and publish,
/// storage access): the role (nil for admins, who keep the server's and bypass policies), the JWT
/// claims that `auth.uid()`/`auth.jwt()` read, and the user id (nil for keys).
struct DatabaseIdentity: Sendable {
    var role: String?
    var claims: String
    var userId: UUID?
    var isAdmin: Bool { role == nil }

    init(_ credential: Credential) {
        let (role, claims) = RecordsController.identity(credential)
        self.role = credential.isAdmin ? nil : role
        self.claims = claims
        if case .token(let subject) = credential { userId = UUID(uuidString: subject.id) } else { userId = nil }
    }
}
