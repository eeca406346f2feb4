import Crypto
import Foundation
import JWTKit
import Testing

@testable import Gateway

/// Access tokens, refresh tokens, sealed tokens and PKCE: the pure parts of auth.
struct AuthTokenTests {
    static let secret = "a-test-secret-that-is-long-enough-for-hs256"

    static func segment(_ json: String) -> String { Base64URL.encode(Array(json.utf8)) }

    static func hs256(_ header: String, _ payload: String, key: String = secret) -> String {
        let input = segment(header) + "." + segment(payload)
        let mac = HMAC<SHA256>.authenticationCode(for: Data(input.utf8), using: SymmetricKey(data: Data(key.utf8)))
        return input + "." + Base64URL.encode(mac)
    }

    static func claims(role: String = "authenticated", exp: Int? = nil, iat: Int? = nil) -> String {
        let now = Int(Date().timeIntervalSince1970)
        return #"{"sub":"u1","email":"a@b.co","role":"\#(role)","iat":\#(iat ?? now),"exp":\#(exp ?? now + 900)}"#
    }

    @Test func issuedTokensVerifyWithWholeSecondClaims() async throws {
        let tokens = await AccessTokens(secret: Self.secret)
        let token = try await tokens.issue(subject: "u1", email: "a@b.co", role: "authenticated")
        let claims = try #require(await tokens.verify(token))
        #expect(claims.sub.value == "u1" && claims.email == "a@b.co" && claims.role == "authenticated")
        #expect(claims.exp.value.timeIntervalSince(claims.iat.value) == 900)
        let payload = try #require(Base64URL.decode(token.split(separator: ".")[1]))
        let json = try #require(try JSONSerialization.jsonObject(with: payload) as? [String: Any])
        #expect(json["iat"] is Int && json["exp"] is Int)
    }

    @Test func handMadeHS256TokenIsAccepted() async throws {
        let tokens = await AccessTokens(secret: Self.secret)
        let verified = await tokens.verify(Self.hs256(#"{"alg":"HS256","typ":"JWT"}"#, Self.claims()))
        #expect(verified != nil)
    }

    @Test func attacksAreRefused() async throws {
        let tokens = await AccessTokens(secret: Self.secret)
        let good = Self.hs256(#"{"alg":"HS256","typ":"JWT"}"#, Self.claims())
        let parts = good.split(separator: ".").map(String.init)
        let now = Int(Date().timeIntervalSince1970)
        let attacks: [(String, String)] = [
            ("alg none", Self.segment(#"{"alg":"none","typ":"JWT"}"#) + "." + Self.segment(Self.claims()) + "."),
            ("alg none with signature", Self.segment(#"{"alg":"none"}"#) + "." + parts[1] + "." + parts[2]),
            ("RS256 header, HMAC signature (confusion)", Self.hs256(#"{"alg":"RS256","typ":"JWT"}"#, Self.claims())),
            ("HS512", Self.hs256(#"{"alg":"HS512"}"#, Self.claims())),
            ("wrong key", Self.hs256(#"{"alg":"HS256"}"#, Self.claims(), key: "another-secret-that-is-long-enough-too!!")),
            ("expired", Self.hs256(#"{"alg":"HS256"}"#, Self.claims(exp: now - 10, iat: now - 910))),
            ("issued in the future", Self.hs256(#"{"alg":"HS256"}"#, Self.claims(exp: now + 7200, iat: now + 3600))),
            ("unknown role", Self.hs256(#"{"alg":"HS256"}"#, Self.claims(role: "superuser"))),
            ("tampered payload", parts[0] + "." + Self.segment(Self.claims(role: "project_admin")) + "." + parts[2]),
            ("missing sub", Self.hs256(#"{"alg":"HS256"}"#, #"{"email":"a@b.co","role":"anon","iat":\#(now),"exp":\#(now + 60)}"#)),
            ("two parts", parts[0] + "." + parts[1]),
            ("garbage", "not-a-token"),
            ("typ not JWT", Self.hs256(#"{"alg":"HS256","typ":"JWE"}"#, Self.claims())),
        ]
        for (name, token) in attacks {
            let verified = await tokens.verify(token)
            #expect(verified == nil, "\(name) was accepted")
        }
    }

    @Test func refreshTokensRoundTripAndRefuseTampering() throws {
        let refresh = RefreshTokens(secret: Self.secret)
        let session = UUID()
        let token = refresh.token(session: session, generation: 3)
        let parsed = try #require(refresh.parse(token))
        #expect(parsed.session == session && parsed.generation == 3)
        #expect(refresh.token(session: session, generation: 3) == token)  // deterministic per generation
        let forged = token.replacingOccurrences(of: ".3.", with: ".4.")
        #expect(refresh.parse(forged) == nil)
        #expect(RefreshTokens(secret: Self.secret + "x").parse(token) == nil)
        #expect(refresh.parse("") == nil && refresh.parse("a.b.c") == nil)
        let csrf = refresh.csrf(for: token)
        #expect(refresh.csrfMatches(csrf, token: token))
        #expect(!refresh.csrfMatches(csrf, token: refresh.token(session: session, generation: 4)))
        #expect(!refresh.csrfMatches("", token: token))
    }

    @Test func sealedTokensExpireAndDoNotCrossPurposes() throws {
        struct Payload: Codable, Equatable { var a: String }
        let state = SealedToken(secret: Self.secret, purpose: "oauth state")
        let code = SealedToken(secret: Self.secret, purpose: "insforge code")
        let token = try state.seal(Payload(a: "x"), lifetime: 60)
        #expect(state.open(token, as: Payload.self) == Payload(a: "x"))
        #expect(code.open(token, as: Payload.self) == nil)
        #expect(state.open(token, as: Payload.self, now: Date().addingTimeInterval(120)) == nil)
        var bytes = Array(token.utf8)
        bytes[bytes.count / 2] = bytes[bytes.count / 2] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(state.open(String(decoding: bytes, as: UTF8.self), as: Payload.self) == nil)
    }

    @Test func pkceMatchesRFC7636() {
        #expect(PKCE.challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        #expect(PKCE.isWellFormed(PKCE.verifier()))
        #expect(!PKCE.isWellFormed("short"))
        #expect(!PKCE.isWellFormed(String(repeating: "a", count: 42) + "!"))
    }

    @Test func appleClientSecretIsAVerifiableES256Token() async throws {
        let key = P256.Signing.PrivateKey()
        let config = #"{"teamId":"TEAM1","keyId":"KEY1","privateKey":\#(String(reflecting: key.pemRepresentation))}"#
            .replacingOccurrences(of: "\\n", with: "\\n")
        #expect(AppleClientSecret.problem(with: config) == nil)
        #expect(AppleClientSecret.problem(with: "{}") != nil)
        let jwt = try await AppleClientSecret.sign(config, clientId: "com.example.app", audience: "https://appleid.apple.com")
        let keys = JWTKeyCollection()
        await keys.add(ecdsa: try ES256PublicKey(pem: key.publicKey.pemRepresentation), kid: "KEY1")
        let claims = try await keys.verify(jwt, as: AppleClientSecret.Claims.self)
        #expect(claims.iss.value == "TEAM1" && claims.sub.value == "com.example.app")
        #expect(claims.aud.value == ["https://appleid.apple.com"])
        let header = try #require(Base64URL.decode(jwt.split(separator: ".")[0]))
        let json = try #require(try JSONSerialization.jsonObject(with: header) as? [String: Any])
        #expect(json["alg"] as? String == "ES256" && json["kid"] as? String == "KEY1")
    }
}

/// Redirect allow-lists, password rules and rate limits.
struct AuthRulesTests {
    @Test func redirectGlobs() {
        let list = RedirectAllowList(patterns: ["https://app.example.com/auth/*", "https://*.example.org/**", "myapp://callback"])
        #expect(list.allows("https://app.example.com/auth/callback"))
        #expect(list.allows("https://app.example.com/auth/callback?x=1"))
        #expect(!list.allows("https://app.example.com/auth/a/b"))
        #expect(list.allows("https://preview.example.org/any/path"))
        #expect(!list.allows("https://evil.com/.example.org/x"))
        #expect(!list.allows("https://a.b.example.org.evil.com/"))
        #expect(list.allows("myapp://callback"))
        #expect(!list.allows("https://user:pw@app.example.com/auth/x"))
        #expect(!list.allows("javascript:alert(1)"))
        #expect(list.allows("/relative/path") && !list.allows("//evil.com/x") && !list.allows("https://evil.com/"))
        // Nothing configured: this server, localhost and app schemes, but no other web origin (no open redirect).
        let open = RedirectAllowList(patterns: [], ownOrigin: "https://api.example.net")
        #expect(open.allows("http://localhost:3000/cb") && open.allows("http://127.0.0.1:5173/") && open.allows("http://[::1]:8080/x"))
        #expect(open.allows("/relative") && !open.allows("//evil.com") && !open.allows("/\\evil.com"))
        #expect(open.allows("https://api.example.net/auth/done") && open.allows("HTTPS://API.EXAMPLE.NET:443/x"))
        #expect(!open.allows("https://api.example.net.evil.com/") && !open.allows("http://api.example.net/x"))
        #expect(open.allows("myapp://auth/callback") && open.allows("com.example.app:/oauth2redirect"))
        #expect(!open.allows("https://evil.com/cb") && !open.allows("http://example.org"))
        #expect(!open.allows("javascript:alert(1)") && !open.allows("data:text/html,x") && !open.allows("file:///etc/passwd"))
        #expect(!open.allows("https://evil.com\n/x"))
    }

    @Test func tokenBucketsSpendTheirBurstThenRefillAtTheRate() {
        var bucket = TokenBucket(rate: .init(perSecond: 2, burst: 3), now: 100)
        func takes(_ count: Int, at now: Double) -> [Bool] { (0..<count).map { _ in bucket.take(now: now) } }
        #expect(takes(5, at: 100) == [true, true, true, false, false])
        #expect(takes(1, at: 100.4) == [false])  // 0.8 of a token
        #expect(takes(2, at: 100.5) == [true, false])
        #expect(takes(4, at: 1_000) == [true, true, true, false])  // never above the burst
        #expect(takes(1, at: 999) == [false])  // a clock going backwards adds nothing
    }

    @Test func passwordPolicy() {
        let policy = PasswordPolicy(minLength: 8, requireNumber: true, requireLowercase: true, requireUppercase: true,
                                    requireSpecialChar: true)
        #expect(policy.problem(with: "Ab1!") != nil)
        #expect(policy.problem(with: "abcdefg1!")?.contains("uppercase") == true)
        #expect(policy.problem(with: "ABCDEFG1!")?.contains("lowercase") == true)
        #expect(policy.problem(with: "Abcdefgh!")?.contains("number") == true)
        #expect(policy.problem(with: "Abcdefgh1")?.contains("special") == true)
        #expect(policy.problem(with: "Abcdefg1!") == nil)
        #expect(policy.problem(with: "Ab1!" + String(repeating: "x", count: 69)) != nil)  // 73 bytes: bcrypt would truncate
    }

    @Test func rateLimiterWindows() {
        final class Clock: @unchecked Sendable { var now = 1000.0 }
        let clock = Clock()
        let limiter = RateLimiter(limit: 3, per: 60, clock: { clock.now })
        #expect((0..<3).allSatisfy { _ in limiter.check("ip").allowed })
        let refused = limiter.check("ip")
        #expect(!refused.allowed && refused.remaining == 0 && refused.resetSeconds == 60)
        #expect(limiter.check("other").allowed)
        clock.now += 30
        #expect(limiter.check("ip").resetSeconds == 30)
        clock.now += 31
        #expect(limiter.check("ip").allowed)
    }

    @Test func rateLimiterMemoryIsBoundedWithoutLosingCounts() {
        final class Clock: @unchecked Sendable { var now = 1000.0 }
        let clock = Clock()
        let limiter = RateLimiter(limit: 2, per: 60, maxKeys: 100, clock: { clock.now })
        #expect(limiter.check("a").allowed && limiter.check("a").allowed && !limiter.check("a").allowed)
        // A window that began just before the tables rotate still counts after it.
        clock.now += 59
        #expect(limiter.check("b").allowed && limiter.check("b").allowed)
        clock.now += 2
        #expect(!limiter.check("b").allowed)  // b's window runs until 1119
        #expect(limiter.check("a").allowed)  // a's ended at 1060
        // A flood of fresh keys past maxKeys shares one count instead of growing the tables.
        var refusedFresh = 0
        for n in 0..<1_000 where !limiter.check("flood-\(n)").allowed { refusedFresh += 1 }
        #expect(refusedFresh >= 1_000 - 100 - 2)
    }

    @Test func clientAddressesBehindTrustedProxies() {
        let proxies = ["10.0.0.0/8", "::1", "fd00::/8"].compactMap(ClientAddress.Block.init)
        #expect(proxies.count == 3 && ClientAddress.Block("10.0.0.0/33") == nil && ClientAddress.Block("nope") == nil)
        // The right-most hop that is not a proxy; what the client wrote further left is ignored.
        #expect(ClientAddress.resolve(peer: "10.1.2.3", forwardedFor: "6.6.6.6, 203.0.113.7, 10.9.9.9", trusted: proxies) == "203.0.113.7")
        #expect(ClientAddress.resolve(peer: "198.51.100.1", forwardedFor: "6.6.6.6", trusted: proxies) == "198.51.100.1")  // untrusted peer
        #expect(ClientAddress.resolve(peer: "10.1.2.3", forwardedFor: nil, trusted: proxies) == "10.1.2.3")
        #expect(ClientAddress.resolve(peer: "10.1.2.3", forwardedFor: "1.2.3.4, garbage", trusted: proxies) == "10.1.2.3")
        #expect(ClientAddress.resolve(peer: "::ffff:10.0.0.5", forwardedFor: "2001:db8::1", trusted: proxies) == "2001:db8::1")
        #expect(ClientAddress.resolve(peer: "10.1.2.3", forwardedFor: "6.6.6.6", trusted: []) == "10.1.2.3")
        // IPv6 clients count per /64; IPv4 and mapped forms as the address.
        #expect(ClientAddress.limitKey("2001:db8:1:2:aaaa::1") == ClientAddress.limitKey("2001:db8:1:2:bbbb::9"))
        #expect(ClientAddress.limitKey("2001:db8:1:2::1") != ClientAddress.limitKey("2001:db8:1:3::1"))
        #expect(ClientAddress.limitKey("::ffff:192.0.2.1") == "192.0.2.1" && ClientAddress.limitKey("192.0.2.1") == "192.0.2.1")
    }
}
