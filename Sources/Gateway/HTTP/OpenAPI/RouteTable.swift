import HTTPTypes
import Hummingbird
import Synchronization

/// Who may call a route: each level admits the callers of the levels after it.
public enum RouteAccess: String, Sendable, CaseIterable {
    /// Anyone: no credential needed.
    case `public`
    /// Any valid credential: the anon key, a user's access token, an admin.
    case anon
    /// A signed-in account's access token (a user's, or an admin's from the admin sign-in); keys are refused.
    case user
    /// The admin API key or an admin's access token.
    case admin
}

/// Refuses every request its group's access level does not admit, before any handler runs, with
/// InsForge's messages: "No admin token provided" on admin routes, "No token provided" elsewhere,
/// 403 for a credential of the wrong kind.
struct AccessMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let access: RouteAccess

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        switch access {
        case .public: break
        case .anon: try context.requireCredential()
        case .user: try context.requireSignedIn()
        case .admin: try context.requireAdmin()
        }
        return try await next(request, context)
    }
}

/// Registers routes on the router, one group per access level with its `AccessMiddleware`, and
/// remembers them, so `GET /api/openapi.json` lists every route with the access it enforces.
/// The router is only touched while the application is built (before serving), hence unchecked.
public final class RouteTable: @unchecked Sendable {
    /// One documented route.
    public struct Entry: Sendable {
        public var method: HTTPRequest.Method
        /// Hummingbird syntax (`:id`).
        public var path: String
        public var summary: String
        public var access: RouteAccess
        /// The JSON body it takes, if any.
        var body: JSONSchema?
    }

    /// The route handler signature.
    public typealias Handler = @Sendable (Request, AppRequestContext) async throws -> Response

    private let groups: [RouteAccess: RouterGroup<AppRequestContext>]
    private let entries = Mutex<[Entry]>([])

    init(router: Router<AppRequestContext>) {
        var groups: [RouteAccess: RouterGroup<AppRequestContext>] = [:]
        for access in RouteAccess.allCases {
            groups[access] = router.group().add(middleware: AccessMiddleware(access: access))
        }
        self.groups = groups
    }

    /// Every registered route, in registration order.
    public var all: [Entry] { entries.withLock { $0 } }

    /// Adds a route to the group of its access level, and its documentation.
    func add(_ method: HTTPRequest.Method, _ path: String, _ summary: String, access: RouteAccess, body: JSONSchema? = nil,
             _ handler: @escaping Handler) {
        entries.withLock { $0.append(Entry(method: method, path: path, summary: summary, access: access, body: body)) }
        groups[access]?.on(RouterPath(path), method: method, use: handler)
    }
}
