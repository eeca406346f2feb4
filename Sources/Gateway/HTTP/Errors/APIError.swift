import _NIOFileSystem
import EventStore
import Foundation
import HTTPTypes
import NIOCore
import Hummingbird
import PostgresNIO

/// An error as the API reports it: `{error, message, statusCode, nextActions?}` (InsForge's shape).
public struct APIError: Error, Sendable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    /// UPPER_SNAKE code: `INVALID_INPUT`, `NOT_FOUND`, `CONFLICT` ...
    public var code: String
    public var message: String
    public var nextActions: String?
    /// Extra response headers (`Retry-After` and `RateLimit-*` on 429).
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String, nextActions: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.nextActions = nextActions
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    /// 400 `INVALID_INPUT`.
    public static func invalidInput(_ message: String) -> APIError { .init(.badRequest, "INVALID_INPUT", message) }
    /// 404 `NOT_FOUND`.
    public static func notFound(_ message: String) -> APIError { .init(.notFound, "NOT_FOUND", message) }
    /// 401 `AUTH_INVALID_CREDENTIALS`: no credential on a route any caller may use (InsForge's message).
    public static let missingCredentials = APIError(
        .unauthorized, "AUTH_INVALID_CREDENTIALS", "No token provided",
        nextActions: "Send Authorization: Bearer <anon key, access token or admin API key>")
    /// 401 `AUTH_INVALID_CREDENTIALS`: no credential on an admin route (InsForge's message).
    public static let missingAdminCredentials = APIError(
        .unauthorized, "AUTH_INVALID_CREDENTIALS", "No admin token provided",
        nextActions: "Send Authorization: Bearer <admin API key or admin access token>")
    /// 401 `AUTH_INVALID_API_KEY`: a malformed or unknown key.
    public static let invalidAPIKey = APIError(.unauthorized, "AUTH_INVALID_API_KEY", "The API key is invalid")
    /// 401 `AUTH_UNAUTHORIZED`: an invalid or expired token.
    public static let invalidToken = APIError(.unauthorized, "AUTH_UNAUTHORIZED", "The access token is invalid or expired")
    /// 403 `FORBIDDEN`.
    public static let forbidden = APIError(.forbidden, "FORBIDDEN", "This credential may not do that")

    /// The JSON body.
    public var body: String {
        var out = "{\"error\":\(JSONCoding.quoted(code)),\"message\":\(JSONCoding.quoted(message)),\"statusCode\":\(status.code)"
        if let nextActions { out += ",\"nextActions\":\(JSONCoding.quoted(nextActions))" }
        return out + "}"
    }

    /// Maps any error to the API's shape: ours as they are, the store's, decoding and Postgres errors by kind.
    /// Nothing of our SQL or stack traces leaks.
    public static func from(_ error: any Error) -> APIError {
        switch error {
        case let e as APIError:
            return e
        case let e as DomainError:
            return APIError(status(of: e.code.kind), e.code.name, e.message, nextActions: e.nextActions)
        case let e as EventStoreError:
            switch e.code {
            case .wrongExpectedVersion, .eventIdReused: return APIError(.conflict, "CONFLICT", e.message)
            case .invalidEvent: return .invalidInput(e.message)
            case .shutdown: return APIError(.serviceUnavailable, "SERVICE_UNAVAILABLE", e.message)
            default:
                if let underlying = e.underlying { return from(underlying) }
                return APIError(.internalServerError, "INTERNAL_ERROR", "Internal server error")
            }
        case is NIOTooManyBytesError:
            return APIError(.contentTooLarge, "PAYLOAD_TOO_LARGE", "The request body is too large")
        case let e as DecodingError:
            return .invalidInput(describe(e))
        case let e as PSQLError where e.code == .server:
            let state = e.serverInfo?[.sqlState] ?? ""
            switch state {
            case "23505": return APIError(.conflict, "DATABASE_DUPLICATE", "A record with that value already exists")
            case "23503": return APIError(.badRequest, "DATABASE_FOREIGN_KEY_VIOLATION", "A referenced record does not exist")
            case "23502": return APIError(.badRequest, "DATABASE_NOT_NULL_VIOLATION", "A required value is missing")
            case "42P01": return APIError(.badRequest, "DATABASE_TABLE_NOT_FOUND", "No such table")
            case "22P02", "22007", "22008", "22003": return .invalidInput("A value has the wrong format")
            case "40001", "40P01": return APIError(.conflict, "CONFLICT", "Concurrent change; retry the request")
            case "42501": return APIError(.forbidden, "FORBIDDEN", e.serverInfo?[.message] ?? "Permission denied")
            case "42P07", "42710": return APIError(.conflict, "DATABASE_DUPLICATE", e.serverInfo?[.message] ?? "Already exists")
            case _ where state.hasPrefix("42") || state.hasPrefix("22") || state.hasPrefix("23") || state.hasPrefix("P0"):
                // The caller's own statement is wrong (syntax, unknown name, bad value, a check or a RAISE):
                // PostgreSQL's message names the problem in the caller's terms.
                return APIError(.badRequest, "DATABASE_ERROR", e.serverInfo?[.message] ?? "The statement failed")
            default: return APIError(.internalServerError, "INTERNAL_ERROR", "Internal server error")
            }
        case let e as HTTPError:
            switch e.status {
            case .notFound: return .notFound("Route not found")
            case .contentTooLarge: return APIError(.contentTooLarge, "PAYLOAD_TOO_LARGE", "The request body is too large")
            case .methodNotAllowed: return APIError(.methodNotAllowed, "METHOD_NOT_ALLOWED", "Method not allowed")
            default:
                let code = e.status.code < 500 ? "INVALID_INPUT" : "INTERNAL_ERROR"
                return APIError(e.status, code, e.body ?? e.status.reasonPhrase)
            }
        case let e as StorageProviderError where e.busy:
            var error = APIError(.serviceUnavailable, "STORAGE_PROVIDER_BUSY", "The storage provider is overloaded; retry shortly",
                                 nextActions: "Retry after the Retry-After delay")
            error.headers[.retryAfter] = "1"
            return error
        case is StorageProviderError:
            return APIError(.badGateway, "STORAGE_PROVIDER_ERROR", "The storage provider failed; try again",
                            nextActions: "Retry the request; if it keeps failing, check the storage provider's settings and health")
        case let e as FileSystemError where e.code == .notFound:
            return APIError(.notFound, "STORAGE_NOT_FOUND", "The object's bytes are missing from the storage folder")
        case is FileSystemError, is LocalFileError:
            return APIError(.serviceUnavailable, "STORAGE_PROVIDER_ERROR", "The storage folder could not be used; try again")
        default:
            return APIError(.internalServerError, "INTERNAL_ERROR", "Internal server error")
        }
    }

    /// `error` as the caller may be told it, when it is a refusal (ours or a command's), not a failure.
    static func refusal(_ error: any Error) -> APIError? {
        error is APIError || error is DomainError ? from(error) : nil
    }

    /// The status of a command's refusal: the one place a domain error meets HTTP.
    static func status(of kind: DomainError.Kind) -> HTTPResponse.Status {
        switch kind {
        case .invalidInput: .badRequest
        case .forbidden: .forbidden
        case .unauthenticated: .unauthorized
        case .notFound: .notFound
        case .conflict: .conflict
        }
    }

    /// "field `a.b`: expected a string" style messages that name the field.
    static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            let p = codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
                .replacingOccurrences(of: ".[", with: "[")
            return p.isEmpty ? "body" : p
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "\(path(context.codingPath + [key])) is required"
        case .typeMismatch(let type, let context):
            return "\(path(context.codingPath)) must be \(describe(type))"
        case .valueNotFound(let type, let context):
            return "\(path(context.codingPath)) must be \(describe(type)), not null"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "The request body is not valid JSON" }
            return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "The request body is invalid"
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type, is Int32.Type: "an integer"
        case is Double.Type, is Float.Type: "a number"
        case is Bool.Type: "a boolean"
        case is [Any].Type: "an array"
        default: "an object"
        }
    }
}
