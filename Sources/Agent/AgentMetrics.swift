import ConfigCenter
import Foundation
import Gossip
import GossipCore
import Metrics
import Monitor
import Registry
import Synchronization

/// The agent's metrics, kept in one `MetricsRegistry` (Monitor) that `/metrics` renders and the alert rules read:
/// - gauges sampled from the store, gossip, replication and the registry at each read (``refresh()``);
/// - host and process metrics from `/proc`, sampled every few seconds by ``SystemSamplingService``;
/// - HTTP requests by route and status, counted as they are answered (``HTTPMetricsMiddleware`` in Server);
/// - test gauges set through the debug route when the agent allows it.
///
/// The registry is used as an explicit factory, so nothing here depends on a process-wide `MetricsSystem.bootstrap`
/// (the `gossamer agent` command also bootstraps swift-metrics with it, for code using the global facade).
final class AgentMetrics: Sendable {
    /// What the sampled gauges read.
    struct Sources: Sendable {
        var store: ConfigStore
        var gossip: GossipNode?
        var replicator: Replicator?
        var registry: Registry
        var cache: RedisMirror?
    }

    let registry = MetricsRegistry()
    private let sources: Sources
    /// Gauges set at each read; series not set by the latest read are removed.
    private let sampled: GaugeSet
    /// Gauges set by the debug route.
    private let debug: GaugeSet
    /// Gauges kept until the process ends (`/proc`, alerting).
    private let kept: GaugeSet
    private let totals = Mutex<[String: (counter: FloatingPointCounter, total: Double)]>([:])

    init(sources: Sources) {
        self.sources = sources
        self.sampled = GaugeSet(self.registry)
        self.debug = GaugeSet(self.registry)
        self.kept = GaugeSet(self.registry)
        let help: [(String, String)] = [
            ("gossamer_kv_keys", "Live keys in the store."),
            ("gossamer_kv_versions", "Stored versions (history rows) in the store."),
            ("gossamer_kv_revision", "This agent's store revision."),
            ("gossamer_watch_subscribers", "Open watch streams."),
            ("gossamer_members", "Gossip members by state, as this agent sees them."),
            ("gossamer_gossip_local_health", "Lifeguard local health score (0 is healthy)."),
            ("gossamer_gossip_queue_depth", "Gossip broadcasts waiting to be sent."),
            ("gossamer_gossip_suspicions_total", "Suspicions this agent raised."),
            ("gossamer_gossip_refutations_total", "Suspicions of this agent it refuted."),
            ("gossamer_consistency_divergent_peers", "Peers whose data differed from this agent's for longer than the divergence bound."),
            ("gossamer_replication_lag_seconds", "Per peer: how far its acknowledgements trail this agent's newest write (0: caught up)."),
            ("gossamer_replication_unacked_writes", "Per peer: this agent's writes the peer has not acknowledged yet."),
            ("gossamer_kv_conflicts_total", "Concurrent writes that lost last-writer-wins (kept in history, see GET /v1/conflicts)."),
            ("gossamer_consistency_repairs_total", "Versions anti-entropy copied to repair divergence."),
            ("gossamer_registry_instances", "Registered service instances by service and health status."),
            ("gossamer_registry_checks_running", "Instances whose health checks this agent runs."),
            ("gossamer_redis_cache_up", "1 when the registry's Redis cache is reachable, 0 when degraded (absent without --redis)."),
        ]
        for (name, text) in help { self.registry.describe(name, help: text) }
        for (name, text) in SystemSampler.help { self.registry.describe(name, help: text) }
    }

    /// Samples everything and renders the page.
    func scrape() async -> String {
        await self.refresh()
        return PrometheusText.render(self.registry.families()).text
    }

    /// Samples everything and returns every series' value, for the alert rules.
    func samples() async -> [Sample] {
        await self.refresh()
        return self.registry.samples()
    }

    /// Sets the sampled gauges from their sources now.
    func refresh() async {
        let sources = self.sources
        var seen: Set<String> = []
        func put(_ name: String, _ value: Double, labels: [(String, String)] = []) {
            seen.insert(self.sampled.set(name, labels, value))
        }
        if let counts = try? await sources.store.counts() {
            put("gossamer_kv_keys", Double(counts.keys))
            put("gossamer_kv_versions", Double(counts.versions))
        }
        put("gossamer_kv_revision", Double(sources.store.feed.revision))
        put("gossamer_watch_subscribers", Double(sources.store.feed.subscriberCount))
        if let gossip = sources.gossip {
            let snapshot = gossip.snapshot
            for state in ["alive", "suspect", "dead", "left"] {
                put("gossamer_members", Double(snapshot.members.filter { $0.status.description == state }.count), labels: [("state", state)])
            }
            put("gossamer_gossip_local_health", Double(snapshot.localHealth))
            put("gossamer_gossip_queue_depth", Double(snapshot.queueDepth))
            self.setTotal("gossamer_gossip_suspicions_total", [], Double(snapshot.metrics.suspicionsRaised))
            self.setTotal("gossamer_gossip_refutations_total", [], Double(snapshot.metrics.suspicionsRefuted))
        }
        if let replicator = sources.replicator {
            let status = await replicator.status()
            put("gossamer_consistency_divergent_peers", Double(status.divergentPeers.count))
            for peer in status.peers {
                put("gossamer_replication_lag_seconds", Double(peer.behindMillis) / 1000, labels: [("peer", peer.peer)])
                put("gossamer_replication_unacked_writes", Double(peer.unacked), labels: [("peer", peer.peer)])
            }
            self.setTotal("gossamer_kv_conflicts_total", [], Double(status.conflicts))
            self.setTotal("gossamer_consistency_repairs_total", [], Double(status.repairs))
        }
        for service in sources.registry.services() {
            let views = sources.registry.views(service.name)
            for status in HealthStatus.allCases {
                put("gossamer_registry_instances", Double(views.filter { $0.status == status }.count), labels: [("service", service.name), ("status", status.rawValue)])
            }
        }
        put("gossamer_registry_checks_running", Double(sources.registry.checksRunning))
        if let cache = sources.cache { put("gossamer_redis_cache_up", cache.status.healthy ? 1 : 0) }
        // Series of services (or states) that are gone are removed, not left at their last value.
        self.sampled.keepOnly(seen)
    }

    /// Records one `/proc` reading: gauges as they are, `…_total` counters advanced to the reading.
    func record(system samples: [Sample]) {
        for sample in samples {
            let labels = sample.labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            if SystemSampler.kinds[sample.name] == .counter {
                self.setTotal(sample.name, labels, sample.value)
            } else {
                self.setGauge(sample.name, labels, sample.value)
            }
        }
    }

    /// Sets (or with `nil` removes) a `gossamer_debug_*` gauge.
    func setDebugGauge(name: String, labels: [String: String], value: Double?) {
        let dimensions = labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        guard let value else {
            self.debug.remove(name, dimensions)
            return
        }
        self.debug.set(name, dimensions, value)
    }

    /// Sets a gauge kept until the process ends (not one of the per-read sampled ones).
    func setGauge(_ name: String, _ dimensions: [(String, String)], _ value: Double) {
        self.kept.set(name, dimensions, value)
    }

    /// Advances a counter to `total` (a running total read from elsewhere). A total that went down (the source
    /// restarted) starts the counter's increments from the new value.
    func setTotal(_ name: String, _ dimensions: [(String, String)], _ total: Double) {
        let key = GaugeSet.key(name, dimensions)
        let (counter, delta) = self.totals.withLock { totals -> (FloatingPointCounter, Double) in
            if var entry = totals[key] {
                let delta = total >= entry.total ? total - entry.total : total
                entry.total = total
                totals[key] = entry
                return (entry.counter, delta)
            }
            let counter = FloatingPointCounter(label: name, dimensions: dimensions, factory: self.registry)
            totals[key] = (counter, total)
            return (counter, total)
        }
        if delta > 0 { counter.increment(by: delta) }
    }
}

/// Gauges by series (name and dimensions), each created on first use in the registry.
final class GaugeSet: Sendable {
    private let registry: MetricsRegistry
    private let gauges = Mutex<[String: Gauge]>([:])

    init(_ registry: MetricsRegistry) {
        self.registry = registry
    }

    /// Sets a gauge, creating it on first use; returns its series key.
    @discardableResult
    func set(_ name: String, _ dimensions: [(String, String)], _ value: Double) -> String {
        let key = Self.key(name, dimensions)
        let gauge = self.gauges.withLock { gauges in
            if let gauge = gauges[key] { return gauge }
            let gauge = Gauge(label: name, dimensions: dimensions, factory: self.registry)
            gauges[key] = gauge
            return gauge
        }
        gauge.record(value)
        return key
    }

    /// Removes one series.
    func remove(_ name: String, _ dimensions: [(String, String)]) {
        self.gauges.withLock { $0.removeValue(forKey: Self.key(name, dimensions)) }?.destroy()
    }

    /// Removes every series whose key is not in `keys`.
    func keepOnly(_ keys: Set<String>) {
        let stale = self.gauges.withLock { gauges in
            let gone = gauges.filter { !keys.contains($0.key) }
            for key in gone.keys { gauges[key] = nil }
            return Array(gone.values)
        }
        for gauge in stale { gauge.destroy() }
    }

    static func key(_ name: String, _ dimensions: [(String, String)]) -> String {
        name + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
    }
}
