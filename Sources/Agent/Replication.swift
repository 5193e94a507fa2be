import AsyncHTTPClient
import ConfigCenter
import Foundation
import Gossip
import GossipCore
import Logging
import NIOCore
import NIOHTTP1
import NIOFoundationCompat
import Hummingbird
import Server
import ServiceLifecycle
import Synchronization

/// Adapts gossip to what replication needs: live peers with their HTTP address, and a place (member tags)
/// to announce this node's root digest.
struct GossipReplicationMembership: ReplicationMembership {
    let node: GossipNode
    let faults: FaultInjection

    func livePeers() -> [ReplicationPeer] {
        let me = self.node.settings.name
        return self.node.snapshot.members.compactMap { member in
            guard member.name != me, member.status == .alive || member.status == .suspect, let http = member.metadata["http"],
                !self.faults.blocks(member.name)
            else { return nil }
            return ReplicationPeer(name: member.name, address: http, announcedRoot: member.metadata["root"].flatMap { UInt64($0, radix: 16) })
        }
    }

    func announce(root: UInt64) {
        let node = self.node
        Task { _ = await node.mergeTags(["root": String(root, radix: 16)]) }
    }
}

/// Replication requests over the peers' HTTP API (`POST /v1/internal/replication`, binary bodies).
///
/// DESIGN decision 4 has small changes ride on gossip; they go over HTTP instead (see docs/architecture.md):
/// gossip piggybacking is paced by the probe interval, too slow for the 500 ms write-to-everywhere goal,
/// and each gossip broadcast is retransmitted log(N) times, which costs more bytes than one direct copy.
struct HTTPReplicationTransport: ReplicationTransport {
    let client: HTTPClient
    let node: String
    let faults: FaultInjection

    func send(_ request: Data, to peer: ReplicationPeer, timeout: Duration) async throws -> Data {
        if self.faults.blocks(peer.name) { throw ReplicationTransportError("fault injection blocks traffic to \(peer.name)") }
        var http = HTTPClientRequest(url: "http://\(peer.address)/v1/internal/replication")
        http.method = .POST
        http.headers.add(name: "Content-Type", value: "application/octet-stream")
        http.headers.add(name: "X-Gossamer-Node", value: self.node)
        http.body = .bytes(ByteBuffer(data: request))
        let response = try await self.client.execute(http, timeout: .milliseconds(timeout.wholeMilliseconds))
        let body = try await response.body.collect(upTo: 256 * 1024 * 1024)
        guard response.status == .ok else {
            throw ReplicationTransportError("\(peer.name) answered \(response.status.code): \(String(buffer: body).prefix(300))")
        }
        return Data(buffer: body)
    }
}

struct ReplicationTransportError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Test-only fault injection (`GOSSAMER_FAULT_INJECTION=1`): drop gossip and replication traffic to and from
/// named members, to partition a cluster of processes without root. Off in production: the route is absent.
final class FaultInjection: Sendable {
    private let blocked = Mutex<Set<String>>([])
    let enabled: Bool

    init(enabled: Bool) {
        self.enabled = enabled
    }

    func blocks(_ node: String) -> Bool {
        self.enabled && self.blocked.withLock { $0.contains(node) }
    }

    func set(_ nodes: Set<String>) {
        self.blocked.withLock { $0 = nodes }
    }
}

/// Runs the replicator as a service.
struct ReplicationService: Service {
    let replicator: Replicator

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.replicator.run()
        }
    }
}

/// `POST /v1/internal/faults` (only with `GOSSAMER_FAULT_INJECTION=1`): `{"block": ["node-b", …]}` drops all
/// gossip and replication traffic between this agent and those members until called again with another list.
struct FaultRoutes: Sendable {
    let faults: FaultInjection
    let gossip: GossipNode

    struct Body: Decodable {
        var block: [String]
    }

    func addRoutes(to router: Router<AgentRequestContext>) {
        router.post("/v1/internal/faults") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 64 * 1024)
            guard let parsed = try? JSONDecoder().decode(Body.self, from: Data(buffer: body)) else {
                throw APIError(.badRequest, code: "bad_request", "the body must be {\"block\": [\"node-name\", …]}")
            }
            let names = Set(parsed.block)
            self.faults.set(names)
            let addresses = Set(self.gossip.snapshot.members.filter { names.contains($0.name) }.map(\.address))
            self.gossip.setBlockedAddresses(addresses)
            let json = try JSONEncoder().encode(["blocked": names.sorted()])
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(data: json)))
        }
    }
}
