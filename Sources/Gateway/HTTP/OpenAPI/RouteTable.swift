import HTTPTypes
import Hummingbird
import Synchronization

/// Registers routes on the router and remembers them, so `GET /api/openapi.json` lists every route.
/// The router is only touched while the application is built (before serving), hence unchecked.
public final class RouteTable: @unchecked Sendable {
    /// Who may call a route.
    public enum Access: String, Sendable {
        /// No credential needed.
        case `public`
        /// Admin API key (or admin token) only.
        case admin
        /// Any valid credential.
        case authenticated
    }

    /// One documented route.
    public struct Entry: Sendable {
        public var method: HTTPRequest.Method
        /// Hummingbird syntax (`:id`).
        public var path: String
        public var summary: String
        public var access: Access
        /// The JSON body it takes, if any.
        var body: JSONSchema?
    }

    /// The route handler signature.
    public typealias Handler = @Sendable (Request, AppRequestContext) async throws -> Response

    let router: Router<AppRequestContext>
    private let entries = Mutex<[Entry]>([])

    init(router: Router<AppRequestContext>) {
        self.router = router
    }

    /// Every registered route, in registration order.
    public var all: [Entry] { entries.withLock { $0 } }

    /// Adds a route and its documentation. The declared access is enforced before the handler runs:
    /// admin routes refuse every other caller, authenticated ones a request without a credential.
    func add(_ method: HTTPRequest.Method, _ path: String, _ summary: String, access: Access, body: JSONSchema? = nil,
             _ handler: @escaping Handler) {
        entries.withLock { $0.append(Entry(method: method, path: path, summary: summary, access: access, body: body)) }
        router.on(RouterPath(path), method: method) { request, context in
            switch access {
            case .public: break
            case .admin: try context.requireAdmin()
            case .authenticated: try context.requireCredential()
            }
            return try await handler(request, context)
        }
    }
}
