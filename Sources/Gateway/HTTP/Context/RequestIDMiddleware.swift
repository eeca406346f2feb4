import Foundation
import HTTPTypes
import Hummingbird

/// Gives every request an id (the client's `X-Request-Id` when it is sane), logs with it, and echoes it.
public struct RequestIDMiddleware: RouterMiddleware {
    public typealias Context = AppRequestContext

    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let offered = request.headers[.requestID]
        let id = offered.flatMap { Self.isSane($0) ? $0 : nil } ?? UUID().uuidString.lowercased()
        context.requestId = id
        context.logger[metadataKey: "request_id"] = "\(id)"
        var response = try await next(request, context)
        response.headers[.requestID] = id
        return response
    }

    static func isSane(_ id: String) -> Bool {
        (1...128).contains(id.utf8.count) && id.unicodeScalars.allSatisfy { $0.isASCII && $0.value > 0x20 && $0.value < 0x7F }
    }
}

extension HTTPField.Name {
    /// `X-Request-Id`.
    static let requestID = Self("X-Request-Id")!
    /// `x-api-key`: the admin key outside `Authorization`.
    static let apiKey = Self("x-api-key")!
    /// `Idempotency-Key`: a retried mutating request maps to the same event ids.
    static let idempotencyKey = Self("Idempotency-Key")!
}
