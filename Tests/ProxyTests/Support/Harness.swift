import LoadBalancer
import Logging
import NIOCore
import Proxy

/// A logger that drops everything (tests print nothing unless they fail).
let quietLogger = Logger(label: "proxy-tests", factory: { _ in SwiftLogNoOpLogHandler() })

/// Three (or more) backends behind a running proxy: `/` goes to pool `main`, `/empty` to an empty pool `empty`.
struct Harness: Sendable {
    let backends: [Backend]
    let pool: UpstreamPool
    let proxy: HTTPProxy
    let port: Int

    /// The endpoints of `backends` with the given weights (all default when `nil`).
    func endpoints(of backends: [Backend], weights: [Int]? = nil) -> [Endpoint] {
        backends.enumerated().map { index, backend in
            Endpoint(
                id: backend.id, address: Endpoint.Address(host: "127.0.0.1", port: backend.port),
                weight: weights?[index] ?? Endpoint.defaultWeight)
        }
    }
}

/// Starts the backends and the proxy, runs `body`, then shuts everything down, all within `seconds`.
func withProxy(
    strategy: LoadBalancer.Settings.Strategy = .roundRobin,
    weights: [Int] = [100, 100, 100],
    seconds: Double = 30,
    configure: @escaping @Sendable (inout ProxySettings) -> Void = { _ in },
    _ body: @escaping @Sendable (Harness) async throws -> Void
) async throws {
    try await within(seconds) {
        var backends: [Backend] = []
        for index in weights.indices { backends.append(try await Backend.start(id: "b\(index)")) }
        var lb = LoadBalancer.Settings()
        lb.strategy = strategy
        lb.logger = quietLogger
        let pool = UpstreamPool(name: "main", settings: lb)
        let empty = UpstreamPool(name: "empty", settings: lb)
        var settings = ProxySettings()
        settings.listenPort = 0
        settings.lbSettings = lb
        settings.shutdownGracePeriod = .milliseconds(200)
        configure(&settings)
        let proxy = HTTPProxy(
            settings: settings,
            routes: [Route(pathPrefix: "/", pool: pool), Route(pathPrefix: "/empty", pool: empty, stripPrefix: true)],
            logger: quietLogger
        )
        let shell = Harness(backends: backends, pool: pool, proxy: proxy, port: 0)
        pool.update(shell.endpoints(of: backends, weights: weights))
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await proxy.run() }
                var port = 0
                while port == 0 {
                    try await Task.sleep(for: .milliseconds(5))
                    port = proxy.localAddress?.port ?? 0
                }
                do {
                    try await body(Harness(backends: backends, pool: pool, proxy: proxy, port: port))
                } catch {
                    await proxy.shutdown()
                    throw error
                }
                await proxy.shutdown()
                try await group.waitForAll()
            }
        } catch {
            for backend in backends { await backend.stop() }
            throw error
        }
        for backend in backends { await backend.stop() }
    }
}
