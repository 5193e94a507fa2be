import Agent
import ArgumentParser
import Foundation
import Gossip
import Hummingbird
import Logging
import Metrics

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run a Gossamer agent: the config store, its HTTP API and cluster membership.",
        discussion: """
            Flags override the config file, which overrides the defaults. Stop with Ctrl-C or SIGTERM: \
            the agent finishes in-flight requests and exits 0.

            Config file keys (TOML or YAML): \(AgentSettings.knownSettings.map(\.name).joined(separator: ", ")).

            Examples:
              gossamer agent --node-name dev --data-dir ./data --http 127.0.0.1:7700
              gossamer agent --node-name n2 --data-dir ./n2 --http 127.0.0.1:7701 \\
                --gossip 127.0.0.1:7947 --join 127.0.0.1:7946
            """
    )

    @Option(help: "Node name, unique in the cluster (default: the host name).")
    var nodeName: String?

    @Option(help: "Directory of the SQLite database (default: ./data).")
    var dataDir: String?

    @Option(help: "HTTP listen address host:port (default: 127.0.0.1:7700; port 0 picks a free one).")
    var http: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (default: info).")
    var logLevel: String?

    @Option(help: "fsync policy: full (every commit, default) or normal.")
    var durability: String?

    @Option(help: "Largest value accepted, in bytes (default: 524288).")
    var maxValueBytes: Int?

    @Option(help: "Gossip address host:port (UDP and TCP), e.g. 127.0.0.1:7946. Without it the agent runs alone.")
    var gossip: String?

    @Option(help: "Gossip addresses of members to join, comma-separated (host:port,host:port).")
    var join: String?

    @Option(help: "Base64 AES key encrypting all gossip (make one with `gossamer keygen`).")
    var encryptKey: String?

    @Option(help: "Label bound into encrypted packets, so clusters sharing a key never merge.")
    var clusterLabel: String?

    @Option(help: "Member tags gossiped with this agent: k=v,k=v.")
    var tags: String?

    @Option(help: "Gossip timings: lan (default), wan or local.")
    var gossipProfile: String?

    @Option(help: "Redis URL caching the service registry, e.g. redis://127.0.0.1:6379/0 (default: no cache).")
    var redis: String?

    @Flag(help: "Start drained: every service instance this agent owns is in maintenance until `gossamer services drain off`.")
    var drain = false

    @Option(name: .customLong("config"), help: "Config file (.toml, .yaml or .yml) with the same keys as the flags.")
    var configFile: String?

    func run() async throws {
        var flags: [String: String] = [:]
        flags["node_name"] = self.nodeName
        flags["data_dir"] = self.dataDir
        flags["http"] = self.http
        flags["log_level"] = self.logLevel
        flags["durability"] = self.durability
        flags["max_value_bytes"] = self.maxValueBytes.map(String.init)
        flags["gossip"] = self.gossip
        flags["join"] = self.join
        flags["encrypt_key"] = self.encryptKey
        flags["cluster_label"] = self.clusterLabel
        flags["tags"] = self.tags
        flags["gossip_profile"] = self.gossipProfile
        flags["redis"] = self.redis
        if self.drain { flags["drain"] = "true" }
        let file = try self.configFile.map { path throws(AgentSettingsError) in try ConfigFile.load(path: path) } ?? [:]
        let settings: AgentSettings
        do {
            settings = try AgentSettings.resolve([file, flags])
        } catch {
            throw CLIFailure("\(error)")
        }
        let level = settings.logLevel
        Output.bootstrapLogging(level: level)
        var logger = Logger(label: "gossamer")
        logger[metadataKey: "node"] = "\(settings.nodeName)"
        let runtime = try AgentRuntime(settings: settings, logger: logger) { address, gossip in
            let cluster = gossip.map { " gossip \($0)" } ?? ""
            Output.line("gossamer agent \(settings.nodeName) listening on \(address)\(cluster) (data: \(settings.dataDir))")
        }
        // Anything emitting through the swift-metrics facade (libraries included) lands in the agent's registry,
        // so /metrics and the alert rules see it.
        MetricsSystem.bootstrap(runtime.metricsRegistry)
        do {
            try await runtime.run()
        } catch let error as GossipError {
            throw CLIFailure("\(error)")
        } catch where "\(error)".contains("Address already in use") {
            throw CLIFailure(
                "cannot listen for HTTP on \(settings.httpHost):\(settings.httpPort): the address is in use (another agent?); choose another --http")
        }
    }
}
