import Foundation
import Gossip
import GossipCore
import Registry
import ServiceLifecycle
import Synchronization

/// The registry's view of the cluster from gossip: alive (or suspect) members, their drain tag and HTTP address.
/// Members tagged `role=lb` (load balancers) own no instances and are never custodians.
struct GossipRegistryMembership: RegistryMembership {
    let node: GossipNode

    func agents() -> [AgentInfo] {
        self.node.snapshot.members.map { member in
            AgentInfo(
                name: member.name, alive: member.status == .alive || member.status == .suspect, draining: member.metadata["drain"] == "1",
                http: member.metadata["http"], isAgent: member.metadata["role"] != "lb")
        }
    }
}

/// A single agent without gossip: only itself, alive; drained by a local flag.
final class LocalRegistryMembership: RegistryMembership {
    let name: String
    private let draining: Atomic<Bool>

    init(name: String, draining: Bool) {
        self.name = name
        self.draining = Atomic(draining)
    }

    func setDraining(_ value: Bool) { self.draining.store(value, ordering: .relaxed) }

    func agents() -> [AgentInfo] {
        [AgentInfo(name: self.name, alive: true, draining: self.draining.load(ordering: .relaxed))]
    }
}

/// Runs the registry (catalog, checks, reaper) until graceful shutdown.
struct RegistryService: Service {
    let registry: Registry

    func run() async throws {
        await cancelWhenGracefulShutdown { await self.registry.run() }
    }
}

/// Runs the registry's Redis mirror until graceful shutdown.
struct RedisMirrorService: Service {
    let mirror: RedisMirror

    func run() async throws {
        await cancelWhenGracefulShutdown { await self.mirror.run() }
    }
}
