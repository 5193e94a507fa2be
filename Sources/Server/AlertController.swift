import ConfigCenter
import Foundation
import Hummingbird
import Monitor
import NIOCore
import Yams

/// `/v1/alerts…`, `/ready` and the debug gauge route: alert rules, active alerts, history and silences
/// (docs/api.md, "Alerts").
struct AlertController: Sendable {
    let backend: any AlertsBackend
    /// This agent's name.
    let node: String

    func addRoutes(to router: Router<AgentRequestContext>) {
        router.get("/v1/alerts", use: self.active)
        router.get("/v1/alerts/history", use: self.history)
        router.get("/v1/alerts/rules", use: self.listRules)
        router.get("/v1/alerts/rules/:name", use: self.getRule)
        router.put("/v1/alerts/rules/:name", use: self.putRule)
        router.delete("/v1/alerts/rules/:name", use: self.deleteRule)
        router.post("/v1/alerts/rules/:name", use: self.rollbackRule)
        router.get("/v1/alerts/silences", use: self.listSilences)
        router.post("/v1/alerts/silences", use: self.addSilence)
        router.delete("/v1/alerts/silences/:id", use: self.expireSilence)
        router.get("/ready", use: self.ready)
        router.put("/v1/debug/metrics/:name", use: self.setDebugGauge)
        router.delete("/v1/debug/metrics/:name", use: self.setDebugGauge)
    }

    // MARK: Alerts

    @Sendable func active(request: Request, context: AgentRequestContext) async throws -> Response {
        let flags = try QueryFlags(request, allowed: ["state", "node", "rule"], endpoint: "GET /v1/alerts")
        var alerts = try await self.backend.activeAlerts()
        if let state = flags["state"] {
            guard state == "pending" || state == "firing" else {
                throw APIError.badRequest("state must be pending or firing, not '\(state)'")
            }
            alerts = alerts.filter { $0.alert.status.rawValue == state }
        }
        if let node = flags["node"] { alerts = alerts.filter { $0.node == node } }
        if let rule = flags["rule"] { alerts = alerts.filter { $0.alert.rule == rule } }
        return try JSONBody.response(["alerts": alerts])
    }

    @Sendable func history(request: Request, context: AgentRequestContext) async throws -> Response {
        let flags = try QueryFlags(request, allowed: ["rule", "limit"], endpoint: "GET /v1/alerts/history")
        let limit = try flags.int("limit", min: 1, max: 10_000) ?? 100
        let transitions = try await self.backend.history(rule: flags["rule"], limit: limit)
        struct Answer: Encodable {
            var node: String
            var transitions: [AlertTransition]
        }
        return try JSONBody.response(Answer(node: self.node, transitions: transitions))
    }

    // MARK: Rules

    @Sendable func listRules(request: Request, context: AgentRequestContext) async throws -> Response {
        _ = try QueryFlags(request, allowed: [], endpoint: "GET /v1/alerts/rules")
        return try JSONBody.response(["rules": try await self.backend.rules()])
    }

    @Sendable func getRule(request: Request, context: AgentRequestContext) async throws -> Response {
        let flags = try QueryFlags(request, allowed: ["history", "limit", "diff"], endpoint: "GET /v1/alerts/rules/<name>")
        try flags.exclusive(["history", "diff"])
        let name = try context.parameters.require("name")
        if flags.has("history") {
            let versions = try await self.backend.ruleHistory(named: name, limit: try flags.int("limit", min: 1, max: 1000) ?? 100)
            guard !versions.isEmpty else {
                throw APIError(.notFound, code: "not_found", "rule '\(name)' has no stored versions (default rules have none until changed)")
            }
            return try JSONBody.response(["versions": versions])
        }
        if let diff = flags["diff"] {
            let parts = diff.split(separator: ",")
            guard parts.count == 2, let from = Int(parts[0]), let to = Int(parts[1]) else {
                throw APIError.badRequest("diff takes two versions as 'A,B' (e.g. ?diff=1,3), not '\(diff)'")
            }
            return JSONBody.text(try await self.backend.ruleDiff(named: name, from: from, to: to))
        }
        guard let entry = try await self.backend.rule(named: name) else {
            throw APIError(.notFound, code: "not_found", "no alert rule named '\(name)'; list them with GET /v1/alerts/rules")
        }
        return try JSONBody.response(entry)
    }

    @Sendable func putRule(request: Request, context: AgentRequestContext) async throws -> Response {
        let flags = try QueryFlags(request, allowed: ["dry_run"], endpoint: "PUT /v1/alerts/rules/<name>")
        let name = try context.parameters.require("name")
        let body = try await JSONBody.collect(request, upTo: 256 * 1024)
        var rule = try Self.decodeRule(body, contentType: request.headers[.contentType], name: name)
        if rule.name.isEmpty { rule.name = name }
        guard rule.name == name else {
            throw APIError(
                .badRequest, code: "bad_rule", "the body's name '\(rule.name)' differs from the name in the path '\(name)'",
                details: ["field": .string("name")])
        }
        let validation = rule.validate(knownMetrics: await self.backend.knownMetrics())
        guard validation.errors.isEmpty else { throw Self.badRule(validation.errors) }
        let warnings = validation.warnings.map(Self.json)
        struct Answer: Encodable {
            var rule: AlertRule
            var version: Int?
            var stored: Bool
            var warnings: [JSONValue]
        }
        if flags.has("dry_run") {
            return try JSONBody.response(Answer(rule: rule, version: nil, stored: false, warnings: warnings))
        }
        let entry = try await self.backend.putRule(rule, origin: KVController.origin(request, context))
        return try JSONBody.response(Answer(rule: entry.rule, version: entry.version, stored: true, warnings: warnings))
    }

    @Sendable func deleteRule(request: Request, context: AgentRequestContext) async throws -> Response {
        _ = try QueryFlags(request, allowed: [], endpoint: "DELETE /v1/alerts/rules/<name>")
        let name = try context.parameters.require("name")
        guard try await self.backend.deleteRule(named: name, origin: KVController.origin(request, context)) else {
            throw APIError(.notFound, code: "not_found", "no alert rule named '\(name)'; list them with GET /v1/alerts/rules")
        }
        return try JSONBody.response(["deleted": name])
    }

    /// `POST /v1/alerts/rules/<name>?rollback=<version>`: the rule as it was at that version, as a new version.
    @Sendable func rollbackRule(request: Request, context: AgentRequestContext) async throws -> Response {
        let flags = try QueryFlags(request, allowed: ["rollback"], endpoint: "POST /v1/alerts/rules/<name>")
        let name = try context.parameters.require("name")
        guard let version = try flags.int("rollback", min: 1) else {
            throw APIError.badRequest("POST /v1/alerts/rules/<name> takes ?rollback=<version> (see ?history)")
        }
        let entry: AlertRuleEntry?
        do {
            entry = try await self.backend.rollbackRule(named: name, to: version, origin: KVController.origin(request, context))
        } catch let error as RuleError {
            throw APIError(.conflict, code: "bad_rule", "version \(version) of '\(name)' is not a valid rule any more: \(error.message)", details: ["field": .string(error.field)])
        }
        guard let entry else { return try JSONBody.response(["deleted": name, "rolled_back_to": "\(version)"]) }
        return try JSONBody.response(entry)
    }

    /// A rule from a JSON or YAML body (YAML when the content type says so, or when the body is not a JSON object).
    static func decodeRule(_ body: Data, contentType: String?, name: String) throws -> AlertRule {
        let yaml =
            contentType.map { $0.contains("yaml") }
            ?? (body.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }) != UInt8(ascii: "{"))
        do {
            if yaml {
                guard let text = String(data: body, encoding: .utf8) else {
                    throw APIError.badRequest("the rule body is not UTF-8", code: "bad_rule")
                }
                return try YAMLDecoder().decode(AlertRule.self, from: text)
            }
            return try JSONDecoder().decode(AlertRule.self, from: body)
        } catch let error as RuleDecodingError {
            throw Self.badRule(error.errors)
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError(
                .badRequest, code: "bad_rule",
                "the rule for '\(name)' is not a \(yaml ? "YAML" : "JSON") object of the rule's shape: \(error)",
                details: ["field": .string("body")])
        }
    }

    /// 400 `bad_rule` naming the first bad field in `field` and listing every problem in `errors`.
    static func badRule(_ errors: [FieldError]) -> APIError {
        APIError(
            .badRequest, code: "bad_rule", errors.map(\.message).joined(separator: "; "),
            details: ["field": .string(errors.first?.field ?? "body"), "errors": .array(errors.map(Self.json))])
    }

    static func json(_ problem: FieldError) -> JSONValue {
        .object(["field": .string(problem.field), "message": .string(problem.message)])
    }

    // MARK: Silences

    @Sendable func listSilences(request: Request, context: AgentRequestContext) async throws -> Response {
        let flags = try QueryFlags(request, allowed: ["expired"], endpoint: "GET /v1/alerts/silences")
        return try JSONBody.response(["silences": try await self.backend.silences(includeExpired: flags.has("expired"))])
    }

    @Sendable func addSilence(request: Request, context: AgentRequestContext) async throws -> Response {
        _ = try QueryFlags(request, allowed: [], endpoint: "POST /v1/alerts/silences")
        let body = try await JSONBody.collect(request, upTo: 64 * 1024)
        let silence: Silence
        do {
            silence = try SilenceRequest.decode(body, id: UUID().uuidString.lowercased(), now: WallTime.now)
        } catch {
            throw APIError(.badRequest, code: "bad_silence", error.message, details: ["field": .string(error.field)])
        }
        let stored = try await self.backend.addSilence(silence, origin: KVController.origin(request, context))
        return try JSONBody.response(stored, status: .created)
    }

    @Sendable func expireSilence(request: Request, context: AgentRequestContext) async throws -> Response {
        _ = try QueryFlags(request, allowed: [], endpoint: "DELETE /v1/alerts/silences/<id>")
        let id = try context.parameters.require("id")
        guard try await self.backend.expireSilence(id: id, origin: KVController.origin(request, context)) else {
            throw APIError(.notFound, code: "not_found", "no active silence with id '\(id)'")
        }
        return try JSONBody.response(["expired": id])
    }

    // MARK: Readiness and debug

    /// `GET /ready`: 200 when every readiness check passes, 503 naming the failing ones.
    @Sendable func ready(request: Request, context: AgentRequestContext) async throws -> Response {
        _ = try QueryFlags(request, allowed: [], endpoint: "GET /ready")
        let checks = await self.backend.readiness()
        let failing = checks.filter { !$0.value.ok }.keys.sorted()
        return try JSONBody.response(
            JSONValue.object([
                "status": .string(failing.isEmpty ? "ready" : "not_ready"),
                "node": .string(self.node),
                "checks": .object(checks.mapValues { .string($0.detail) }),
                "failing": .array(failing.map(JSONValue.string)),
            ]),
            status: failing.isEmpty ? .ok : .serviceUnavailable)
    }

    /// `PUT /v1/debug/metrics/<name>` `{"value": 1.5, "labels": {…}}` sets a test gauge; `DELETE` removes it. Only
    /// with the agent's `debug_metrics` setting, and only for names starting `gossamer_debug_`.
    @Sendable func setDebugGauge(request: Request, context: AgentRequestContext) async throws -> Response {
        let flags = try QueryFlags(request, allowed: request.method == .delete ? ["labels"] : [], endpoint: "/v1/debug/metrics/<name>")
        let name = try context.parameters.require("name")
        guard name.hasPrefix("gossamer_debug_"), PrometheusText.isValidMetricName(name) else {
            throw APIError.badRequest("debug metric names start with gossamer_debug_ and are valid metric names, not '\(name)'")
        }
        struct Body: Decodable {
            var value: Double
            var labels: [String: String]?
        }
        var labels: [String: String] = [:]
        var value: Double?
        if request.method == .delete {
            if let text = flags["labels"] {
                for pair in text.split(separator: ",") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2 else { throw APIError.badRequest("labels takes k=v,k=v, not '\(pair)'") }
                    labels[String(parts[0])] = String(parts[1])
                }
            }
        } else {
            let body = try JSONDecoder().decode(Body.self, from: try await JSONBody.collect(request, upTo: 4096))
            labels = body.labels ?? [:]
            value = body.value
        }
        guard self.backend.setDebugGauge(name: name, labels: labels, value: value) else {
            throw APIError(
                .forbidden, code: "debug_disabled", "debug metrics are off; start the agent with debug_metrics = true to set test gauges")
        }
        return try JSONBody.response(["name": JSONValue.string(name), "value": value.map(JSONValue.double) ?? .null])
    }
}
