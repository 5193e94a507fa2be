import ConfigCenter
import Foundation
import Gossip
import GossipCore
import Metrics
import Monitor
import Registry
import Synchronization

/// The agent's `/metrics`: gauges sampled from the store, gossip, replication, the registry and the process at
/// each scrape, kept in a `MetricsRegistry` (Monitor) and rendered as Prometheus text. The registry is used as
/// an explicit factory, so nothing here depends on a process-wide `MetricsSystem.bootstrap`.
final class AgentMetrics: Sendable {
    let registry = MetricsRegistry()
    private let gauges = Mutex<[String: Gauge]>([:])

    init() {
        let help: [(String, String)] = [
            ("gossamer_kv_keys", "Live keys in the store."),
            ("gossamer_kv_versions", "Stored versions (history rows) in the store."),
            ("gossamer_kv_revision", "This agent's store revision."),
            ("gossamer_watch_subscribers", "Open watch streams."),
            ("gossamer_members", "Gossip members by state, as this agent sees them."),
            ("gossamer_gossip_local_health", "Lifeguard local health score (0 is healthy)."),
            ("gossamer_gossip_queue_depth", "Gossip broadcasts waiting to be sent."),
            ("gossamer_consistency_divergent_peers", "Peers whose data differed from this agent's for longer than the divergence bound."),
            ("gossamer_registry_instances", "Registered service instances by service and health status."),
            ("gossamer_registry_checks_running", "Instances whose health checks this agent runs."),
            ("gossamer_redis_cache_up", "1 when the registry's Redis cache is reachable, 0 when degraded (absent without --redis)."),
            ("gossamer_process_resident_memory_bytes", "Resident memory of the agent process."),
            ("gossamer_process_open_fds", "Open file descriptors of the agent process."),
        ]
        for (name, text) in help { self.registry.describe(name, help: text) }
    }

    /// Samples everything and renders the page.
    func scrape(store: ConfigStore, gossip: GossipNode?, replicator: Replicator?, registry: Registry, cache: RedisMirror?) async -> String {
        var seen: Set<String> = []
        func put(_ name: String, _ value: Double, labels: [(String, String)] = []) {
            seen.insert(self.set(name, labels, value))
        }
        if let counts = try? await store.counts() {
            put("gossamer_kv_keys", Double(counts.keys))
            put("gossamer_kv_versions", Double(counts.versions))
        }
        put("gossamer_kv_revision", Double(store.feed.revision))
        put("gossamer_watch_subscribers", Double(store.feed.subscriberCount))
        if let gossip {
            let snapshot = gossip.snapshot
            for state in ["alive", "suspect", "dead", "left"] {
                put("gossamer_members", Double(snapshot.members.filter { $0.status.description == state }.count), labels: [("state", state)])
            }
            put("gossamer_gossip_local_health", Double(snapshot.localHealth))
            put("gossamer_gossip_queue_depth", Double(snapshot.queueDepth))
        }
        if let replicator { put("gossamer_consistency_divergent_peers", Double(replicator.divergentPeers().count)) }
        for service in registry.services() {
            let views = registry.views(service.name)
            for status in HealthStatus.allCases {
                put("gossamer_registry_instances", Double(views.filter { $0.status == status }.count), labels: [("service", service.name), ("status", status.rawValue)])
            }
        }
        put("gossamer_registry_checks_running", Double(registry.checksRunning))
        if let cache { put("gossamer_redis_cache_up", cache.status.healthy ? 1 : 0) }
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
            let pages = statm.split(separator: " ").dropFirst().first.flatMap({ Double($0) })
        {
            put("gossamer_process_resident_memory_bytes", pages * Double(sysconf(Int32(_SC_PAGESIZE))))
        }
        if let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            put("gossamer_process_open_fds", Double(fds.count))
        }
        // Series of services (or states) that are gone are removed, not left at their last value.
        let stale = self.gauges.withLock { gauges in
            let gone = gauges.filter { !seen.contains($0.key) }
            for key in gone.keys { gauges[key] = nil }
            return Array(gone.values)
        }
        for gauge in stale { gauge.destroy() }
        return PrometheusText.render(self.registry.families()).text
    }

    /// Sets a gauge, creating it on first use; returns its series key.
    private func set(_ name: String, _ dimensions: [(String, String)], _ value: Double) -> String {
        let key = name + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        let gauge = self.gauges.withLock { gauges in
            if let gauge = gauges[key] { return gauge }
            let gauge = Gauge(label: name, dimensions: dimensions, factory: self.registry)
            gauges[key] = gauge
            return gauge
        }
        gauge.record(value)
        return key
    }
}
