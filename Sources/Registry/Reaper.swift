import ConfigCenter
import Foundation
import Logging
import Synchronization

/// Removes instances that have been critical for longer than their `deregister_critical_after`, exactly once
/// cluster-wide: the owner removes its own; when the owner is gone the custodian (the alive agent with the
/// smallest name) does. The delete is a compare-and-set on the registration's version, so a second remover
/// (during a membership disagreement) finds the version moved and does nothing.
final class Reaper: Sendable {
    private let store: ConfigStore
    private let node: String
    private let logger: Logger
    /// Instance key → when this agent first saw it critical with its owner gone (wall ms).
    private let orphanedSince = Mutex<[String: Int64]>([:])
    private let removedCount = Atomic<Int>(0)

    init(store: ConfigStore, node: String, logger: Logger) {
        self.store = store
        self.node = node
        self.logger = logger
    }

    /// Instances this agent removed (for metrics and tests).
    var removed: Int { self.removedCount.load(ordering: .relaxed) }

    /// The alive agent with the smallest name (nil when none is alive).
    static func custodian(_ agents: [AgentInfo]) -> String? {
        agents.filter { $0.alive && $0.isAgent }.map(\.name).min()
    }

    func pass(_ catalog: Catalog, now: Int64 = wallMillis()) async {
        let custodian = Self.custodian(catalog.agents())
        var seen: Set<String> = []
        for (instance, health) in catalog.records() {
            guard let limit = instance.value.deregisterCriticalAfterMillis else { continue }
            let key = RegistryKeys.instance(instance.value.service, instance.value.id)
            let ownerAlive = catalog.agent(instance.value.owner)?.alive ?? false
            let criticalSince: Int64?
            if ownerAlive {
                // The owner counts from its own health record, which survives its restarts.
                guard instance.value.owner == self.node, !instance.value.maintenance,
                    let health = health?.value, health.registeredAt == instance.value.registeredAt, health.status == .critical
                else { continue }
                criticalSince = health.since
            } else {
                seen.insert(key)
                let since = self.orphanedSince.withLock { firstSeen -> Int64 in
                    if let since = firstSeen[key] { return since }
                    firstSeen[key] = now
                    return now
                }
                criticalSince = custodian == self.node ? since : nil
            }
            guard let criticalSince, now - criticalSince >= limit else { continue }
            await self.remove(instance, key: key, criticalFor: now - criticalSince)
        }
        self.orphanedSince.withLock { $0 = $0.filter { seen.contains($0.key) } }
    }

    private func remove(_ instance: Stored<ServiceInstance>, key: String, criticalFor: Int64) async {
        let name = "\(instance.value.service)/\(instance.value.id)"
        do {
            _ = try await self.store.transaction(
                [.delete(key: key, cas: instance.version), .delete(key: RegistryKeys.health(instance.value.service, instance.value.id), cas: nil)],
                origin: WriteOrigin(author: "deregister-critical@\(self.node)"))
            self.removedCount.add(1, ordering: .relaxed)
            self.logger.notice(
                "removed an instance critical for longer than deregister_critical_after",
                metadata: ["registry.instance": "\(name)", "registry.critical_ms": "\(criticalFor)", "registry.owner": "\(instance.value.owner)"])
        } catch {
            // Someone changed or removed it first: nothing to do.
            self.logger.debug("instance not removed", metadata: ["registry.instance": "\(name)", "registry.error": "\(error)"])
        }
    }
}
