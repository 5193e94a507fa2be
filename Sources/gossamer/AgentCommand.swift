import Agent
import ArgumentParser
import Foundation
import Hummingbird
import Logging

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run a Gossamer agent: the config store and its HTTP API.",
        discussion: """
            Flags override the config file, which overrides the defaults. Stop with Ctrl-C or SIGTERM:
            the agent finishes in-flight requests and exits 0.

            Config file keys (TOML or YAML): \(AgentSettings.knownSettings.map(\.name).joined(separator: ", ")).
            Example: gossamer agent --node-name dev --data-dir ./data --http 127.0.0.1:7700
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
        let file = try self.configFile.map { path throws(AgentSettingsError) in try ConfigFile.load(path: path) } ?? [:]
        let settings: AgentSettings
        do {
            settings = try AgentSettings.resolve([file, flags])
        } catch {
            throw CLIFailure("\(error)")
        }
        let level = settings.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "gossamer")
        logger[metadataKey: "node"] = "\(settings.nodeName)"
        let app = try await buildAgent(settings: settings, logger: logger) { address in
            Output.line("gossamer agent \(settings.nodeName) listening on \(address) (data: \(settings.dataDir))")
        }
        try await app.runService()
    }
}
