/// Who is calling, told apart by the shape of what they sent (admin key, anon key, access token).
public enum Credential: Sendable, Equatable {
    /// Nothing was sent.
    case none
    /// The admin API key (`ik_` + 64 hex): role `project_admin`, bypasses RLS.
    case admin
    /// The anon key (`anon_` + 64 hex): role `anon`.
    case anon
    /// A valid access token (JWT): a signed-in user, or the admin signed in with a password.
    case token(TokenSubject)

    /// The database role requests run as.
    public var role: String {
        switch self {
        case .admin: "project_admin"
        case .anon, .none: "anon"
        case .token(let subject): subject.role
        }
    }

    /// Whether this credential holds the admin role (the API key, or an admin's token).
    public var isAdmin: Bool { role == "project_admin" }

    /// `ik_` followed by 64 hex digits.
    public static func isAdminKeyShape(_ s: String) -> Bool { hasShape(s, prefix: "ik_") }
    /// `anon_` followed by 64 hex digits.
    public static func isAnonKeyShape(_ s: String) -> Bool { hasShape(s, prefix: "anon_") }

    private static func hasShape(_ s: String, prefix: String) -> Bool {
        guard s.hasPrefix(prefix) else { return false }
        let rest = s.utf8.dropFirst(prefix.utf8.count)
        return rest.count == 64 && rest.allSatisfy { (48...57).contains($0) || (97...102).contains($0) || (65...70).contains($0) }
    }
}

/// Who an access token speaks for: its `sub`, `email` and `role` claims.
public struct TokenSubject: Sendable, Equatable {
    public var id: String
    public var email: String
    public var role: String

    public init(id: String, email: String, role: String) {
        self.id = id
        self.email = email
        self.role = role
    }
}
