import AsyncHTTPClient
import ConfigCenter
import Foundation
import Gossip
import GossipCore
import Hummingbird
import Logging
import Monitor
import Registry
import NIOCore
import Server
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Version of this build, reported by `/v1/status` and `gossamer --version`.
public let gossamerVersion = "0.1.0"

/// A runnable agent: the store, the HTTP API, gossip and the background services under one service group.
public final class AgentRuntime: Sendable {
    public let settings: AgentSettings
    public let store: ConfigStore
    /// The gossip node (nil without a `gossip` address).
    public let gossip: GossipNode?
    /// Replication with the other agents (nil without gossip).
    public let replicator: Replicator?
    /// The service registry.
    public let registry: Registry
    /// The registry's Redis cache (nil without `--redis`).
    public let redisMirror: RedisMirror?
    /// Drains this agent (its instances go into maintenance) or undoes it.
    private let setDrain: @Sendable (Bool) async -> Void
    private let httpClient: HTTPClient?
    private let faults: FaultInjection
    private let logger: Logger
    private let onReady: @Sendable (_ http: String, _ gossip: String?) async -> Void
    private let group = Mutex<ServiceGroup?>(nil)
    private let metrics: AgentMetrics
    /// Alert rules, evaluation and notifications.
    let alerting: Alerting
    /// The registry every metric of this agent lives in (`/metrics`, alert rules); the `gossamer agent` command
    /// bootstraps swift-metrics with it.
    public var metricsRegistry: MetricsRegistry { self.metrics.registry }

    /// Opens the store and prepares the services. `onReady` gets the HTTP (and gossip) address once they listen.
    public init(settings: AgentSettings, logger: Logger, onReady: @escaping @Sendable (_ http: String, _ gossip: String?) async -> Void = { _, _ in }) throws {
        var config = settings.config
        config.logger = logger
        do {
            self.store = try ConfigStore(directory: URL(fileURLWithPath: settings.dataDir), settings: config)
        } catch {
            throw AgentSettingsError("cannot open the store in '\(settings.dataDir)': \(error); check the directory is writable (--data-dir)")
        }
        if var gossip = settings.gossip {
            gossip.logger = logger
            do {
                self.gossip = try GossipNode(settings: gossip)
            } catch {
                throw AgentSettingsError("gossip: \(error)")
            }
        } else {
            self.gossip = nil
        }
        self.faults = FaultInjection(enabled: ProcessInfo.processInfo.environment["GOSSAMER_FAULT_INJECTION"] == "1")
        if let gossip = self.gossip {
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(timeout: .init(connect: .seconds(2))))
            self.httpClient = client
            self.replicator = Replicator(
                store: self.store, settings: settings.replication,
                membership: GossipReplicationMembership(node: gossip, faults: self.faults),
                transport: HTTPReplicationTransport(client: client, node: settings.nodeName, faults: self.faults), logger: logger)
        } else {
            self.httpClient = nil
            self.replicator = nil
        }
        if let gossip = self.gossip {
            self.registry = Registry(store: self.store, membership: GossipRegistryMembership(node: gossip), settings: settings.registry, logger: logger)
            self.setDrain = { enable in _ = await gossip.mergeTags(["drain": enable ? "1" : nil]) }
        } else {
            let membership = LocalRegistryMembership(name: settings.nodeName, draining: settings.drain)
            self.registry = Registry(store: self.store, membership: membership, settings: settings.registry, logger: logger)
            self.setDrain = { enable in membership.setDraining(enable) }
        }
        let registry = self.registry
        self.redisMirror = settings.redis.map { RedisMirror(registry: registry, endpoint: $0, logger: logger) }
        let metrics = AgentMetrics(
            sources: .init(store: self.store, gossip: self.gossip, replicator: self.replicator, registry: registry, cache: self.redisMirror))
        self.metrics = metrics
        let gossip = self.gossip
        let replicator = self.replicator
        let store = self.store
        let joinGiven = !(settings.gossip?.seeds.isEmpty ?? true)
        do {
            self.alerting = try Alerting(
                store: self.store, settings: settings.alerting, dataDir: settings.dataDir, metrics: metrics,
                sample: { await metrics.samples() },
                aliveAgents: {
                    gossip.map { Set($0.snapshot.members.filter { $0.status == .alive || $0.status == .suspect }.map(\.name)) }
                },
                readinessChecks: { await Self.readiness(store: store, gossip: gossip, joinGiven: joinGiven, replicator: replicator) },
                logger: logger)
        } catch {
            throw AgentSettingsError("cannot open the alert log in '\(settings.dataDir)': \(error); check the directory is writable (--data-dir)")
        }
        self.settings = settings
        self.logger = logger
        self.onReady = onReady
    }

    /// Runs until SIGINT/SIGTERM or `gossamer leave`; shuts every service down gracefully.
    public func run() async throws {
        var server = self.settings.server
        server.version = gossamerVersion
        server.logger = self.logger
        server.logger.logLevel = settings.logLevel
        let cluster = self.gossip.map { GossipClusterView(node: $0, runtime: self) }
        var cacheStatus: (@Sendable () -> (healthy: Bool, detail: String))?
        if let mirror = self.redisMirror { cacheStatus = { mirror.status } }
        let httpMetrics = HTTPMetricsCache(factory: self.metrics.registry)
        let serverName = "gossamer/\(gossamerVersion)"
        let registryRoutes = RegistryRoutes(registry: self.registry, setDrain: self.setDrain, cacheStatus: cacheStatus)
        let fastPath = FastPath(
            store: self.store, registry: registryRoutes, settings: server, serverName: serverName, metrics: httpMetrics)
        let router = buildRouter(
            store: self.store, settings: server, cluster: cluster, replicator: self.replicator, registry: registryRoutes,
            metrics: { [metrics = self.metrics] in await metrics.scrape() }, alerts: self.alerting, httpMetrics: httpMetrics)
        if self.faults.enabled, let gossip = self.gossip { FaultRoutes(faults: self.faults, gossip: gossip).addRoutes(to: router) }
        let settings = self.settings
        let gossip = self.gossip
        let replicator = self.replicator
        let onReady = self.onReady
        let app = Application(
            router: router,
            server: .http1(configuration: .init(additionalChannelHandlers: fastPath.map { [$0.channelHandler()] } ?? [])),
            configuration: .init(address: .hostname(settings.httpHost, port: settings.httpPort), serverName: serverName),
            onServerRunning: { channel in
                let address = channel.localAddress.map { "http://\($0.ipAddress ?? settings.httpHost):\($0.port ?? settings.httpPort)" }
                    ?? "http://\(settings.httpHost):\(settings.httpPort)"
                if let gossip {
                    // Advertise the HTTP API so load balancers and tools can reach every agent.
                    _ = await gossip.mergeTags(["http": String(address.dropFirst("http://".count)), "drain": settings.drain ? "1" : nil])
                }
                await onReady(address, gossip?.snapshot.address?.description)
            },
            logger: self.logger
        )
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: app),
            .init(service: WatchCloser(feed: self.store.feed, registry: self.registry)),
            .init(service: CompactionService(store: self.store, every: settings.compactEvery, logger: self.logger)),
        ]
        // Services stop in reverse order: gossip leaves the cluster first, the HTTP API stops last.
        if let gossip { services.append(.init(service: GossipService(node: gossip), successTerminationBehavior: .gracefullyShutdownGroup)) }
        if let replicator { services.append(.init(service: ReplicationService(replicator: replicator))) }
        services.append(.init(service: RegistryService(registry: self.registry)))
        services.append(.init(service: SystemSamplingService(metrics: self.metrics, sampler: SystemSampler(dataDirectory: settings.dataDir))))
        services.append(.init(service: AlertingService(alerting: self.alerting)))
        if let mirror = self.redisMirror { services.append(.init(service: RedisMirrorService(mirror: mirror))) }
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: self.logger))
        self.group.withLock { $0 = group }
        do {
            try await group.run()
        } catch {
            try? await self.httpClient?.shutdown()
            throw error
        }
        try? await self.httpClient?.shutdown()
    }

    /// Readiness beyond alerting: the store answers; with `--join`, gossip has found another member; no peer has
    /// diverged for longer than the bound.
    static func readiness(store: ConfigStore, gossip: GossipNode?, joinGiven: Bool, replicator: Replicator?) async -> [String: (ok: Bool, detail: String)] {
        var checks: [String: (ok: Bool, detail: String)] = [:]
        do {
            _ = try await store.revision()
            checks["store"] = (true, "ok")
        } catch {
            checks["store"] = (false, "the store does not answer: \(error)")
        }
        if let gossip, joinGiven {
            let others = gossip.snapshot.members.filter { $0.name != gossip.settings.name && ($0.status == .alive || $0.status == .suspect) }
            checks["gossip"] = others.isEmpty ? (false, "not joined: no other member reachable yet (check --join addresses)") : (true, "joined (\(others.count + 1) members alive)")
        }
        if let replicator {
            let divergent = replicator.divergentPeers()
            checks["consistency"] =
                divergent.isEmpty
                ? (true, "ok")
                : (false, "diverged from \(divergent.joined(separator: ", ")) for longer than \(DurationText.format(replicator.settings.divergenceBound))")
        }
        return checks
    }

    /// Starts a graceful shutdown of every service.
    public func stop() async {
        await self.group.withLock { $0 }?.triggerGracefulShutdown()
    }
}

/// Runs a gossip node as a service: on graceful shutdown it leaves the cluster and flushes the leave.
///
/// A leave asked through the API (`POST /v1/agent/leave`) ends the node before the group shuts down; the service
/// then waits for its own turn in the group's shutdown (services stop one at a time, in reverse order, and one that
/// finishes out of turn makes the whole group fail, so the agent would exit 1 after a clean leave).
struct GossipService: Service {
    let node: GossipNode

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await self.node.run()
        } onGracefulShutdown: {
            self.node.leave()
        }
        try? await gracefulShutdown()
    }
}

/// Adapts the gossip node to the HTTP layer's `ClusterView`.
struct GossipClusterView: ClusterView {
    let node: GossipNode
    let runtime: AgentRuntime

    func members() -> [MemberInfo] {
        let snapshot = self.node.snapshot
        return snapshot.members.map { member in
            MemberInfo(
                name: member.name, address: member.address.description, status: member.status.description, incarnation: member.incarnation,
                tags: member.metadata, health: member.name == self.node.settings.name ? snapshot.localHealth : nil)
        }
    }

    func gossipStatus() -> [String: JSONValue] {
        let snapshot = self.node.snapshot
        let metrics = snapshot.metrics
        let shell = snapshot.shell
        let counts = Dictionary(grouping: snapshot.members, by: { $0.status.description }).mapValues { JSONValue.int($0.count) }
        return [
            "address": .string(snapshot.address?.description ?? ""),
            "members": .object(counts),
            "local_health": .int(snapshot.localHealth),
            "queue_depth": .int(snapshot.queueDepth),
            "encrypted": .bool(self.node.keyring != nil),
            "probes_sent": .int(metrics.probesSent), "probes_failed": .int(metrics.probesFailed),
            "indirect_probes": .int(metrics.indirectProbesSent), "suspicions_raised": .int(metrics.suspicionsRaised),
            "suspicions_refuted": .int(metrics.suspicionsRefuted), "deaths": .int(metrics.deaths),
            "malformed_packets": .int(metrics.malformedPackets), "queue_drops": .int(metrics.broadcastQueueDrops),
            "datagrams_in": .int(shell.datagramsIn), "datagrams_out": .int(shell.datagramsOut),
            "bytes_in": .int(shell.bytesIn), "bytes_out": .int(shell.bytesOut), "decrypt_failures": .int(shell.decryptFailures),
            "push_pulls": .int(metrics.pushPullsStarted),
        ]
    }

    func leaveAndStop() async {
        self.node.leave()
        let deadline = ContinuousClock.now + self.node.settings.leaveFlush + .seconds(3)
        while self.node.snapshot.running && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        // Graceful shutdown lets this in-flight request finish, so the caller still gets its answer.
        await self.runtime.stop()
    }

    func changeKeyring(operation: String, key: String) async throws {
        let op: KeyringChange.Operation
        switch operation {
        case "install": op = .install
        case "use": op = .use
        default: op = .remove
        }
        do {
            try await self.node.changeKeyring(KeyringChange(operation: op, key: key))
        } catch {
            throw APIError(error.code == .notEncrypted ? .conflict : .badRequest, code: "\(error.code)", error.message)
        }
    }
}

/// Samples `/proc` into the metrics every few seconds (the first sample at once).
struct SystemSamplingService: Service {
    let metrics: AgentMetrics
    let sampler: SystemSampler
    var every: Duration = .seconds(5)

    func run() async throws {
        var first = true
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            self.metrics.record(system: self.sampler.sample())
            do {
                // The CPU ratios need two readings: take the second one soon, so they show a second after start.
                let pause = first ? Duration.seconds(1) : self.every
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) }
                first = false
            } catch {
                return
            }
        }
    }
}

/// Ends every watch stream and blocking query (KV and registry) when shutdown begins, so the HTTP server is not
/// held open by them for up to their `wait`.
struct WatchCloser: Service {
    let feed: ChangeFeed
    let registry: Registry

    func run() async throws {
        try? await gracefulShutdown()
        self.feed.closeAll()
        self.registry.closeWaits()
    }
}

/// Applies history retention periodically.
struct CompactionService: Service {
    let store: ConfigStore
    let every: Duration
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: self.every) }
            } catch {
                return
            }
            do {
                let report = try await self.store.compact()
                if report.versionsRemoved + report.keysForgotten > 0 {
                    self.logger.info(
                        "history compacted",
                        metadata: ["config.versions_removed": "\(report.versionsRemoved)", "config.keys_forgotten": "\(report.keysForgotten)"])
                }
            } catch {
                self.logger.warning("compaction failed", metadata: ["config.error": "\(error)"])
            }
        }
    }
}
