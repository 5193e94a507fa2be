import ConfigCenter
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import Registry

/// Builds the agent's HTTP API over a config store. Handlers only decode, call the store and encode.
public func buildRouter(
    store: ConfigStore, settings: ServerSettings, cluster: (any ClusterView)? = nil, replicator: Replicator? = nil,
    registry: RegistryRoutes? = nil, metrics: (@Sendable () async -> String)? = nil, alerts: (any AlertsBackend)? = nil,
    httpMetrics: HTTPMetricsCache? = nil
) -> Router<AgentRequestContext> {
    let router = Router(context: AgentRequestContext.self)
    // Outermost, so it sees the status the client gets (after errors became JSON answers).
    if let httpMetrics { router.add(middleware: HTTPMetricsMiddleware(cache: httpMetrics)) }
    router.add(middleware: ResponseMiddleware(node: settings.nodeName, feed: store.feed))
    // Request logging costs on every request; only pay for it when someone will read it.
    if settings.logger.logLevel <= .debug { router.add(middleware: LogRequestsMiddleware(.debug)) }
    KVController(store: store, settings: settings, replicator: replicator).addRoutes(to: router)
    TxnController(store: store, replicator: replicator).addRoutes(to: router)
    if let replicator { ReplicationController(replicator: replicator).addRoutes(to: router) }
    WatchController(store: store, settings: settings).addRoutes(to: router)
    StatusController(
        store: store, settings: settings, cluster: cluster, started: .now, startedWall: Date(), replicator: replicator,
        registry: registry?.registry, cacheStatus: registry?.cacheStatus)
        .addRoutes(to: router)
    SnapshotController(store: store).addRoutes(to: router)
    if let registry {
        RegistryController(registry: registry.registry, settings: settings, setDrain: registry.setDrain, answers: registry.answers)
            .addRoutes(to: router)
    }
    if let alerts { AlertController(backend: alerts, node: settings.nodeName).addRoutes(to: router) }
    if let cluster { ClusterController(cluster: cluster).addRoutes(to: router) }
    if let metrics {
        // Prometheus text exposition (version 0.0.4).
        router.get("/metrics") { request, _ -> Response in
            _ = try QueryFlags(request, allowed: [], endpoint: "GET /metrics")
            return JSONBody.text(await metrics(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
    }
    return router
}


/// What the registry's routes need from the agent: the registry and a way to drain this agent.
public struct RegistryRoutes: Sendable {
    public var registry: Registry
    public var setDrain: @Sendable (Bool) async -> Void
    /// The Redis cache's state for `/health` (nil: no cache configured).
    public var cacheStatus: (@Sendable () -> (healthy: Bool, detail: String))?
    /// Encoded lookup answers, shared by the router's lookups and `FastPath`.
    let answers = LookupCache()

    public init(
        registry: Registry, setDrain: @escaping @Sendable (Bool) async -> Void, cacheStatus: (@Sendable () -> (healthy: Bool, detail: String))? = nil
    ) {
        self.registry = registry
        self.setDrain = setDrain
        self.cacheStatus = cacheStatus
    }
}
