import HTTPTypes
import EventStore
import Foundation
import Hummingbird

/// Admin sign-in (`ADMIN_EMAIL`/`ADMIN_PASSWORD`) and user management under `/api/auth`.
struct AdminAuthController {
    let auth: AuthService

    func register(_ routes: RouteTable) {
        routes.add(.post, "/api/auth/admin/sessions", "Admin sign-in with the configured e-mail and password", access: .public,
                   body: .object(["email": .text, "username": .text, "password": .text], required: ["password"]), signIn)
        routes.add(.post, "/api/auth/admin/refresh", "Rotate the admin's refresh token", access: .public, refresh)
        routes.add(.post, "/api/auth/admin/logout", "End the admin session", access: .public, logout)
        routes.add(.get, "/api/auth/admin/sessions/current", "The signed-in admin", access: .admin, current)
        routes.add(.get, "/api/auth/users", "List users (limit, offset, search)", access: .admin, list)
        routes.add(.get, "/api/auth/users/:id", "One user", access: .admin, user)
        routes.add(.delete, "/api/auth/users", "Delete users {userIds}", access: .admin, delete)
    }

    struct SignInBody: Decodable {
        var email: String?
        var username: String?
        var password: String
    }

    @Sendable func signIn(_ request: Request, context: AppRequestContext) async throws -> Response {
        try auth.limitByIP(context, auth.limits.signInPerIP)
        let clientType = try ClientType.from(query: request.queryString("client_type"))
        let body = try await request.decodeJSON(SignInBody.self, context: context)
        guard let name = body.email ?? body.username, !name.isEmpty else { throw APIError.invalidInput("email is required") }
        let admin = auth.admin
        // Always one bcrypt check, so a wrong name and a wrong password take the same time.
        let nameMatches = AuthCodes.constantTimeEqual(name.lowercased(), admin?.email.lowercased() ?? "")
        let passwordMatches = try await auth.accounts.hasher.verify(body.password, against: admin?.passwordHash)
        guard let admin, nameMatches, passwordMatches else { throw AccountCommands.invalidCredentials }
        let grant = try await auth.sessions.start(subject: AdminAccount.subject, email: admin.email, role: "project_admin",
                                                  clientType: clientType, method: "admin", metadata: context.eventMetadata)
        return try auth.sessionResponse(userKey: "admin", user: AdminView(email: admin.email), grant: grant)
    }

    @Sendable func refresh(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await AuthController(auth: auth).refresh(request, context: context)
    }

    @Sendable func logout(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await AuthController(auth: auth).logout(request, context: context)
    }

    @Sendable func current(_ request: Request, context: AppRequestContext) async throws -> Response {
        let email = if case .token(let subject) = context.credential { subject.email } else { auth.admin?.email ?? "" }
        return try .json(encoding: ["admin": AdminView(email: email)])
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let limit = Int(try request.queryInt("limit", default: 10, range: 1...1000))
        let offset = Int(try request.queryInt("offset", default: 0, range: 0...10_000_000))
        let search = request.queryString("search")
        if let search, search.count > 200 { throw APIError.invalidInput("search must be at most 200 characters") }
        let (users, total) = try await auth.directory.users(search: search, limit: limit, offset: offset)
        return try .json(encoding: UserPage(data: users.map(\.view), pagination: .init(offset: offset, limit: limit, total: total)))
    }

    struct UserPage: Encodable {
        struct Pagination: Encodable { var offset: Int; var limit: Int; var total: Int }
        var data: [UserView]
        var pagination: Pagination
    }

    @Sendable func user(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard let raw = context.parameters.get("id"), let id = UUID(uuidString: raw) else {
            throw APIError.invalidInput("id must be a UUID")
        }
        guard let user = try await auth.directory.user(id: id) else { throw APIError.notFound("User not found") }
        return try .json(encoding: user.view)
    }

    struct DeleteBody: Decodable { var userIds: [String] }

    @Sendable func delete(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await request.decodeJSON(DeleteBody.self, context: context)
        guard !body.userIds.isEmpty, body.userIds.count <= 1000 else { throw APIError.invalidInput("userIds must list 1 to 1000 ids") }
        let ids = try body.userIds.enumerated().map { index, raw in
            guard let id = UUID(uuidString: raw) else { throw APIError.invalidInput("userIds[\(index)] must be a UUID") }
            return id
        }
        let deleted = try await auth.accounts.delete(ids, metadata: context.eventMetadata)
        return try .json(encoding: Deleted(message: "\(deleted) user(s) deleted", deletedCount: deleted))
    }

    struct Deleted: Encodable { var message: String; var deletedCount: Int }
}
