import ConfigCenter
import Foundation
import Hummingbird
import NIOCore
import NIOFoundationCompat
import Registry
import Synchronization

/// `/v1/services`, `/v1/checks` and `/v1/agent/drain`: the service registry's HTTP API (docs/api.md).
struct RegistryController: Sendable {
    let registry: Registry
    let settings: ServerSettings
    /// Turns this agent's drain on or off (a gossip tag, or a local flag without gossip).
    let setDrain: @Sendable (Bool) async -> Void
    /// Encoded lookup answers by service, filter and index: repeated lookups of an unchanged service are
    /// answered without encoding JSON again (encoding dominated a lookup's cost). Shared with `FastPath`.
    let answers: LookupCache

    func addRoutes(to router: Router<AgentRequestContext>) {
        router.get("/v1/services", use: self.list)
        router.get("/v1/services/:service", use: self.lookup)
        router.put("/v1/services/:service", use: self.putSettings)
        router.get("/v1/services/:service/watch", use: self.watch)
        router.get("/v1/services/:service/instances/:id", use: self.getInstance)
        router.put("/v1/services/:service/instances/:id", use: self.register)
        router.delete("/v1/services/:service/instances/:id", use: self.deregister)
        router.put("/v1/services/:service/instances/:id/maintenance", use: self.maintenance)
        router.put("/v1/checks/:check/:verb", use: self.report)
        router.put("/v1/agent/drain", use: self.drain)
    }

    // MARK: Reads

    @Sendable func list(request: Request, context: AgentRequestContext) async throws -> Response {
        _ = try QueryFlags(request, allowed: [], endpoint: "GET /v1/services")
        return try JSONBody.response(self.registry.services())
    }

    @Sendable func lookup(request: Request, context: AgentRequestContext) async throws -> Response {
        let flags = try QueryFlags(request, allowed: ["passing", "tag", "zone", "index", "wait"], endpoint: "GET /v1/services/<name>")
        let service = try Self.service(context)
        let filter = Self.filter(request, flags)
        if let indexText = flags["index"] {
            guard let index = Int64(indexText), index >= 0 else {
                throw APIError.badRequest("index must be the X-Gossamer-Index of an earlier answer (an integer), not '\(indexText)'")
            }
            await self.registry.waitForChange(service, above: index, timeout: try flags.wait(self.settings))
        } else if flags.has("wait") {
            throw APIError.badRequest("'wait' needs 'index' (the X-Gossamer-Index of an earlier answer)")
        }
        let (headers, body) = try Self.lookupAnswer(self.registry, self.answers, service: service, filter: filter)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
    }

    /// The answer to a lookup — `Content-Type`, `X-Gossamer-Index` and the encoded instances — for the router and the
    /// event-loop fast path alike.
    static func lookupAnswer(
        _ registry: Registry, _ answers: LookupCache, service: String, filter: LookupFilter
    ) throws -> (HTTPFields, ByteBuffer) {
        let key = "\(service)?\(filter.passingOnly)&\(filter.tags.joined(separator: ","))&\(filter.zone ?? "")"
        let index = registry.index(of: service)
        let (answerIndex, body) = try answers.body(key, index: index) {
            let answer = registry.lookup(service, filter: filter)
            return (answer.index, try JSONBody.buffer(answer))
        }
        var headers: HTTPFields = [.contentType: "application/json", .gossamerIndex: String(answerIndex)]
        headers.reserveCapacity(8)
        return (headers, body)
    }

    /// A service name from a request path: valid, or the 400 that names the problem.
    static func validServiceName(_ service: String) throws(APIError) -> String {
        do {
            try RegistrationRules.validateServiceName(service)
        } catch {
            throw APIError(.badRequest, code: "bad_registration", error.message, details: ["field": .string(error.field)])
        }
        return service
    }

    @Sendable func getInstance(request: Request, context: AgentRequestContext) async throws -> Response {
        _ = try QueryFlags(request, allowed: [], endpoint: "GET /v1/services/<name>/instances/<id>")
        let service = try Self.service(context)
        let id = try context.parameters.require("id")
        guard let view = self.registry.instance(service, id) else {
            throw APIError(.notFound, code: "not_found", "instance \(service)/\(id) is not registered")
        }
        return try JSONBody.response(view)
    }

    /// `GET /v1/services/<name>/watch`: SSE of the lookup, first and after every change.
    @Sendable func watch(request: Request, context: AgentRequestContext) async throws -> Response {
        let flags = try QueryFlags(request, allowed: ["passing", "tag", "zone"], endpoint: "GET /v1/services/<name>/watch")
        let service = try Self.service(context)
        let filter = Self.filter(request, flags)
        let registry = self.registry
        let heartbeat = self.settings.watchHeartbeat
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                var index: Int64 = -1
                var lastBeat = ContinuousClock.now
                while !Task.isCancelled && !registry.waitsClosed {
                    if index >= 0 { await registry.waitForChange(service, above: index, timeout: heartbeat) }
                    let answer = registry.lookup(service, filter: filter)
                    if answer.index != index {
                        var event = ByteBuffer(string: "id: \(answer.index)\nevent: instances\ndata: ")
                        event.writeImmutableBuffer(try JSONBody.buffer(answer))
                        event.writeString("\n")
                        try await writer.write(event)
                        index = answer.index
                        lastBeat = .now
                    } else if ContinuousClock.now - lastBeat >= heartbeat {
                        try await writer.write(ByteBuffer(string: "event: heartbeat\ndata: {\"index\":\(index)}\n\n"))
                        lastBeat = .now
                    }
                }
                try await writer.finish(nil)
            })
    }

    // MARK: Writes

    @Sendable func register(request: Request, context: AgentRequestContext) async throws -> Response {
        _ = try QueryFlags(request, allowed: [], endpoint: "PUT /v1/services/<name>/instances/<id>")
        let service = try Self.service(context)
        let id = try context.parameters.require("id")
        let body = try await Self.body(request)
        let registration: RegistrationRequest
        do {
            registration = try JSONDecoder().decode(RegistrationRequest.self, from: body)
        } catch let error as DecodingError {
            let field = DecodingErrorText.field(of: error)
            throw APIError(
                .badRequest, code: "bad_registration", "the registration is not valid JSON of the expected shape: \(DecodingErrorText.describe(error))",
                details: ["field": .string(field)])
        }
        let view = try await self.registry.register(service: service, id: id, request: registration, origin: KVController.origin(request, context))
        return try JSONBody.response(view)
    }

    @Sendable func deregister(request: Request, context: AgentRequestContext) async throws -> Response {
        _ = try QueryFlags(request, allowed: [], endpoint: "DELETE /v1/services/<name>/instances/<id>")
        let service = try Self.service(context)
        let id = try context.parameters.require("id")
        let removed = try await self.registry.deregister(service: service, id: id, origin: KVController.origin(request, context))
        guard removed else { throw APIError(.notFound, code: "not_found", "instance \(service)/\(id) is not registered") }
        return try JSONBody.response(["deregistered": true])
    }

    @Sendable func maintenance(request: Request, context: AgentRequestContext) async throws -> Response {
        _ = try QueryFlags(request, allowed: [], endpoint: "PUT /v1/services/<name>/instances/<id>/maintenance")
        let service = try Self.service(context)
        let id = try context.parameters.require("id")
        struct Body: Decodable {
            var enable: Bool
            var reason: String?
        }
        let body = try JSONDecoder().decode(Body.self, from: try await Self.body(request))
        let view = try await self.registry.setMaintenance(service: service, id: id, enable: body.enable, reason: body.reason, origin: KVController.origin(request, context))
        return try JSONBody.response(view)
    }

    @Sendable func putSettings(request: Request, context: AgentRequestContext) async throws -> Response {
        _ = try QueryFlags(request, allowed: [], endpoint: "PUT /v1/services/<name>")
        let service = try Self.service(context)
        let settings = try JSONDecoder().decode(ServiceSettings.self, from: try await Self.body(request))
        let saved = try await self.registry.setSettings(service, settings, origin: KVController.origin(request, context))
        return try JSONBody.response(saved)
    }

    @Sendable func report(request: Request, context: AgentRequestContext) async throws -> Response {
        let flags = try QueryFlags(request, allowed: ["note"], endpoint: "PUT /v1/checks/<id>/pass|warn|fail")
        let check = try context.parameters.require("check")
        let status: HealthStatus
        switch try context.parameters.require("verb") {
        case "pass": status = .passing
        case "warn": status = .warning
        case "fail": status = .critical
        case let other: throw APIError.badRequest("a check report is pass, warn or fail, not '\(other)'")
        }
        let result = try await self.registry.report(check: check, status: status, note: flags["note"])
        return try JSONBody.response(["check": result] as [String: InstanceView.Check])
    }

    @Sendable func drain(request: Request, context: AgentRequestContext) async throws -> Response {
        _ = try QueryFlags(request, allowed: [], endpoint: "PUT /v1/agent/drain")
        struct Body: Decodable { var enable: Bool }
        let body = try JSONDecoder().decode(Body.self, from: try await Self.body(request))
        await self.setDrain(body.enable)
        return try JSONBody.response(["node": JSONValue.string(self.settings.nodeName), "draining": .bool(body.enable)])
    }

    // MARK: Helpers

    private static let maxBody = 256 * 1024

    private static func body(_ request: Request) async throws -> Data {
        try await JSONBody.collect(request, upTo: Self.maxBody)
    }

    private static func service(_ context: AgentRequestContext) throws -> String {
        try Self.validServiceName(try context.parameters.require("service"))
    }

    private static func filter(_ request: Request, _ flags: QueryFlags) -> LookupFilter {
        let tags = request.uri.queryParameters.filter { $0.key == "tag" }.map { String($0.value) }
        return LookupFilter(passingOnly: flags.has("passing"), tags: tags, zone: flags["zone"])
    }
}

extension RegistryError {
    /// The API form of a registry error (the response middleware answers with it).
    var apiError: APIError {
        switch self {
        case .badRegistration(let problem):
            APIError(.badRequest, code: "bad_registration", problem.message, details: ["field": .string(problem.field)])
        case .badRequest(let message): APIError.badRequest(message)
        case .notFound(let message): APIError(.notFound, code: "not_found", message)
        case .conflict(let message): APIError(.conflict, code: "conflict", message)
        case .notOwner(let check, let owner, let http):
            APIError(
                .conflict, code: "not_owner", "check '\(check)' is run by agent \(owner); send the report there\(http.map { " (http://\($0))" } ?? "")",
                details: ["owner": .string(owner), "owner_http": http.map { .string("http://\($0)") } ?? .null])
        }
    }
}

/// Encoded answers of lookups, each valid for one index of its service (bounded: cleared when full).
final class LookupCache: Sendable {
    private let entries = Mutex<[String: (index: Int64, body: ByteBuffer)]>([:])
    private let limit = 4096

    /// The cached answer for `key` at `index`, or a fresh one from `make` (cached under the index it reports).
    func body(_ key: String, index: Int64, make: () throws -> (Int64, ByteBuffer)) rethrows -> (Int64, ByteBuffer) {
        if let hit = self.entries.withLock({ $0[key] }), hit.index == index { return (hit.index, hit.body) }
        let (fresh, body) = try make()
        self.entries.withLock { entries in
            if entries.count >= self.limit { entries.removeAll(keepingCapacity: true) }
            entries[key] = (fresh, body)
        }
        return (fresh, body)
    }
}
