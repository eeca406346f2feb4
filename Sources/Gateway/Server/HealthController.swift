import EventStore
import Foundation
import Hummingbird
import Prometheus

/// `GET /api/health` and `GET /metrics`.
struct HealthController {
    let version: String
    let registry: PrometheusCollectorRegistry

    func register(_ routes: RouteTable) {
        routes.add(.get, "/api/health", "Liveness: {status, version, service, timestamp}", access: .public) { _, _ in
            .json("""
                {"status":"ok","version":\(JSONCoding.quoted(version)),"service":"insforge","timestamp":"\(JSONCoding.timestamp(Date()))"}
                """)
        }
        routes.add(.get, "/metrics", "Prometheus metrics (admin)", access: .admin) { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
    }
}
