import ConfigCenter
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Builds the agent's HTTP API over a config store. Handlers only decode, call the store and encode.
public func buildRouter(
    store: ConfigStore, settings: ServerSettings, cluster: (any ClusterView)? = nil, replicator: Replicator? = nil
) -> Router<AgentRequestContext> {
    let router = Router(context: AgentRequestContext.self)
    router.add(middleware: ResponseMiddleware(node: settings.nodeName, feed: store.feed))
    // Request logging costs on every request; only pay for it when someone will read it.
    if settings.logger.logLevel <= .debug { router.add(middleware: LogRequestsMiddleware(.debug)) }
    KVController(store: store, settings: settings, replicator: replicator).addRoutes(to: router)
    TxnController(store: store, replicator: replicator).addRoutes(to: router)
    if let replicator { ReplicationController(replicator: replicator).addRoutes(to: router) }
    WatchController(store: store, settings: settings).addRoutes(to: router)
    StatusController(store: store, settings: settings, cluster: cluster, started: .now, startedWall: Date(), replicator: replicator)
        .addRoutes(to: router)
    SnapshotController(store: store).addRoutes(to: router)
    if let cluster { ClusterController(cluster: cluster).addRoutes(to: router) }
    return router
}

