import ConfigCenter
import Foundation
import Hummingbird
import Logging
import NIOCore
import Server
import ServiceLifecycle

/// Version of this build, reported by `/v1/status` and `gossamer --version`.
public let gossamerVersion = "0.1.0"

/// Builds a runnable agent: the store, the HTTP API and the background services, under one service group.
///
/// `onReady` is called with the bound HTTP address once the server listens (port 0 picks a free one).
public func buildAgent(
    settings: AgentSettings, logger: Logger, onReady: @escaping @Sendable (String) async -> Void = { _ in }
) async throws -> some ApplicationProtocol {
    var config = settings.config
    config.logger = logger
    let store: ConfigStore
    do {
        store = try ConfigStore(directory: URL(fileURLWithPath: settings.dataDir), settings: config)
    } catch {
        throw AgentSettingsError("cannot open the store in '\(settings.dataDir)': \(error); check the directory is writable (--data-dir)")
    }
    var server = settings.server
    server.version = gossamerVersion
    server.logger = logger
    let router = buildRouter(store: store, settings: server)
    let compaction = CompactionService(store: store, every: settings.compactEvery, logger: logger)
    return Application(
        router: router,
        configuration: .init(address: .hostname(settings.httpHost, port: settings.httpPort), serverName: "gossamer/\(gossamerVersion)"),
        services: [compaction],
        onServerRunning: { channel in
            let address = channel.localAddress.map { "http://\($0.ipAddress ?? settings.httpHost):\($0.port ?? settings.httpPort)" }
            await onReady(address ?? "http://\(settings.httpHost):\(settings.httpPort)")
        },
        logger: logger
    )
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
