import ConfigCenter
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

@testable import Server

/// A replicator with no peers: what a one-agent cluster looks like to the HTTP layer.
struct NoPeers: ReplicationMembership, ReplicationTransport {
    func livePeers() -> [ReplicationPeer] { [] }
    func announce(root: UInt64) {}
    func send(_ request: Data, to peer: ReplicationPeer, timeout: Duration) async throws -> Data {
        throw CancellationError()
    }
}

func makeReplicatedApp() throws -> (some ApplicationProtocol, ConfigStore, Replicator) {
    var config = ConfigSettings()
    config.nodeName = "r1"
    let store = try ConfigStore.inMemory(settings: config)
    var replication = ReplicationSettings()
    replication.writeConcernTimeout = .milliseconds(50)
    let replicator = Replicator(store: store, settings: replication, membership: NoPeers(), transport: NoPeers(), logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    var settings = ServerSettings()
    settings.nodeName = "r1"
    return (Application(router: buildRouter(store: store, settings: settings, replicator: replicator)), store, replicator)
}

@Suite struct ReplicationRouteTests {
    @Test func test_internalReplication_garbage_400NamesProblem_storeUnchanged() async throws {
        let (app, store, _) = try makeReplicatedApp()
        try await app.test(.router) { client in
            for body in ["", "GR", "hello", "GR\u{1}\u{1}\u{ff}\u{ff}\u{ff}\u{7f}"] {
                try await client.execute(uri: "/v1/internal/replication", method: .post, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .badRequest)
                    #expect(errorCode(response.body) == "bad_replication_message")
                }
            }
        }
        #expect(try await store.revision() == 0)
    }

    @Test func test_internalReplication_push_appliesAndAcknowledges() async throws {
        let (app, store, _) = try makeReplicatedApp()
        let remote = KVVersion(
            key: "app/x", value: Data("v".utf8), contentType: nil, version: 1, revision: 0, stamp: Stamp(wall: 5, counter: 0, node: "other"),
            parent: nil, author: nil, client: nil, tombstone: false, appliedAt: 5)
        try await app.test(.router) { client in
            let body = ByteBuffer(bytes: [UInt8](ReplicationMessage.versions([remote]).encoded()))
            try await client.execute(uri: "/v1/internal/replication", method: .post, body: body) { response in
                #expect(response.status == .ok)
                let answer = try ReplicationMessage.decode(Data(response.body.readableBytesView))
                #expect(answer == .applied(MergeReport(applied: 1, current: 1)))
            }
        }
        #expect(try await store.get("app/x")?.stamp == remote.stamp)
    }

    @Test func test_writeConcern_moreReplicasThanAgents_504WithCounts_writeKept() async throws {
        let (app, store, _) = try makeReplicatedApp()
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/kv/a?replicas=2&timeout=50ms", method: .put, body: ByteBuffer(string: "v")) { response in
                #expect(response.status == .gatewayTimeout)
                let error = json(response.body)["error"] as? [String: Any]
                #expect(error?["code"] as? String == "replication_timeout")
                #expect(error?["acknowledged"] as? Int == 1 && error?["required"] as? Int == 2)
            }
            try await client.execute(uri: "/v1/kv/b?replicas=all", method: .put, body: ByteBuffer(string: "v")) { response in
                #expect(response.status == .ok, "all live members of a one-agent cluster is this agent")
            }
            for bad in ["replicas=0", "replicas=many", "timeout=5s", "replicas=2&timeout=forever"] {
                try await client.execute(uri: "/v1/kv/c?\(bad)", method: .put, body: ByteBuffer(string: "v")) { response in
                    #expect(response.status == .badRequest, "\(bad)")
                }
            }
        }
        #expect(try await store.get("a") != nil)
        #expect(try await store.get("c") == nil)
    }

    @Test func test_consistencyAndHolders_oneAgent() async throws {
        let (app, _, _) = try makeReplicatedApp()
        try await app.test(.router) { client in
            _ = try await client.execute(uri: "/v1/kv/k", method: .put, body: ByteBuffer(string: "v"))
            try await client.execute(uri: "/v1/consistency", method: .get) { response in
                #expect(response.status == .ok)
                let body = json(response.body)
                #expect(body["node"] as? String == "r1" && body["keys"] as? Int == 1 && body["healthy"] as? Bool == true)
                #expect((body["root"] as? String)?.count == 16)
            }
            try await client.execute(uri: "/v1/kv/k?holders", method: .get) { response in
                let body = json(response.body)
                #expect(body["agree"] as? Bool == true)
                #expect((body["nodes"] as? [[String: Any]])?.first?["node"] as? String == "r1")
            }
            try await client.execute(uri: "/v1/consistency/check?peer=nobody", method: .post) { response in
                #expect(response.status == .notFound)
                #expect(errorCode(response.body) == "unknown_peer")
            }
            try await client.execute(uri: "/v1/consistency/check?repair=maybe", method: .post) { response in
                #expect(response.status == .badRequest)
            }
        }
    }
}
