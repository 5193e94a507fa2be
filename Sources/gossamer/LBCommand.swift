import Agent
import ArgumentParser
import Foundation
import Gossip
import Logging

struct LBCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lb",
        abstract: "Run an HTTP load balancer in front of the cluster's agents and registered services.",
        discussion: """
            The load balancer joins the cluster by gossip as a member tagged role=lb that stores no data, and \
            proxies to the alive agents' HTTP APIs: an agent that dies leaves the pool within the gossip \
            detection time. Each --route sends a path prefix to the passing instances of a registered service \
            (the prefix is stripped). It starts listening once it knows an agent and has loaded every routed \
            service (at most 5 s; then it listens anyway and logs the pools still empty). Admin: GET \
            /_lb/upstreams (JSON) and GET /_lb/metrics (Prometheus text). Stop with Ctrl-C or SIGTERM.

            Examples:
              gossamer lb --listen 127.0.0.1:8080 --gossip 127.0.0.1:7950 \\
                --join 127.0.0.1:7946
              gossamer lb --join 127.0.0.1:7946 --strategy consistent-hash \\
                --hash-key header:X-User --bounded-load 1.25
              gossamer lb --join 127.0.0.1:7946 --route /svc/payments/=payments
            """
    )

    @Option(help: "Listen address host:port (default: 127.0.0.1:8080; port 0 picks a free one).")
    var listen: String?

    @Option(help: "Gossip address host:port of the load balancer itself (default: 127.0.0.1:7947).")
    var gossip: String?

    @Option(help: "Gossip addresses of agents to join, comma-separated (required).")
    var join: String?

    @Option(help: "round-robin (default), weighted, least-conn or consistent-hash.")
    var strategy: String?

    @Option(help: "Consistent-hash key: header:<name>, cookie:<name>, path or client-ip (default: client-ip).")
    var hashKey: String?

    @Option(help: "Consistent-hash bounded-load factor c ≥ 1 (e.g. 1.25): no endpoint takes more than c × its share.")
    var boundedLoad: String?

    @Option(parsing: .singleValue, help: "Route a path prefix to a registered service: /svc/payments/=payments (repeatable).")
    var route: [String] = []

    @Option(help: "Member name in gossip (default: lb-<host>-<pid>).")
    var nodeName: String?

    @Option(help: "Base64 AES key of the cluster's gossip (as given to the agents).")
    var encryptKey: String?

    @Option(help: "Cluster label bound into encrypted packets (as given to the agents).")
    var clusterLabel: String?

    @Option(help: "Gossip timings: lan (default), wan or local (as the agents).")
    var gossipProfile: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (default: info).")
    var logLevel: String?

    func run() async throws {
        var flags: [String: String] = [:]
        flags["listen"] = self.listen
        flags["gossip"] = self.gossip
        flags["join"] = self.join
        flags["strategy"] = self.strategy
        flags["hash_key"] = self.hashKey
        flags["bounded_load"] = self.boundedLoad
        flags["route"] = self.route.isEmpty ? nil : self.route.joined(separator: ",")
        flags["node_name"] = self.nodeName
        flags["encrypt_key"] = self.encryptKey
        flags["cluster_label"] = self.clusterLabel
        flags["gossip_profile"] = self.gossipProfile
        flags["log_level"] = self.logLevel
        let settings: LoadBalancerSettings
        do {
            settings = try LoadBalancerSettings.resolve(flags)
        } catch {
            throw CLIFailure("\(error)")
        }
        let level = settings.logLevel
        Output.bootstrapLogging(level: level)
        var logger = Logger(label: "gossamer-lb")
        logger[metadataKey: "node"] = "\(settings.gossip.name)"
        let runtime = try LoadBalancerRuntime(settings: settings, logger: logger)
        do {
            try await runtime.run { listen, gossip in
                Output.line("gossamer lb \(settings.gossip.name) listening on \(listen) gossip \(gossip ?? "?") (strategy \(settings.strategyName))")
            }
        } catch let error as GossipError {
            throw CLIFailure("\(error)")
        } catch where "\(error)".contains("Address already in use") {
            throw CLIFailure("cannot listen on \(settings.listen): the address is in use; choose another --listen")
        }
    }
}
