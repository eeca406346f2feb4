import EventStore
import NIOCore
import HTTPTypes
import Hummingbird
import Logging

/// Turns every thrown error into the API's error shape, once, at the edge.
/// Unexpected errors are logged with the request id and reported as a bare 500.
public struct ErrorMiddleware: RouterMiddleware {
    public typealias Context = AppRequestContext

    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let apiError = APIError.from(error)
            if apiError.status.code >= 500 {
                context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))", "path": "\(request.uri.path)"])
            }
            var response = Response.json(apiError.body, status: apiError.status)
            response.headers.append(contentsOf: apiError.headers)
            if apiError.status == .tooManyRequests, response.headers[.retryAfter] == nil { response.headers[.retryAfter] = "60" }
            return response
        }
    }
}

extension Response {
    /// A JSON response from JSON text.
    public static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// A JSON response from an `Encodable` value (our encoder: sorted keys, millisecond UTC dates).
    public static func json<T: Encodable>(encoding value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        .json(try JSONCoding.encodeString(value), status: status)
    }
}
