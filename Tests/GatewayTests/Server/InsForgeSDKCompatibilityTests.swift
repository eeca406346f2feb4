import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import Gateway

/// The InsForge Swift SDK (`InsForge/insforge-swift`, Sources/Auth/AuthModels.swift and Core/HTTPClient.swift)
/// decodes our auth responses with these models: its field names, which fields are required, its
/// date strategy (ISO-8601 with fractional seconds, then without) and its error shape. Its calls are
/// replayed as it makes them (`client_type=mobile`, `{"refresh_token"}` on refresh, `Bearer <anon key>`).
struct InsForgeSDKCompatibilityTests {
    struct Identity: Decodable { let provider: String }
    struct UserProfile: Decodable {
        let name: String?
        let avatarUrl: String?
        enum CodingKeys: String, CodingKey { case name, avatarUrl = "avatar_url" }
    }
    struct User: Decodable {
        let id: String
        let email: String
        let emailVerified: Bool?
        let identities: [Identity]?
        let providerType: String?
        let role: String?
        let createdAt: Date?
        let updatedAt: Date?
        let profile: UserProfile?
    }
    struct AuthResponse: Decodable {
        let user: User
        let accessToken: String?
        let refreshToken: String?
        let requireEmailVerification: Bool?
        let csrfToken: String?
    }
    struct SignUpResponse: Decodable {
        let user: User?
        let accessToken: String?
        let refreshToken: String?
        let requireEmailVerification: Bool?
    }
    struct UserResponse: Decodable { let user: User }
    struct Profile: Decodable {
        let id: String
        let profile: [String: JSONValue]?
    }
    struct ErrorResponse: Decodable {
        let error: String?
        let message: String
        let statusCode: Int?
        let nextActions: String?
    }

    /// The SDK's decoder: no key strategy; dates ISO-8601 with fractional seconds, else without.
    static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { decoder in
            let c = try decoder.singleValueContainer()
            let s = try c.decode(String.self)
            let fractional = ISO8601DateFormatter()
            fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            if let date = fractional.date(from: s) { return date }
            if let date = ISO8601DateFormatter().date(from: s) { return date }
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "bad date \(s)")
        }
        return d
    }

    static func decode<T: Decodable>(_: T.Type, _ response: TestResponse) throws -> T {
        try decoder.decode(T.self, from: Data(buffer: response.body))
    }

    @Test func sdkAuthCallsDecodeOurResponses() async throws {
        try await GatewayTests.withApp { client in
            let anon = try await client.execute(uri: "/api/metadata/anon-key", method: .get, headers: GatewayTests.admin) {
                try #require(try GatewayTests.json($0.body)["anonKey"] as? String)
            }
            var headers: HTTPFields = [.authorization: "Bearer \(anon)", .contentType: "application/json",
                                       .userAgent: "insforge-swift/0.0.1"]
            let email = "sdk-\(UUID().uuidString.prefix(8).lowercased())@example.com"

            let signUp = try await client.execute(uri: "/api/auth/users?client_type=mobile", method: .post, headers: headers,
                                                  body: ByteBuffer(string: #"{"email":"\#(email)","password":"secret-123","name":"Sam"}"#)) {
                #expect($0.status == .ok)
                return try Self.decode(SignUpResponse.self, $0)
            }
            #expect(signUp.user?.email == email && signUp.requireEmailVerification == false)
            #expect(signUp.user?.profile?.name == "Sam" && signUp.user?.createdAt != nil)
            #expect(signUp.accessToken != nil && signUp.refreshToken != nil)

            let signIn = try await client.execute(uri: "/api/auth/sessions?client_type=mobile", method: .post, headers: headers,
                                                  body: ByteBuffer(string: #"{"email":"\#(email)","password":"secret-123"}"#)) {
                #expect($0.status == .ok)
                return try Self.decode(AuthResponse.self, $0)
            }
            let accessToken = try #require(signIn.accessToken)
            let refreshToken = try #require(signIn.refreshToken)
            #expect(signIn.user.identities?.map(\.provider) == ["email"] && signIn.user.role == "authenticated")

            // The SDK keeps sending the (soon stale) access token; refresh must not depend on it.
            headers[.authorization] = "Bearer \(accessToken)x"
            let refreshed = try await client.execute(uri: "/api/auth/refresh?client_type=mobile", method: .post, headers: headers,
                                                     body: ByteBuffer(string: #"{"refresh_token":"\#(refreshToken)"}"#)) {
                #expect($0.status == .ok)
                return try Self.decode(AuthResponse.self, $0)
            }
            #expect(refreshed.refreshToken != nil && refreshed.refreshToken != refreshToken)

            headers[.authorization] = "Bearer \(try #require(refreshed.accessToken))"
            let current = try await client.execute(uri: "/api/auth/sessions/current", method: .get, headers: headers) {
                #expect($0.status == .ok)
                return try Self.decode(UserResponse.self, $0)
            }
            #expect(current.user.id == signIn.user.id && current.user.emailVerified == true)

            let patched = try await client.execute(uri: "/api/auth/profiles/current", method: .patch, headers: headers,
                                                   body: ByteBuffer(string: #"{"profile":{"avatar_url":"https://cdn.example.com/a.png"}}"#)) {
                #expect($0.status == .ok)
                return try Self.decode(Profile.self, $0)
            }
            #expect(patched.profile?["avatar_url"] == .string("https://cdn.example.com/a.png") && patched.profile?["name"] == .string("Sam"))
            let fetched = try await client.execute(uri: "/api/auth/profiles/\(current.user.id)", method: .get, headers: headers) {
                try Self.decode(Profile.self, $0)
            }
            #expect(fetched.id == current.user.id && fetched.profile == patched.profile)

            let failure = try await client.execute(uri: "/api/auth/sessions?client_type=mobile", method: .post, headers: headers,
                                                   body: ByteBuffer(string: #"{"email":"\#(email)","password":"wrong-password"}"#)) {
                #expect($0.status == .unauthorized)
                return try JSONDecoder().decode(ErrorResponse.self, from: Data(buffer: $0.body))
            }
            #expect(failure.message == "Invalid credentials" && failure.statusCode == 401)
        }
    }
}
