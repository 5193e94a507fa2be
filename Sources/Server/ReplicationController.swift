import ConfigCenter
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOFoundationCompat

/// Replication between agents and the consistency checks for people:
/// - `POST /v1/internal/replication`: a peer's binary replication request (push, digest, listing, fetch);
/// - `GET /v1/consistency`, `POST /v1/consistency/check?peer=&repair=`;
/// - `GET /v1/conflicts?prefix=&limit=`.
struct ReplicationController: Sendable {
    let replicator: Replicator

    /// Largest replication request accepted: a push batch of maximal values.
    var maxRequestBytes: Int { self.replicator.settings.pushBatch * (self.replicator.store.settings.maxValueBytes + 4096) }

    func addRoutes(to router: Router<AgentRequestContext>) {
        router.post("/v1/internal/replication", use: self.replicate)
        router.get("/v1/consistency", use: self.consistency)
        router.post("/v1/consistency/check", use: self.check)
        router.get("/v1/conflicts", use: self.conflicts)
    }

    @Sendable func replicate(request: Request, context: AgentRequestContext) async throws -> Response {
        _ = try QueryFlags(request, allowed: [], endpoint: "POST /v1/internal/replication")
        let body = try await request.body.collect(upTo: self.maxRequestBytes)
        let answer: Data
        do {
            answer = try await self.replicator.handle(Data(buffer: body))
        } catch let error as ReplicationWireError {
            throw APIError.badRequest("malformed replication request: \(error)", code: "bad_replication_message")
        }
        return Response(
            status: .ok, headers: [.contentType: "application/octet-stream"], body: .init(byteBuffer: ByteBuffer(data: answer)))
    }

    @Sendable func consistency(request: Request, context: AgentRequestContext) async throws -> Response {
        _ = try QueryFlags(request, allowed: [], endpoint: "GET /v1/consistency")
        return try JSONBody.response(ConsistencyDTO(await self.replicator.status()))
    }

    @Sendable func check(request: Request, context: AgentRequestContext) async throws -> Response {
        let flags = try QueryFlags(request, allowed: ["peer", "repair"], endpoint: "POST /v1/consistency/check")
        let repair: Bool
        switch flags["repair"] {
        case nil, "false": repair = false
        case "", "true": repair = true
        case let other?: throw APIError.badRequest("repair must be true or false, not '\(other)'")
        }
        let peer = flags["peer"]
        let results = await self.replicator.check(peer: peer, repair: repair)
        if let peer, results.isEmpty {
            throw APIError(.notFound, code: "unknown_peer", "'\(peer)' is not a live member of the cluster; see GET /v1/members")
        }
        return try JSONBody.response(CheckDTO(node: self.replicator.store.nodeName, repair: repair, peers: results.map(ComparisonDTO.init)))
    }

    @Sendable func conflicts(request: Request, context: AgentRequestContext) async throws -> Response {
        let flags = try QueryFlags(request, allowed: ["prefix", "limit"], endpoint: "GET /v1/conflicts")
        let limit = try flags.int("limit", min: 1, max: 10_000) ?? 100
        let versions = try await self.replicator.store.conflicts(prefix: flags["prefix"] ?? "", limit: limit)
        return try JSONBody.response(versions.map { VersionDTO($0, includeValue: true) })
    }
}

struct ComparisonDTO: Encodable {
    var peer: String
    var at: String
    var matched: Bool
    var missing_here: Int
    var missing_there: Int
    var different: Int
    var settled_differences: Int
    var repaired: Int
    var peer_root: String?
    var error: String?

    init(_ comparison: PeerComparison) {
        self.peer = comparison.peer
        self.at = Timestamps.iso8601(millis: comparison.at)
        self.matched = comparison.matched
        self.missing_here = comparison.missingHere
        self.missing_there = comparison.missingThere
        self.different = comparison.different
        self.settled_differences = comparison.settled
        self.repaired = comparison.repaired
        self.peer_root = comparison.peerRoot.map(Timestamps.hex)
        self.error = comparison.error
    }
}

struct CheckDTO: Encodable {
    var node: String
    var repair: Bool
    var peers: [ComparisonDTO]
}

struct ConsistencyDTO: Encodable {
    struct Peer: Encodable {
        var node: String
        var address: String
        var announced_root: String?
        var acked_revision: Int64
        var unacked_writes: Int
        var behind_ms: Int64
        var last_ack: String?
        var bytes_sent: Int
        var last_error: String?
        var last_check: ComparisonDTO?
    }

    var node: String
    var root: String
    var keys: Int
    var resyncing: Bool
    var all_agree: Bool
    var agree_since: String?
    var divergent_peers: [String]
    var healthy: Bool
    var repairs_total: Int
    var conflicts_total: Int
    var malformed_requests: Int
    var bytes_sent: Int
    var bytes_received: Int
    var last_sync: String?
    var peers: [Peer]

    init(_ status: Replicator.ConsistencyStatus) {
        self.node = status.node
        self.root = Timestamps.hex(status.root)
        self.keys = status.keys
        self.resyncing = status.resyncing
        self.all_agree = status.allAgree
        self.agree_since = status.agreeSince.map(Timestamps.iso8601(millis:))
        self.divergent_peers = status.divergentPeers
        self.healthy = status.divergentPeers.isEmpty
        self.repairs_total = status.repairs
        self.conflicts_total = status.conflicts
        self.malformed_requests = status.malformedRequests
        self.bytes_sent = status.bytesSent
        self.bytes_received = status.bytesReceived
        self.last_sync = status.lastSyncAt > 0 ? Timestamps.iso8601(millis: status.lastSyncAt) : nil
        self.peers = status.peers.map { peer in
            Peer(
                node: peer.peer, address: peer.address, announced_root: peer.announcedRoot.map(Timestamps.hex), acked_revision: peer.ackedRevision,
                unacked_writes: peer.unacked, behind_ms: peer.behindMillis, last_ack: peer.lastAckAt.map(Timestamps.iso8601(millis:)),
                bytes_sent: peer.bytesSent, last_error: peer.lastError, last_check: peer.lastComparison.map(ComparisonDTO.init))
        }
    }
}

extension Timestamps {
    /// A digest as 16 hex digits.
    static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, 16 - digits.count)) + digits
    }
}
