import Foundation
import Hummingbird
import NIOCore
import NIOFoundationCompat

/// One member as the API shows it.
public struct MemberInfo: Sendable, Encodable, Equatable {
    public var name: String
    public var address: String
    public var status: String
    public var incarnation: UInt64
    public var tags: [String: String]
    /// Lifeguard local-health score (0 = healthy); known for this agent only.
    public var health: Int?

    public init(name: String, address: String, status: String, incarnation: UInt64, tags: [String: String], health: Int? = nil) {
        self.name = name
        self.address = address
        self.status = status
        self.incarnation = incarnation
        self.tags = tags
        self.health = health
    }
}

/// What the HTTP layer needs from cluster membership. `Agent` adapts the gossip node to it.
public protocol ClusterView: Sendable {
    /// Every known member, this agent included, sorted by name.
    func members() -> [MemberInfo]
    /// Gossip counters and state for `/v1/status`.
    func gossipStatus() -> [String: JSONValue]
    /// Leave the cluster gracefully, then stop the agent.
    func leaveAndStop() async
    /// Apply a keyring change (`install`, `use`, `remove`) here and on every member.
    func changeKeyring(operation: String, key: String) async throws
}

/// `/v1/members`, `/v1/agent/leave`, `/v1/keyring`.
struct ClusterController: Sendable {
    let cluster: any ClusterView

    func addRoutes(to router: Router<AgentRequestContext>) {
        router.get("/v1/members", use: self.members)
        router.post("/v1/agent/leave", use: self.leave)
        router.get("/v1/keyring", use: self.keyring)
        router.post("/v1/keyring/:operation", use: self.changeKeyring)
    }

    @Sendable func members(request: Request, context: AgentRequestContext) async throws -> Response {
        let flags = try QueryFlags(request, allowed: ["status"], endpoint: "GET /v1/members")
        var members = self.cluster.members()
        if let status = flags["status"] {
            guard ["alive", "suspect", "dead", "left"].contains(status) else {
                throw APIError.badRequest("status must be alive, suspect, dead or left, not '\(status)'")
            }
            members = members.filter { $0.status == status }
        }
        return try JSONBody.response(members)
    }

    @Sendable func leave(request: Request, context: AgentRequestContext) async throws -> Response {
        _ = try QueryFlags(request, allowed: [], endpoint: "POST /v1/agent/leave")
        await self.cluster.leaveAndStop()
        return try JSONBody.response(JSONValue.object(["left": .bool(true)]))
    }

    struct KeyDTO: Encodable {
        var fingerprint: String
        /// Members that have the key installed.
        var installed: Int
        /// Members that encrypt with it (primary).
        var primary: Int
    }

    struct KeyringDTO: Encodable {
        var members: Int
        var keys: [KeyDTO]
    }

    /// Cluster-wide view from the members' advertised key fingerprints.
    @Sendable func keyring(request: Request, context: AgentRequestContext) async throws -> Response {
        _ = try QueryFlags(request, allowed: [], endpoint: "GET /v1/keyring")
        let live = self.cluster.members().filter { $0.status == "alive" || $0.status == "suspect" }
        var installed: [String: Int] = [:]
        var primary: [String: Int] = [:]
        for member in live {
            for key in (member.tags["keys"] ?? "").split(separator: ",") { installed[String(key), default: 0] += 1 }
            if let key = member.tags["primary-key"] { primary[key, default: 0] += 1 }
        }
        let keys = installed.keys.sorted().map { KeyDTO(fingerprint: $0, installed: installed[$0] ?? 0, primary: primary[$0] ?? 0) }
        return try JSONBody.response(KeyringDTO(members: live.count, keys: keys))
    }

    struct KeyBody: Decodable { var key: String }

    @Sendable func changeKeyring(request: Request, context: AgentRequestContext) async throws -> Response {
        _ = try QueryFlags(request, allowed: [], endpoint: "POST /v1/keyring")
        let operation = context.parameters.get("operation") ?? ""
        guard ["install", "use", "remove"].contains(operation) else {
            throw APIError(.notFound, code: "no_route", "keyring operations are install, use and remove, not '\(operation)'")
        }
        let body = try await request.body.collect(upTo: 4096)
        let decoded: KeyBody
        do {
            decoded = try JSONDecoder().decode(KeyBody.self, from: Data(buffer: body))
        } catch {
            throw APIError.badRequest("body must be {\"key\": \"<base64>\"}", code: "bad_json")
        }
        try await self.cluster.changeKeyring(operation: operation, key: decoded.key)
        return try JSONBody.response(JSONValue.object(["operation": .string(operation), "applied": .bool(true)]))
    }
}
