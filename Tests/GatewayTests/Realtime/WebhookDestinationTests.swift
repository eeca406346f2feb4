import Crypto
import Foundation
import Testing

@testable import Gateway

struct WebhookDestinationTests {
    @Test func signaturesFollowStandardWebhooks() throws {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        let body = #"{"test": 2432232314}"#
        #expect(WebhookSignature.sign(secret: secret, id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1614265330, body: body)
                == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        #expect(WebhookSignature.sign(secret: "nope", id: "x", timestamp: 1, body: "{}") == nil)
    }

    @Test func privateAddressesAreRecognised() {
        for address in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "0.0.0.0",
                        "100.64.0.1", "224.0.0.1", "::1", "::", "fd00::1", "fe80::1", "::ffff:127.0.0.1", "garbage",
                        // translated and reserved ranges (security review), and IPv4-mapped forms of private ones
                        "64:ff9b::a00:1", "64:ff9b::8.8.8.8", "2002:c0a8:101::1", "fec0::1", "100.127.255.255", "198.18.0.1",
                        "198.19.255.255", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:192.168.0.1", "::10.0.0.1",
                        "2001:db8::1", "2001:0:4136:e378::1", "255.255.255.255", "240.0.0.1", "fe80::1%eth0", "::ffff:0:7f00:1",
                        "0:0:0:0:0:ffff:7f00:1", "FD12::1", "1.2.3", "127.1"] {
            #expect(DestinationPolicy.isPrivate(address), "\(address)")
        }
        for address in ["8.8.8.8", "172.32.0.1", "192.169.0.1", "2001:4860:4860::8888", "::ffff:8.8.8.8", "100.128.0.1",
                        "198.20.0.1", "2600::1"] {
            #expect(!DestinationPolicy.isPrivate(address), "\(address)")
        }
        #expect(DestinationPolicy(allowPrivate: false).problem(host: "127.0.0.1")?.contains("private") == true)
        #expect(DestinationPolicy(allowPrivate: false).problem(host: "localhost")?.contains("private") == true)
        #expect(DestinationPolicy(allowPrivate: true).problem(host: "127.0.0.1") == nil)
        #expect(DestinationPolicy(allowPrivate: false).vet(host: "8.8.8.8") == .allowed(address: "8.8.8.8"))
        #expect(DestinationPolicy(allowPrivate: true).vet(host: "127.0.0.1") == .allowed(address: nil))
    }
}
