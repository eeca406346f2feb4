import HTTPTypes
import Hummingbird

/// CORS: the origin is reflected with credentials allowed only when it may send cookies
/// (`CredentialedOrigins`); any other origin gets `*` without credentials, enough for bearer-token
/// clients and useless to a page hoping to ride a signed-in user's cookie. `Content-Range`,
/// `Preference-Applied` (and friends) are exposed on actual responses, not only on preflights.
struct CORSPolicyMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let allowHeaders: String
    let allowMethods: String
    let exposeHeaders: String
    let maxAgeSeconds: Int
    let origins: CredentialedOrigins

    init(allowHeaders: [String], allowMethods: [HTTPRequest.Method], exposeHeaders: [String], maxAgeSeconds: Int = 600,
         origins: CredentialedOrigins) {
        self.origins = origins
        self.allowHeaders = allowHeaders.joined(separator: ", ")
        self.allowMethods = allowMethods.map(\.rawValue).joined(separator: ", ")
        self.exposeHeaders = exposeHeaders.joined(separator: ", ")
        self.maxAgeSeconds = maxAgeSeconds
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin] else { return try await next(request, context) }
        let credentialed = await origins.allows(origin)
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            var headers: HTTPFields = [
                .accessControlAllowOrigin: credentialed ? origin : "*",
                .accessControlAllowMethods: allowMethods,
                .accessControlAllowHeaders: request.headers[.accessControlRequestHeaders].map { "\(allowHeaders), \($0)" } ?? allowHeaders,
                .accessControlMaxAge: String(maxAgeSeconds),
                .vary: "Origin",
            ]
            headers[.accessControlExposeHeaders] = exposeHeaders
            if credentialed { headers[.accessControlAllowCredentials] = "true" }
            return Response(status: .noContent, headers: headers)
        }
        var response = try await next(request, context)
        response.headers[.accessControlAllowOrigin] = credentialed ? origin : "*"
        response.headers[.accessControlAllowCredentials] = credentialed ? "true" : nil
        response.headers[.accessControlExposeHeaders] = exposeHeaders
        response.headers[values: .vary].contains("Origin") ? () : response.headers.append(HTTPField(name: .vary, value: "Origin"))
        return response
    }
}
