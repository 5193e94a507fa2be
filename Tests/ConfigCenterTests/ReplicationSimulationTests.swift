import Foundation
import Logging
import Synchronization
import TestSupport
import Testing

@testable import ConfigCenter

/// An in-process cluster of real stores (in-memory SQLite) and real replicators, wired by a transport that
/// honours crashes and partitions. Every step is awaited in turn and chosen by a seeded generator, so a seed
/// always replays the same history.
final class SimulatedReplicationCluster: ReplicationTransport, Sendable {
    struct Topology {
        var down: Set<String> = []
        /// Partition group of each node; nodes talk only within their group.
        var group: [String: Int] = [:]
    }

    let names: [String]
    let wall = TestWall()
    private let replicators = Mutex<[String: Replicator]>([:])
    let topology = Mutex(Topology())

    init(size: Int) throws {
        self.names = (0..<size).map { String(format: "n%02d", $0) }
        var built: [String: Replicator] = [:]
        for name in self.names {
            let store = try makeStore(node: name, wall: self.wall)
            built[name] = Replicator(
                store: store, settings: ReplicationSettings(), membership: Membership(cluster: self, name: name), transport: self,
                logger: Logger(label: "sim", factory: { _ in SwiftLogNoOpLogHandler() }))
        }
        self.replicators.withLock { $0 = built }
    }

    func replicator(_ name: String) -> Replicator { self.replicators.withLock { $0[name]! } }

    func reachable(_ from: String, _ to: String) -> Bool {
        self.topology.withLock { topology in
            from != to && !topology.down.contains(from) && !topology.down.contains(to)
                && topology.group[from, default: 0] == topology.group[to, default: 0]
        }
    }

    func peers(of name: String) -> [ReplicationPeer] {
        self.names.filter { self.reachable(name, $0) }.map { ReplicationPeer(name: $0, address: $0) }
    }

    func send(_ request: Data, to peer: ReplicationPeer, timeout: Duration) async throws -> Data {
        // The sender is not known here: the test only sends between nodes that `reachable` allows.
        try await self.replicator(peer.address).handle(request)
    }

    struct Membership: ReplicationMembership {
        let cluster: SimulatedReplicationCluster
        let name: String
        func livePeers() -> [ReplicationPeer] { self.cluster.peers(of: self.name) }
        func announce(root: UInt64) {}
    }
}

@Suite struct ReplicationSimulationTests {
    /// An agent's writes made before it found any peer (just restarted, gossip not formed yet) are pushed to the
    /// peers it finds soon after, without waiting for anti-entropy.
    @Test func test_writesBeforeAnyPeerIsFound_arePushedToPeersFoundAfter() async throws {
        let cluster = try SimulatedReplicationCluster(size: 2)
        cluster.topology.withLock { _ = $0.down.insert("n01") }
        let writer = cluster.replicator("n00")
        writer.refreshPeers()
        let written = try await writer.store.put("_gossamer/alerts/active/n00", value: Data("{}".utf8))
        cluster.topology.withLock { _ = $0.down.remove("n01") }
        writer.refreshPeers()
        let peerStore = cluster.replicator("n01").store
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline, try await peerStore.current(written.key)?.stamp != written.stamp {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(try await peerStore.current(written.key)?.stamp == written.stamp, "the write was not pushed to the peer found later")
        cluster.topology.withLock { $0.down = ["n00", "n01"] }
        writer.refreshPeers()  // stops the push task
    }

    /// Random writes, deletes, crashes and partitions on 5–20 agents, then heal: every store identical, and every
    /// acknowledged write either present or superseded by a later stamp.
    @Test(arguments: [(UInt64(1), 5), (2, 8), (3, 12), (4, 20)])
    func test_randomFaults_thenHeal_allStoresIdentical_noAcknowledgedWriteLost(seed: UInt64, size: Int) async throws {
        var random = SeededRandom(seed: seed)
        let cluster = try SimulatedReplicationCluster(size: size)
        let names = cluster.names
        var acknowledged: [(key: String, stamp: Stamp)] = []
        let keys = (0..<30).map { "cfg/\($0)" }

        for _ in 0..<400 {
            cluster.wall.advance(Int64.random(in: 0...20, using: &random))
            let roll = Int.random(in: 0..<100, using: &random)
            let node = names.randomElement(using: &random)!
            let isDown = cluster.topology.withLock { $0.down.contains(node) }
            switch roll {
            case 0..<55 where !isDown:
                // A write (or delete) on a live node, pushed to the peers it can reach (a push can be lost).
                let store = cluster.replicator(node).store
                let key = keys.randomElement(using: &random)!
                let written: KVVersion?
                if roll < 45 {
                    written = try await store.put(key, value: Data("\(node)-\(roll)-\(acknowledged.count)"))
                } else {
                    written = try await store.delete(key)
                }
                guard let written else { continue }
                acknowledged.append((key, written.stamp))
                for peer in cluster.peers(of: node) where Bool.random(using: &random) || roll % 3 != 0 {
                    _ = try await cluster.replicator(peer.name).handle(ReplicationMessage.versions([written]).encoded())
                }
            case 55..<70 where !isDown:
                // Anti-entropy with a random reachable peer.
                if let peer = cluster.peers(of: node).randomElement(using: &random) {
                    let result = await cluster.replicator(node).compare(with: peer, repair: true)
                    #expect(result.error == nil)
                }
            case 70..<80:
                // Crash or restart (the store survives: acknowledged writes are durable).
                cluster.topology.withLock { topology in
                    if topology.down.contains(node) { topology.down.remove(node) } else { topology.down.insert(node) }
                }
            case 80..<88:
                // Partition: split the cluster in two random groups.
                cluster.topology.withLock { topology in
                    for name in names { topology.group[name] = Int.random(in: 0...1, using: &random) }
                }
            case 88..<95:
                cluster.topology.withLock { $0.group = [:] }
            default:
                continue
            }
        }

        // Heal, then two rounds of anti-entropy, each node with every other.
        cluster.topology.withLock { $0 = .init() }
        for _ in 0..<2 {
            for name in names {
                for peer in cluster.peers(of: name) {
                    let result = await cluster.replicator(name).compare(with: peer, repair: true)
                    #expect(result.error == nil)
                }
            }
        }

        let reference = cluster.replicator(names[0]).store
        let referenceKeys = try await reference.keyStamps(inBuckets: Array(0..<KeyspaceDigest.bucketCount))
        for name in names {
            let store = cluster.replicator(name).store
            #expect(store.digest == reference.digest, "node \(name) differs from \(names[0])")
            #expect(try await store.keyStamps(inBuckets: Array(0..<KeyspaceDigest.bucketCount)) == referenceKeys)
        }
        let current = Dictionary(referenceKeys.map { ($0.key, $0.stamp) }, uniquingKeysWith: { a, _ in a })
        for write in acknowledged {
            let held = try #require(current[write.key], "acknowledged write to \(write.key) vanished")
            #expect(held >= write.stamp, "acknowledged \(write.stamp) of \(write.key) lost to older \(held)")
        }
        #expect(acknowledged.count > 100)
    }
}
