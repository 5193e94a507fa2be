import AsyncHTTPClient
import Foundation
import Gossip
import GossipCore
import LoadBalancer
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Proxy
import Registry
import ServiceLifecycle
import Synchronization
import UnixSignals

/// What `gossamer lb` runs with: flags meet here, and only here.
public struct LoadBalancerSettings: Sendable {
    /// The proxy (listen address, timeouts, hash key, strategy).
    public var proxy = ProxySettings()
    /// Gossip: the load balancer joins the cluster as a member tagged `role=lb` that stores no data.
    public var gossip = GossipSettings()
    /// `--route /svc/payments/=payments`: path prefix → registered service.
    public var routes: [(prefix: String, service: String)] = []
    public var logLevel: Logger.Level = .info
    /// How long the lb waits, before it listens, for its pools to be loaded: at least one agent from gossip and
    /// the first answer for each routed service (like Envoy's cluster warming). Requests that arrived earlier
    /// would get 503 `no_upstream` for a pool that is merely not loaded yet. After this it listens anyway and
    /// logs which pools are still empty.
    public var warmupTimeout: Duration = .seconds(5)

    public init() {}

    /// The listen address as given (`host:port`).
    public var listen: String { "\(self.proxy.listenHost):\(self.proxy.listenPort)" }

    /// The picking strategy's name, as the `--strategy` flag spells it.
    public var strategyName: String {
        switch self.proxy.lbSettings.strategy {
        case .roundRobin: "round-robin"
        case .weightedRoundRobin: "weighted"
        case .leastRequest: "least-conn"
        case .consistentHash: "consistent-hash"
        }
    }

    /// Builds settings from flag values (`listen`, `gossip`, `join`, `strategy`, `hash_key`, `bounded_load`,
    /// `route` (comma-separated), `node_name`, `encrypt_key`, `cluster_label`, `gossip_profile`, `log_level`).
    public static func resolve(_ flags: [String: String]) throws(AgentSettingsError) -> LoadBalancerSettings {
        var settings = LoadBalancerSettings()
        let listen = flags["listen"] ?? "127.0.0.1:8080"
        guard let address = parseAddress(listen) else {
            throw AgentSettingsError("listen must be host:port such as 127.0.0.1:8080, not '\(listen)'")
        }
        settings.proxy.listenHost = address.host
        settings.proxy.listenPort = Int(address.port)
        var merged = flags
        merged["gossip"] = flags["gossip"] ?? "127.0.0.1:7947"
        let name = flags["node_name"] ?? "lb-\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
        guard let gossip = try AgentSettings.gossipSettings(merged, nodeName: name) else {
            throw AgentSettingsError("gossamer lb needs a gossip address (--gossip host:port)")
        }
        guard !gossip.seeds.isEmpty else {
            throw AgentSettingsError("gossamer lb needs --join <an agent's gossip address> to learn the cluster")
        }
        settings.gossip = gossip
        settings.gossip.tags["role"] = "lb"
        switch flags["strategy"] ?? "round-robin" {
        case "round-robin": settings.proxy.lbSettings.strategy = .roundRobin
        case "weighted": settings.proxy.lbSettings.strategy = .weightedRoundRobin
        case "least-conn": settings.proxy.lbSettings.strategy = .leastRequest
        case "consistent-hash": settings.proxy.lbSettings.strategy = .consistentHash
        case let other: throw AgentSettingsError("strategy must be round-robin, weighted, least-conn or consistent-hash, not '\(other)'")
        }
        if let key = flags["hash_key"] {
            if key.hasPrefix("header:"), key.count > 7 {
                settings.proxy.hashKey = .header(String(key.dropFirst(7)))
            } else if key.hasPrefix("cookie:"), key.count > 7 {
                settings.proxy.hashKey = .cookie(String(key.dropFirst(7)))
            } else if key == "path" {
                settings.proxy.hashKey = .path
            } else if key == "client-ip" {
                settings.proxy.hashKey = .clientIP
            } else {
                throw AgentSettingsError("hash-key must be header:<name>, cookie:<name>, path or client-ip, not '\(key)'")
            }
        } else if settings.proxy.lbSettings.strategy == .consistentHash {
            settings.proxy.hashKey = .clientIP
        }
        if let text = flags["bounded_load"] {
            guard let factor = Double(text), factor >= 1 else { throw AgentSettingsError("bounded-load must be a number ≥ 1 such as 1.25, not '\(text)'") }
            guard settings.proxy.lbSettings.strategy == .consistentHash else {
                throw AgentSettingsError("bounded-load applies to --strategy consistent-hash only")
            }
            settings.proxy.lbSettings.consistentHash.boundedLoadFactor = factor
        }
        for route in (flags["route"] ?? "").split(separator: ",") where !route.isEmpty {
            let parts = route.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, parts[0].hasPrefix("/") else {
                throw AgentSettingsError("route takes /path/prefix/=service, e.g. /svc/payments/=payments, not '\(route)'")
            }
            do {
                try RegistrationRules.validateServiceName(parts[1])
            } catch {
                throw AgentSettingsError("route '\(route)': \(error.message)")
            }
            settings.routes.append((parts[0], parts[1]))
        }
        if let level = flags["log_level"] {
            guard let parsed = Logger.Level(rawValue: level) else { throw AgentSettingsError("log-level must be trace, debug, info, notice, warning, error or critical") }
            settings.logLevel = parsed
        }
        return settings
    }
}

/// `gossamer lb`: an HTTP load balancer that learns the agents from gossip (it joins as a member tagged
/// `role=lb` that stores no data) and fronts their API, plus one pool per `--route` fed with the passing
/// instances of a registered service (blocking queries against a live agent).
public final class LoadBalancerRuntime: Sendable {
    public let settings: LoadBalancerSettings
    public let gossip: GossipNode
    public let proxy: HTTPProxy
    /// The agents' HTTP APIs.
    let agents: UpstreamPool
    /// One pool per routed service.
    let services: [(service: String, pool: UpstreamPool)]
    private let http: HTTPClient
    private let logger: Logger
    private let warmup: Warmup

    public init(settings: LoadBalancerSettings, logger: Logger) throws {
        var gossipSettings = settings.gossip
        gossipSettings.logger = logger
        do {
            self.gossip = try GossipNode(settings: gossipSettings)
        } catch {
            throw AgentSettingsError("gossip: \(error)")
        }
        self.agents = UpstreamPool(name: "agents", settings: settings.proxy.lbSettings)
        self.services = settings.routes.map { ($0.service, UpstreamPool(name: $0.service, settings: settings.proxy.lbSettings)) }
        self.warmup = Warmup([self.agents.name] + settings.routes.map(\.service))
        var routes = [Route(pathPrefix: "/", pool: self.agents, stripPrefix: false)]
        for (route, service) in zip(settings.routes, self.services) {
            routes.append(Route(pathPrefix: route.prefix, pool: service.pool, stripPrefix: true))
        }
        self.proxy = HTTPProxy(settings: settings.proxy, routes: routes, logger: logger)
        var configuration = HTTPClient.Configuration(timeout: .init(connect: .seconds(2)))
        configuration.connectionPool.retryConnectionEstablishment = false
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.settings = settings
        self.logger = logger
    }

    /// Runs until SIGINT/SIGTERM; leaves the cluster on the way out.
    public func run(onReady: @escaping @Sendable (_ listen: String, _ gossip: String?) async -> Void = { _, _ in }) async throws {
        let services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: ProxyService(
                proxy: self.proxy, warmup: self.warmup, warmupTimeout: self.settings.warmupTimeout, logger: self.logger,
                onReady: { [gossip] listen in await onReady(listen, gossip.snapshot.address?.description) })),
            .init(service: MembershipFollower(node: self.gossip, pool: self.agents, warmup: self.warmup, logger: self.logger)),
        ] + self.services.map {
            .init(service: ServiceFollower(
                service: $0.service, pool: $0.pool, agents: self.agents, http: self.http, warmup: self.warmup, logger: self.logger))
        }
            + [.init(service: GossipService(node: self.gossip), successTerminationBehavior: .gracefullyShutdownGroup)]
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: self.logger))
        do {
            try await group.run()
        } catch {
            try? await self.http.shutdown()
            throw error
        }
        try? await self.http.shutdown()
    }
}

/// The pools the lb waits for before it listens (see `LoadBalancerSettings.warmupTimeout`).
final class Warmup: Sendable {
    private let pending: Mutex<Set<String>>

    init(_ pools: [String]) { self.pending = Mutex(Set(pools)) }

    /// The pool has been loaded once (agents: at least one agent; a service: its first answer, even empty).
    func loaded(_ pool: String) { _ = self.pending.withLock { $0.remove(pool) } }

    /// Pools not loaded yet, sorted.
    var waiting: [String] { self.pending.withLock { $0.sorted() } }

    /// Returns once every pool is loaded, the timeout runs out or shutdown begins; the pools still not loaded.
    func wait(timeout: Duration) async -> [String] {
        let deadline = ContinuousClock.now + timeout
        while !self.waiting.isEmpty, ContinuousClock.now < deadline, !Task.isShuttingDownGracefully, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return self.waiting
    }
}

/// The proxy as a service: it listens once its pools are loaded (or the warm-up timeout ran out).
struct ProxyService: Service {
    let proxy: HTTPProxy
    let warmup: Warmup
    let warmupTimeout: Duration
    let logger: Logger
    let onReady: @Sendable (String) async -> Void

    func run() async throws {
        let notLoaded = await self.warmup.wait(timeout: self.warmupTimeout)
        if Task.isShuttingDownGracefully || Task.isCancelled { return }
        if !notLoaded.isEmpty {
            self.logger.warning(
                "listening before every pool is loaded; requests for these get 503 until they are",
                metadata: ["lb.pools": "\(notLoaded.joined(separator: ","))", "lb.waited": "\(self.warmupTimeout)"])
        }
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await self.proxy.run() }
                group.addTask {
                    while self.proxy.localAddress == nil { try await Task.sleep(for: .milliseconds(10)) }
                    let address = self.proxy.localAddress
                    await self.onReady("http://\(address?.ipAddress ?? "127.0.0.1"):\(address?.port ?? 0)")
                }
                try await group.waitForAll()
            }
        } onGracefulShutdown: {
            Task { await self.proxy.shutdown() }
        }
    }
}

/// Keeps the agents' pool equal to the alive members that advertise an HTTP API (not other load balancers):
/// updated on every membership event, so a dead agent leaves the pool within the gossip detection time.
struct MembershipFollower: Service {
    let node: GossipNode
    let pool: UpstreamPool
    let warmup: Warmup
    let logger: Logger

    func run() async throws {
        self.refresh()
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await _ in self.node.events() { self.refresh() }
                }
                // Tags (the HTTP address) can change without a membership event on this side: re-read now and then.
                // This one also keeps the service running until shutdown: gossip stops first (it leaves the
                // cluster), which ends the event stream, and a service that returns before its turn fails the group.
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(1))
                        self.refresh()
                    }
                }
                await group.waitForAll()
            }
        }
    }

    private func refresh() {
        let endpoints = self.node.snapshot.members.compactMap { member -> Endpoint? in
            guard member.status == .alive || member.status == .suspect, member.metadata["role"] != "lb",
                let http = member.metadata["http"], let address = parseAddress(http)
            else { return nil }
            return Endpoint(id: member.name, address: .init(host: address.host, port: Int(address.port)))
        }
        self.pool.update(endpoints)
        if !endpoints.isEmpty { self.warmup.loaded(self.pool.name) }
    }
}

/// Keeps a service's pool equal to its passing instances, by blocking queries against a live agent.
struct ServiceFollower: Service {
    let service: String
    let pool: UpstreamPool
    let agents: UpstreamPool
    let http: HTTPClient
    let warmup: Warmup
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            // The first question is a plain lookup (so an unknown service, whose index stays 0, is answered at
            // once); later ones block on the index of the last answer. An index is a counter of the agent that
            // gave it: ask plainly again when asking another agent.
            var index: Int64?
            var asked = ""
            while !Task.isCancelled {
                guard let agent = self.agents.status().first(where: \.isHealthy) else {
                    try? await Task.sleep(for: .milliseconds(200))
                    continue
                }
                if agent.id != asked { index = nil }
                asked = agent.id
                let blocking = index.map { "&index=\($0)&wait=30s" } ?? ""
                var request = HTTPClientRequest(url: "http://\(agent.address)/v1/services/\(self.service)?passing\(blocking)")
                request.headers.add(name: "User-Agent", value: "gossamer-lb")
                do {
                    let response = try await self.http.execute(request, timeout: .seconds(40))
                    let body = try await response.body.collect(upTo: 16 * 1024 * 1024)
                    guard response.status == .ok else { throw LoadBalancerError("\(agent.id) answered \(response.status.code)") }
                    let lookup = try JSONDecoder().decode(ServiceLookup.self, from: Data(buffer: body))
                    self.pool.update(lookup.instances.map {
                        Endpoint(id: $0.id, address: .init(host: $0.address, port: $0.port), weight: $0.weight, zone: $0.zone)
                    })
                    index = lookup.index
                    self.warmup.loaded(self.service)
                } catch {
                    if Task.isCancelled { return }
                    self.logger.warning("cannot read service instances; retrying", metadata: ["lb.service": "\(self.service)", "lb.error": "\(error)"])
                    index = nil
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }
}

struct LoadBalancerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
