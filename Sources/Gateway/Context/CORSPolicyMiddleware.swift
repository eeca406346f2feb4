import HTTPTypes
import Hummingbird

/// CORS as API.md asks: reflect the origin, allow credentials, and expose `Content-Range`,
/// `Preference-Applied` (and friends) on actual responses, not only on preflights.
public struct CORSPolicyMiddleware: RouterMiddleware {
    public typealias Context = AppRequestContext
    let allowHeaders: String
    let allowMethods: String
    let exposeHeaders: String
    let maxAgeSeconds: Int

    public init(allowHeaders: [String], allowMethods: [HTTPRequest.Method], exposeHeaders: [String], maxAgeSeconds: Int = 600) {
        self.allowHeaders = allowHeaders.joined(separator: ", ")
        self.allowMethods = allowMethods.map(\.rawValue).joined(separator: ", ")
        self.exposeHeaders = exposeHeaders.joined(separator: ", ")
        self.maxAgeSeconds = maxAgeSeconds
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin] else { return try await next(request, context) }
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            var headers: HTTPFields = [
                .accessControlAllowOrigin: origin,
                .accessControlAllowCredentials: "true",
                .accessControlAllowMethods: allowMethods,
                .accessControlAllowHeaders: request.headers[.accessControlRequestHeaders].map { "\(allowHeaders), \($0)" } ?? allowHeaders,
                .accessControlMaxAge: String(maxAgeSeconds),
                .vary: "Origin",
            ]
            headers[.accessControlExposeHeaders] = exposeHeaders
            return Response(status: .noContent, headers: headers)
        }
        var response = try await next(request, context)
        response.headers[.accessControlAllowOrigin] = origin
        response.headers[.accessControlAllowCredentials] = "true"
        response.headers[.accessControlExposeHeaders] = exposeHeaders
        response.headers[values: .vary].contains("Origin") ? () : response.headers.append(HTTPField(name: .vary, value: "Origin"))
        return response
    }
}
