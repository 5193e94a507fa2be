import ConfigCenter
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Builds the agent's HTTP API over a config store. Handlers only decode, call the store and encode.
public func buildRouter(store: ConfigStore, settings: ServerSettings, cluster: (any ClusterView)? = nil) -> Router<AgentRequestContext> {
    let router = Router(context: AgentRequestContext.self)
    router.add(middleware: GossamerHeadersMiddleware(node: settings.nodeName, feed: store.feed))
    router.add(middleware: ErrorMiddleware())
    router.add(middleware: LogRequestsMiddleware(.debug))
    KVController(store: store, settings: settings).addRoutes(to: router)
    TxnController(store: store).addRoutes(to: router)
    WatchController(store: store, settings: settings).addRoutes(to: router)
    StatusController(store: store, settings: settings, cluster: cluster, started: .now, startedWall: Date()).addRoutes(to: router)
    if let cluster { ClusterController(cluster: cluster).addRoutes(to: router) }
    return router
}

/// Adds `X-Gossamer-Node` and `X-Gossamer-Revision` to every response.
struct GossamerHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    let node: String
    let feed: ChangeFeed

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        }
        response.headers[.gossamerNode] = self.node
        response.headers[.gossamerRevision] = "\(self.feed.revision)"
        return response
    }
}
