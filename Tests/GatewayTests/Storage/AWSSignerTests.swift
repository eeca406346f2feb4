import Foundation
import Testing

@testable import Gateway

// Every expected signature, canonical request and URL below is copied from AWS's
// published examples, never produced by this code:
//
// [S3-HDR]  https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
//           ("Examples: Signature Calculations": GET Object, PUT Object,
//           GET Bucket Lifecycle, Get Bucket (List Objects))
// [S3-QS]   https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
//           ("An Example": presigned GET of examplebucket/test.txt)
// [S3-POST] https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-post-example.html
// [SUITE]   https://docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html
//           (aws-sig-v4-test-suite: the .req inputs and .authz / .creq outputs)

// MARK: - Fixtures

/// The S3 documentation's example credentials.
private let s3Example = AWSSigner(
    accessKeyId: "AKIAIOSFODNN7EXAMPLE",
    secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    region: "us-east-1")
/// 20130524T000000Z, the time of every [S3-HDR] and [S3-QS] example.
private let s3ExampleDate = Date(timeIntervalSince1970: 1_369_353_600)
/// SHA-256 of the empty body, as printed in [S3-HDR].
private let emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/// The generic test suite's credentials, region and service.
private let suiteSigner = AWSSigner(
    accessKeyId: "AKIDEXAMPLE",
    secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    region: "us-east-1",
    service: "service")
/// 20150830T123600Z, the time of every [SUITE] request.
private let suiteDate = Date(timeIntervalSince1970: 1_440_938_160)
/// The [SUITE] post-sts-token session token.
private let suiteSessionToken =
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

private func url(_ string: String) throws -> URL {
    try #require(URL(string: string))
}

private func header(_ name: String, in headers: [(String, String)]) -> String? {
    headers.first { $0.0.lowercased() == name.lowercased() }?.1
}

/// An Authorization value split into its parts, so that the S3 pages' `a,b,c` form and
/// the suite's `a, b, c` form compare equal.
private func authorizationParts(_ value: String?) -> [String] {
    (value ?? "").split(separator: " ", maxSplits: 1).flatMap { part in
        part.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    }
}

// MARK: - [S3-HDR] Authorization header examples

@Suite("AWS S3 header-signing examples")
struct S3HeaderExampleTests {
    @Test("GET Object with a Range header")
    func getObject() throws {
        let headers = s3Example.sign(
            method: "GET", url: try url("https://examplebucket.s3.amazonaws.com/test.txt"),
            headers: [("Range", "bytes=0-9")], payloadHash: emptySHA256, date: s3ExampleDate)

        #expect(header("x-amz-date", in: headers) == "20130524T000000Z")
        #expect(header("x-amz-content-sha256", in: headers) == emptySHA256)
        #expect(header("x-amz-security-token", in: headers) == nil)
        #expect(
            authorizationParts(header("Authorization", in: headers)) == authorizationParts(
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
            ))
    }

    @Test("GET Object: canonical request and string to sign match the published intermediates")
    func getObjectIntermediates() throws {
        let request = s3Example.canonicalRequest(
            method: "GET", url: try url("https://examplebucket.s3.amazonaws.com/test.txt"), query: [],
            headers: [
                ("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9"),
                ("x-amz-content-sha256", emptySHA256), ("x-amz-date", "20130524T000000Z"),
            ],
            payloadHash: emptySHA256)
        #expect(
            request.text == """
                GET
                /test.txt

                host:examplebucket.s3.amazonaws.com
                range:bytes=0-9
                x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                x-amz-date:20130524T000000Z

                host;range;x-amz-content-sha256;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """)
        #expect(
            s3Example.stringToSign(canonicalRequest: request.text, date: s3ExampleDate) == """
                AWS4-HMAC-SHA256
                20130524T000000Z
                20130524/us-east-1/s3/aws4_request
                7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972
                """)
    }

    @Test("PUT Object: a body hash, a Date header and a key with `$`")
    func putObject() throws {
        let body = Data("Welcome to Amazon S3.".utf8)
        let payloadHash = AWSSigner.sha256Hex(body)
        #expect(payloadHash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")

        let theURL = try url("https://examplebucket.s3.amazonaws.com/test$file.text")
        #expect(AWSSigner.canonicalURI(theURL) == "/test%24file.text")

        let headers = s3Example.sign(
            method: "PUT", url: theURL,
            headers: [("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
            payloadHash: payloadHash, date: s3ExampleDate)
        #expect(
            authorizationParts(header("Authorization", in: headers)) == authorizationParts(
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
            ))
    }

    @Test("GET Bucket Lifecycle: a query parameter without a value")
    func getBucketLifecycle() throws {
        let headers = s3Example.sign(
            method: "GET", url: try url("https://examplebucket.s3.amazonaws.com/?lifecycle"),
            headers: [], payloadHash: emptySHA256, date: s3ExampleDate)
        #expect(
            authorizationParts(header("Authorization", in: headers)) == authorizationParts(
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
            ))
    }

    @Test("Get Bucket (List Objects): two sorted query parameters")
    func listObjects() throws {
        let headers = s3Example.sign(
            method: "GET", url: try url("https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J"),
            headers: [], payloadHash: emptySHA256, date: s3ExampleDate)
        #expect(
            authorizationParts(header("Authorization", in: headers)) == authorizationParts(
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
            ))
    }
}

// MARK: - [S3-QS] Presigned URL example

@Suite("AWS S3 presigned-URL example")
struct S3PresignedURLExampleTests {
    @Test("GET examplebucket/test.txt for 86400 s gives the published URL")
    func presignedGet() throws {
        let presigned = s3Example.presignedURL(
            method: "GET", url: try url("https://examplebucket.s3.amazonaws.com/test.txt"),
            expires: 86400, date: s3ExampleDate)
        #expect(
            presigned.absoluteString
                == "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        )
    }

    @Test("The published canonical request and its hash")
    func presignedIntermediates() throws {
        let request = s3Example.canonicalRequest(
            method: "GET", url: try url("https://examplebucket.s3.amazonaws.com/test.txt"),
            query: [
                ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
                ("X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"),
                ("X-Amz-Date", "20130524T000000Z"), ("X-Amz-Expires", "86400"), ("X-Amz-SignedHeaders", "host"),
            ],
            headers: [("host", "examplebucket.s3.amazonaws.com")], payloadHash: AWSSigner.unsignedPayload)
        #expect(
            request.text == """
                GET
                /test.txt
                X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host
                host:examplebucket.s3.amazonaws.com

                host
                UNSIGNED-PAYLOAD
                """)
        #expect(
            AWSSigner.sha256Hex(Data(request.text.utf8))
                == "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04")
    }

    @Test("A session token is part of the signed query; existing query parameters are kept")
    func presignedWithSessionToken() throws {
        var signer = s3Example
        signer.sessionToken = "token/with+special="
        let target = try url("http://localhost:9000/bucket/a%20b.txt?versionId=3")
        let presigned = signer.presignedURL(method: "PUT", url: target, expires: 60, date: s3ExampleDate)
        let query = try #require(URLComponents(url: presigned, resolvingAgainstBaseURL: false)?.percentEncodedQuery)

        #expect(presigned.path(percentEncoded: true) == "/bucket/a%20b.txt")
        #expect(query.contains("X-Amz-Security-Token=token%2Fwith%2Bspecial%3D"))
        #expect(query.contains("versionId=3"))
        #expect(query.contains("X-Amz-Expires=60"))
        #expect(query.hasPrefix("X-Amz-Algorithm="))  // sorted; the signature comes last
        let signature = try #require(query.split(separator: "&").last)
        #expect(signature.hasPrefix("X-Amz-Signature=") && signature.count == "X-Amz-Signature=".count + 64)
    }
}

// MARK: - [S3-POST] Browser POST example

@Suite("AWS S3 POST policy")
struct S3PostPolicyTests {
    /// The Base64 policy exactly as printed in [S3-POST] (its JSON has CRLF line ends).
    static let publishedPolicy =
        "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9"

    @Test("The published policy signs to the published signature")
    func publishedSignature() {
        let date = Date(timeIntervalSince1970: 1_451_347_200)  // 20151229, the policy's x-amz-date day
        #expect(
            s3Example.postPolicySignature(base64Policy: Self.publishedPolicy, date: date)
                == "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e")
    }

    @Test("presignedPost pins bucket, key, type and size, and signs its own policy")
    func presignedPostFields() throws {
        var signer = s3Example
        signer.sessionToken = "session\"token"
        let date = Date(timeIntervalSince1970: 1_451_347_200.25)
        let fields = signer.presignedPost(
            bucket: "sigv4examplebucket", key: "user/user1/photo \"1\".jpg", contentType: "image/jpeg",
            minSize: 1, maxSize: 10_485_760, expires: 300, date: date)

        #expect(fields["key"] == "user/user1/photo \"1\".jpg")
        #expect(fields["Content-Type"] == "image/jpeg")
        #expect(fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256")
        #expect(fields["x-amz-credential"] == "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request")
        #expect(fields["x-amz-date"] == "20151229T000000Z")
        #expect(fields["x-amz-security-token"] == "session\"token")

        let policy = try #require(fields["policy"])
        #expect(fields["x-amz-signature"] == signer.postPolicySignature(base64Policy: policy, date: date))

        let json = try #require(Data(base64Encoded: policy))
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        #expect(object["expiration"] as? String == "2015-12-29T00:05:00.250Z")
        let conditions = try #require(object["conditions"] as? [Any])
        let exact = conditions.compactMap { $0 as? [String: String] }.reduce(into: [String: String]()) {
            $0.merge($1) { a, _ in a }
        }
        #expect(
            exact == [
                "bucket": "sigv4examplebucket", "key": "user/user1/photo \"1\".jpg", "Content-Type": "image/jpeg",
                "x-amz-algorithm": "AWS4-HMAC-SHA256",
                "x-amz-credential": "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request",
                "x-amz-date": "20151229T000000Z", "x-amz-security-token": "session\"token",
            ])
        let range = try #require(conditions.compactMap { $0 as? [Any] }.first)
        #expect(range.first as? String == "content-length-range")
        #expect(range.dropFirst().compactMap { ($0 as? NSNumber)?.intValue } == [1, 10_485_760])
    }
}

// MARK: - [SUITE] Generic SigV4 test suite

/// One request of the AWS SigV4 test suite and its published `.authz`.
struct SuiteCase: Sendable, CustomTestStringConvertible {
    var name: String
    var method: String
    /// The `.req` request line's target, percent-encoded as a URL needs it.
    var target: String
    var headers: [(String, String)] = []
    var body = ""
    var sessionToken: String?
    var authorization: String

    var testDescription: String { name }
}

/// Cases whose canonical URI needs no path normalisation, which S3 never does.
private let suiteCases: [SuiteCase] = [
    SuiteCase(
        name: "get-vanilla", method: "GET", target: "/",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    ),
    SuiteCase(
        name: "get-vanilla-empty-query-key", method: "GET", target: "/?Param1=value1",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"
    ),
    SuiteCase(
        name: "get-vanilla-query-order-key-case", method: "GET", target: "/?Param2=value2&Param1=value1",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
    ),
    SuiteCase(
        name: "get-vanilla-query-order-value", method: "GET", target: "/?Param1=value2&Param1=value1",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"
    ),
    SuiteCase(
        name: "get-vanilla-query-unreserved", method: "GET",
        target: "/?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"
    ),
    SuiteCase(
        name: "get-vanilla-utf8-query", method: "GET", target: "/?%E1%88%B4=bar",  // `ሴ=bar`
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"
    ),
    SuiteCase(
        name: "get-unreserved", method: "GET",
        target: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"
    ),
    SuiteCase(
        name: "get-utf8", method: "GET", target: "/%E1%88%B4",  // `/ሴ`
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"
    ),
    SuiteCase(
        name: "get-space (normalize-path)", method: "GET", target: "/example%20space/",  // `/example space/`
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"
    ),
    SuiteCase(
        name: "get-header-value-trim", method: "GET", target: "/",
        headers: [("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;my-header2;x-amz-date, Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"
    ),
    SuiteCase(
        name: "get-header-key-duplicate", method: "GET", target: "/",
        headers: [("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")],
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signature=c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"
    ),
    SuiteCase(
        name: "post-vanilla", method: "POST", target: "/",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
    ),
    SuiteCase(
        name: "post-header-key-sort", method: "POST", target: "/", headers: [("My-Header1", "value1")],
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signature=c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"
    ),
    SuiteCase(
        name: "post-x-www-form-urlencoded", method: "POST", target: "/",
        headers: [("Content-Type", "application/x-www-form-urlencoded")], body: "Param1=value1",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
    ),
    SuiteCase(
        name: "post-sts-header-before", method: "POST", target: "/", sessionToken: suiteSessionToken,
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
    ),
]

@Suite("AWS SigV4 test suite")
struct SigV4SuiteTests {
    @Test("Authorization matches the published .authz", arguments: suiteCases)
    func authorization(_ testCase: SuiteCase) throws {
        var signer = suiteSigner
        signer.sessionToken = testCase.sessionToken
        let headers = signer.sign(
            method: testCase.method, url: try url("https://example.amazonaws.com" + testCase.target),
            headers: testCase.headers, payloadHash: AWSSigner.sha256Hex(Data(testCase.body.utf8)), date: suiteDate)

        #expect(header("Authorization", in: headers) == testCase.authorization)
        #expect(header("x-amz-date", in: headers) == "20150830T123600Z")
        #expect(header("x-amz-security-token", in: headers) == testCase.sessionToken)
        #expect(header("x-amz-content-sha256", in: headers) == nil)  // only S3 sends it
    }

    @Test("post-x-www-form-urlencoded: canonical request matches the published .creq")
    func formCanonicalRequest() throws {
        let request = suiteSigner.canonicalRequest(
            method: "POST", url: try url("https://example.amazonaws.com/"), query: [],
            headers: [
                ("Content-Type", "application/x-www-form-urlencoded"), ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            payloadHash: AWSSigner.sha256Hex(Data("Param1=value1".utf8)))
        #expect(
            request.text == """
                POST
                /

                content-type:application/x-www-form-urlencoded
                host:example.amazonaws.com
                x-amz-date:20150830T123600Z

                content-type;host;x-amz-date
                9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e
                """)
    }
}

// MARK: - Encoding details

@Suite("SigV4 encoding details")
struct SigV4EncodingTests {
    @Test func uriEncode() {
        #expect(AWSSigner.uriEncode("AZaz09-._~", encodeSlash: true) == "AZaz09-._~")
        #expect(AWSSigner.uriEncode("a/b c+d=e&f", encodeSlash: false) == "a/b%20c%2Bd%3De%26f")
        #expect(AWSSigner.uriEncode("a/b", encodeSlash: true) == "a%2Fb")
        #expect(AWSSigner.uriEncode("ሴ*", encodeSlash: true) == "%E1%88%B4%2A")
    }

    @Test func canonicalURIEncodesOnceAndKeepsEncodedSlashes() throws {
        #expect(AWSSigner.canonicalURI(try url("https://h/b/a%2Fb%20c+d~%7E")) == "/b/a%2Fb%20c%2Bd~~")
        #expect(AWSSigner.canonicalURI(try url("https://h/b/%25")) == "/b/%25")
        #expect(AWSSigner.canonicalURI(try url("https://h")) == "/")
        #expect(AWSSigner.canonicalURI(try url("https://h/b/dir//x/")) == "/b/dir//x/")
    }

    @Test func hostHeaderKeepsNonDefaultPorts() throws {
        #expect(AWSSigner.hostHeader(try url("http://localhost:9000/b")) == "localhost:9000")
        #expect(AWSSigner.hostHeader(try url("https://s3.example.com:443/b")) == "s3.example.com")
        #expect(AWSSigner.hostHeader(try url("http://s3.example.com:80/b")) == "s3.example.com")
        #expect(AWSSigner.hostHeader(try url("https://s3.example.com:80/b")) == "s3.example.com:80")
    }

    @Test func signOverridesCallerSuppliedAuthHeaders() throws {
        let target = try url("https://examplebucket.s3.amazonaws.com/test.txt")
        let plain = s3Example.sign(
            method: "GET", url: target, headers: [("Range", "bytes=0-9")], payloadHash: emptySHA256,
            date: s3ExampleDate)
        let withStale = s3Example.sign(
            method: "GET", url: target,
            headers: [("X-Amz-Date", "19700101T000000Z"), ("Authorization", "stale"), ("Range", "bytes=0-9")],
            payloadHash: emptySHA256, date: s3ExampleDate)
        #expect(plain.map { "\($0.0): \($0.1)" } == withStale.map { "\($0.0): \($0.1)" })
    }

    @Test func sessionTokenIsSignedForS3() throws {
        var signer = s3Example
        signer.sessionToken = "tok"
        let headers = signer.sign(
            method: "GET", url: try url("https://examplebucket.s3.amazonaws.com/test.txt"), headers: [],
            payloadHash: AWSSigner.unsignedPayload, date: s3ExampleDate)
        #expect(header("x-amz-security-token", in: headers) == "tok")
        #expect(header("x-amz-content-sha256", in: headers) == "UNSIGNED-PAYLOAD")
        #expect(
            header("Authorization", in: headers)?.contains(
                "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,") == true)
    }
}

// MARK: - S3XML

@Suite("S3XML")
struct S3XMLTests {
    static let listObjectsV2 = """
        <?xml version="1.0" encoding="UTF-8"?>
        <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
            <Name>bucket</Name>
            <Prefix>uploads/</Prefix>
            <KeyCount>2</KeyCount>
            <MaxKeys>1000</MaxKeys>
            <IsTruncated>true</IsTruncated>
            <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
            <Contents>
                <Key>uploads/Tom &amp; Jerry &lt;1&gt;.png</Key>
                <LastModified>2009-10-12T17:50:30.000Z</LastModified>
                <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag>
                <Size>434234</Size>
                <StorageClass>STANDARD</StorageClass>
            </Contents>
            <Contents>
                <Key>uploads/caf&#233;&#x2F;it&apos;s.txt</Key>
                <LastModified>2009-10-12T17:50:31.000Z</LastModified>
                <ETag>"599bab3ed2c697f1d26842727561fd94-2"</ETag>
                <Size>0</Size>
                <StorageClass>STANDARD</StorageClass>
            </Contents>
            <CommonPrefixes><Prefix>uploads/photos/</Prefix></CommonPrefixes>
        </ListBucketResult>
        """

    @Test func listObjectsV2Contents() {
        let contents = S3XML.blocks(of: "Contents", in: Self.listObjectsV2)
        #expect(contents.count == 2)
        #expect(contents.flatMap { S3XML.values(of: "Key", in: $0) } == [
            "uploads/Tom & Jerry <1>.png", "uploads/café/it's.txt",
        ])
        #expect(contents.flatMap { S3XML.values(of: "Size", in: $0) } == ["434234", "0"])
        #expect(contents.flatMap { S3XML.values(of: "ETag", in: $0) } == [
            "\"fba9dede5f27731c9771645a39863328\"", "\"599bab3ed2c697f1d26842727561fd94-2\"",
        ])
        #expect(S3XML.values(of: "IsTruncated", in: Self.listObjectsV2) == ["true"])
        #expect(S3XML.values(of: "KeyCount", in: Self.listObjectsV2) == ["2"])  // not confused with <Key>
        #expect(S3XML.values(of: "NextContinuationToken", in: Self.listObjectsV2) == [
            "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="
        ])
        #expect(S3XML.values(of: "Prefix", in: Self.listObjectsV2) == ["uploads/", "uploads/photos/"])
        #expect(S3XML.blocks(of: "ListBucketResult", in: Self.listObjectsV2).count == 1)
    }

    @Test func initiateMultipartUpload() {
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>example-bucket</Bucket><Key>example-object</Key><UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId></InitiateMultipartUploadResult>
            """
        #expect(S3XML.values(of: "UploadId", in: xml) == ["VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA"])
        #expect(S3XML.values(of: "Key", in: xml) == ["example-object"])
    }

    @Test func listMultipartUploads() {
        let xml = """
            <ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Bucket>bucket</Bucket>
              <KeyMarker></KeyMarker>
              <UploadIdMarker/>
              <IsTruncated>false</IsTruncated>
              <Upload>
                <Key>my-divisor</Key>
                <UploadId>XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw</UploadId>
                <Initiated>2010-11-10T20:48:33.000Z</Initiated>
              </Upload>
              <Upload>
                <Key>my-movie.m2ts</Key>
                <UploadId>VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>
                <Initiated>2010-11-10T20:48:34.000Z</Initiated>
              </Upload>
            </ListMultipartUploadsResult>
            """
        let uploads = S3XML.blocks(of: "Upload", in: xml)
        #expect(uploads.count == 2)  // <UploadIdMarker/> and <UploadId> are not <Upload>
        #expect(uploads.flatMap { S3XML.values(of: "Key", in: $0) } == ["my-divisor", "my-movie.m2ts"])
        #expect(S3XML.values(of: "UploadIdMarker", in: xml) == [""])
        #expect(S3XML.values(of: "KeyMarker", in: xml) == [""])
        #expect(S3XML.values(of: "Initiated", in: uploads.last ?? "") == ["2010-11-10T20:48:34.000Z"])
    }

    @Test func errorResponse() {
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. Check your key and signing method.</Message><StringToSign>AWS4-HMAC-SHA256&#10;20130524T000000Z</StringToSign><Resource>/bucket/a&amp;b</Resource><RequestId>4442587FB7D0A2F9</RequestId></Error>
            """
        #expect(S3XML.values(of: "Code", in: xml) == ["SignatureDoesNotMatch"])
        #expect(S3XML.values(of: "Message", in: xml).first?.hasPrefix("The request signature") == true)
        #expect(S3XML.values(of: "StringToSign", in: xml) == ["AWS4-HMAC-SHA256\n20130524T000000Z"])
        #expect(S3XML.values(of: "Resource", in: xml) == ["/bucket/a&b"])
        #expect(S3XML.values(of: "Missing", in: xml).isEmpty)
    }

    @Test func unknownEntitiesAndCDATAAndTruncatedInput() {
        #expect(S3XML.values(of: "A", in: "<A>x &unknown; &amp y &#xZZ;</A>") == ["x &unknown; &amp y &#xZZ;"])
        #expect(S3XML.values(of: "A", in: "<A><![CDATA[a & <b>]]> &amp; c</A>") == ["a & <b> & c"])
        #expect(S3XML.values(of: "A", in: "<A>never closed") == [])
        #expect(S3XML.values(of: "A", in: "<A") == [])
    }

    @Test func escapeRoundTrips() {
        let text = "Tom & \"Jerry\" <it's>\r\n"
        let escaped = S3XML.escape(text)
        #expect(escaped == "Tom &amp; &quot;Jerry&quot; &lt;it&apos;s&gt;&#13;\n")
        #expect(S3XML.values(of: "ETag", in: "<ETag>\(escaped)</ETag>") == [text])
    }
}
