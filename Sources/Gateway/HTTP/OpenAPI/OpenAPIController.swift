import Foundation
import Hummingbird

/// `GET /api/openapi.json`: an OpenAPI 3.1 document built from the route table.
struct OpenAPIController {
    let version: String

    func register(_ routes: RouteTable) {
        routes.add(.get, "/api/openapi.json", "This document: every route of the server", access: .public) { _, _ in
            .json(document(routes.all))
        }
    }

    func document(_ entries: [RouteTable.Entry]) -> String {
        var paths: [String: [String: Any]] = [:]
        for entry in entries {
            var parameters: [[String: Any]] = []
            let openAPIPath = entry.path.split(separator: "/", omittingEmptySubsequences: false).map { segment -> String in
                if segment.hasPrefix(":") {
                    let name = String(segment.dropFirst())
                    parameters.append(["name": name, "in": "path", "required": true, "schema": ["type": "string"]])
                    return "{\(name)}"
                }
                if segment == "**" {
                    parameters.append(["name": "path", "in": "path", "required": true, "schema": ["type": "string"]])
                    return "{path}"
                }
                return String(segment)
            }.joined(separator: "/")
            var operation: [String: Any] = [
                "summary": entry.summary,
                "operationId": "\(entry.method.rawValue.lowercased())\(openAPIPath.replacingOccurrences(of: "/", with: "_"))",
                "responses": [
                    "200": ["description": "Success"], "201": ["description": "Created"], "202": ["description": "Accepted"], "204": ["description": "No content"],
                    "206": ["description": "Part of the rows (Content-Range)"], "302": ["description": "Redirect"],
                    "default": ["description": "Error", "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]]],
                ],
                "tags": [entry.path.split(separator: "/").dropFirst(entry.path.hasPrefix("/api/") ? 1 : 0).first.map(String.init) ?? "root"],
            ]
            if !parameters.isEmpty { operation["parameters"] = parameters }
            if let body = entry.body {
                operation["requestBody"] = ["required": true, "content": ["application/json": ["schema": body.document]]]
            }
            if entry.access != .public { operation["security"] = [["bearer": [String]()]] }
            operation["x-access"] = entry.access.rawValue
            paths[openAPIPath, default: [:]][entry.method.rawValue.lowercased()] = operation
        }
        let document: [String: Any] = [
            "openapi": "3.1.0",
            "info": ["title": "InsForge-compatible backend (event-sourced)", "version": version],
            "paths": paths,
            "components": [
                "securitySchemes": ["bearer": ["type": "http", "scheme": "bearer"]],
                "schemas": ["Error": [
                    "type": "object", "required": ["error", "message", "statusCode"],
                    "properties": ["error": ["type": "string"], "message": ["type": "string"],
                                   "statusCode": ["type": "integer"], "nextActions": ["type": "string"]],
                ]],
            ],
        ]
        let data = (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
