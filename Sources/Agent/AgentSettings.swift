import ConfigCenter
import Foundation
import Gossip
import GossipCore
import Logging
import Monitor
import RedisCache
import Registry
import Server

/// Everything an agent runs with. Flags, the config file and defaults meet here, and only here.
public struct AgentSettings: Sendable {
    /// Node name; unique in the cluster. Default: the host name.
    public var nodeName: String = ProcessInfo.processInfo.hostName
    /// Directory of the SQLite database. Default `./data`.
    public var dataDir: String = "./data"
    /// HTTP listen address. Default `127.0.0.1:7700`; port 0 picks a free port (printed on start).
    public var httpHost: String = "127.0.0.1"
    public var httpPort: Int = 7700
    /// Log level. Default `info`.
    public var logLevel: Logger.Level = .info
    /// How often history retention runs. Default 10 min.
    public var compactEvery: Duration = .seconds(600)
    /// Gossip settings; nil when no `gossip` address is set (a single agent without a cluster).
    public var gossip: GossipSettings? = nil
    /// The config store's settings.
    public var config = ConfigSettings()
    /// The HTTP layer's settings.
    public var server = ServerSettings()
    /// Replication between agents (used when gossip is on).
    public var replication = ReplicationSettings()
    /// The service registry's settings.
    public var registry = RegistrySettings()
    /// The Redis cache of the registry (`redis://host:port/db`); nil: no cache.
    public var redis: RedisEndpoint? = nil
    /// Start drained: every instance this agent owns is in maintenance.
    public var drain = false
    /// Alert rules, evaluation and notifications.
    public var alerting = AlertingSettings()

    public init() {}

    /// Every setting a config file (or flag) may name, with what it takes.
    public static let knownSettings: [(name: String, help: String)] = [
        ("node_name", "node name, unique in the cluster (default: host name)"),
        ("data_dir", "directory of the SQLite database (default ./data)"),
        ("http", "HTTP listen address host:port (default 127.0.0.1:7700)"),
        ("log_level", "trace, debug, info, notice, warning, error or critical (default info)"),
        ("max_value_bytes", "largest value accepted, in bytes (default 524288)"),
        ("durability", "full (fsync every commit, default) or normal"),
        ("watch_heartbeat", "interval of heartbeat events on watch streams (default 15s)"),
        ("retention.keep_versions", "keep at least this many versions of each key (default: all)"),
        ("retention.keep_for", "keep versions younger than this, e.g. 30d (default: all)"),
        ("retention.tombstone_horizon", "forget deleted keys after this long (default 24h)"),
        ("retention.compact_every", "how often retention runs (default 10m)"),
        ("replication.anti_entropy_interval", "how often the keyspace digest is compared with a random peer (default 5s)"),
        ("replication.write_concern_timeout", "how long ?replicas=K waits by default (default 5s)"),
        ("replication.divergence_bound", "divergence older than this makes /health unhealthy (default 60s)"),
        ("redis", "Redis URL redis://[:password@]host:port/db caching the service registry (default: no cache)"),
        ("drain", "true: start drained, every instance this agent owns in maintenance (default false)"),
        ("registry.min_deregister_critical_after", "shortest deregister_critical_after a registration may ask for (default 1m)"),
        ("alerts.default_rules", "true (default): evaluate the shipped default alert rules; false: only stored rules"),
        ("alerts.interval", "how often a rule without its own interval is evaluated (default 15s)"),
        ("alerts.webhook", "comma-separated webhook URLs notified for rules that name no receivers (default: log only)"),
        ("alerts.group_wait", "wait before the first notification of a new alert group (default 30s)"),
        ("alerts.group_interval", "wait before notifying changes of a group already notified (default 5m)"),
        ("alerts.repeat_interval", "wait before repeating an unchanged firing notification (default 4h)"),
        ("debug_metrics", "true: allow PUT /v1/debug/metrics/gossamer_debug_* to set test gauges (default false)"),
        ("gossip", "gossip address host:port for UDP and TCP (e.g. 127.0.0.1:7946); unset: no cluster"),
        ("join", "comma-separated gossip addresses of members to join"),
        ("encrypt_key", "base64 AES key (16, 24 or 32 bytes) encrypting gossip; make one with `gossamer keygen`"),
        ("cluster_label", "label bound into every encrypted packet, so clusters sharing a key never merge"),
        ("tags", "member tags k=v,k=v gossiped with this member"),
        ("gossip_profile", "lan (default), wan or local: probe, suspicion and gossip timings"),
    ]

    /// Builds settings from layered sources: `values` later in the list win (e.g. `[file, flags]`).
    /// Throws `AgentSettingsError` naming the setting and what it takes.
    public static func resolve(_ layers: [[String: String]]) throws(AgentSettingsError) -> AgentSettings {
        var merged: [String: String] = [:]
        for layer in layers {
            for (name, value) in layer {
                let canonical = name.replacingOccurrences(of: "-", with: "_")
                guard self.knownSettings.contains(where: { $0.name == canonical }) else {
                    throw AgentSettingsError(
                        "unknown setting '\(name)'; known settings: \(self.knownSettings.map(\.name).joined(separator: ", "))")
                }
                merged[canonical] = value
            }
        }
        var settings = AgentSettings()
        func duration(_ name: String) throws(AgentSettingsError) -> Duration? {
            guard let text = merged[name] else { return nil }
            guard let value = DurationText.parse(text) else {
                throw AgentSettingsError("\(name) must be a duration such as 500ms, 30s, 10m, 24h or 7d, not '\(text)'")
            }
            return value
        }
        func int(_ name: String, min: Int) throws(AgentSettingsError) -> Int? {
            guard let text = merged[name] else { return nil }
            guard let value = Int(text), value >= min else { throw AgentSettingsError("\(name) must be an integer ≥ \(min), not '\(text)'") }
            return value
        }
        if let name = merged["node_name"] {
            guard !name.isEmpty, name.count <= 128, !name.contains(":"), !name.contains("@"), !name.contains(where: \.isWhitespace) else {
                throw AgentSettingsError("node_name must be 1-128 characters without spaces, ':' or '@', not '\(name)'")
            }
            settings.nodeName = name
        }
        if let dir = merged["data_dir"] { settings.dataDir = dir }
        if let http = merged["http"] {
            guard let colon = http.lastIndex(of: ":"), let port = Int(http[http.index(after: colon)...]), (0...65535).contains(port) else {
                throw AgentSettingsError("http must be host:port such as 127.0.0.1:7700, not '\(http)'")
            }
            settings.httpHost = String(http[..<colon])
            settings.httpPort = port
        }
        if let level = merged["log_level"] {
            guard let parsed = Logger.Level(rawValue: level.lowercased()) else {
                throw AgentSettingsError("log_level must be trace, debug, info, notice, warning, error or critical, not '\(level)'")
            }
            settings.logLevel = parsed
        }
        if let bytes = try int("max_value_bytes", min: 1) { settings.config.maxValueBytes = bytes }
        if let durability = merged["durability"] {
            guard let parsed = ConfigSettings.Durability(rawValue: durability) else {
                throw AgentSettingsError("durability must be full or normal, not '\(durability)'")
            }
            settings.config.durability = parsed
        }
        if let heartbeat = try duration("watch_heartbeat") {
            guard heartbeat >= .milliseconds(100) else { throw AgentSettingsError("watch_heartbeat must be at least 100ms") }
            settings.server.watchHeartbeat = heartbeat
        }
        if let keep = try int("retention.keep_versions", min: 1) { settings.config.retention.keepVersions = keep }
        if let keepFor = try duration("retention.keep_for") { settings.config.retention.keepFor = keepFor }
        if let horizon = try duration("retention.tombstone_horizon") { settings.config.retention.tombstoneHorizon = horizon }
        if let every = try duration("retention.compact_every") {
            guard every >= .seconds(1) else { throw AgentSettingsError("retention.compact_every must be at least 1s") }
            settings.compactEvery = every
        }
        if let interval = try duration("replication.anti_entropy_interval") {
            guard interval >= .milliseconds(100) else { throw AgentSettingsError("replication.anti_entropy_interval must be at least 100ms") }
            settings.replication.antiEntropyInterval = interval
        }
        if let timeout = try duration("replication.write_concern_timeout") {
            guard timeout >= .milliseconds(10) else { throw AgentSettingsError("replication.write_concern_timeout must be at least 10ms") }
            settings.replication.writeConcernTimeout = timeout
        }
        if let bound = try duration("replication.divergence_bound") {
            guard bound >= .seconds(1) else { throw AgentSettingsError("replication.divergence_bound must be at least 1s") }
            settings.replication.divergenceBound = bound
        }
        if let minimum = try duration("registry.min_deregister_critical_after") {
            guard minimum >= .seconds(1) else { throw AgentSettingsError("registry.min_deregister_critical_after must be at least 1s") }
            settings.registry.minimumDeregisterAfter = minimum
        }
        if let url = merged["redis"], !url.isEmpty {
            do {
                settings.redis = try RedisEndpoint(url: url)
            } catch {
                throw AgentSettingsError("redis: \(error.message) (expected redis://[:password@]host:port/db)")
            }
        }
        if let drain = merged["drain"] {
            guard let value = Bool(drain.lowercased()) else { throw AgentSettingsError("drain must be true or false, not '\(drain)'") }
            settings.drain = value
        }
        func bool(_ name: String) throws(AgentSettingsError) -> Bool? {
            guard let text = merged[name] else { return nil }
            guard let value = Bool(text.lowercased()) else { throw AgentSettingsError("\(name) must be true or false, not '\(text)'") }
            return value
        }
        if let value = try bool("alerts.default_rules") { settings.alerting.defaultRules = value }
        if let value = try bool("debug_metrics") { settings.alerting.debugMetrics = value }
        if let interval = try duration("alerts.interval") {
            guard interval >= AlertRule.minimumInterval else { throw AgentSettingsError("alerts.interval must be at least 1s") }
            settings.alerting.evaluator.defaultInterval = interval
        }
        if let hooks = merged["alerts.webhook"], !hooks.isEmpty {
            settings.alerting.defaultReceivers = try hooks.split(separator: ",").map { part throws(AgentSettingsError) in
                let url = part.trimmingCharacters(in: .whitespaces)
                guard url.hasPrefix("http://") || url.hasPrefix("https://"), URL(string: url)?.host != nil else {
                    throw AgentSettingsError("alerts.webhook takes http:// or https:// URLs, comma-separated, not '\(url)'")
                }
                return .webhook(url)
            }
        }
        if let wait = try duration("alerts.group_wait") { settings.alerting.policy.groupWait = wait }
        if let interval = try duration("alerts.group_interval") {
            guard interval >= .seconds(1) else { throw AgentSettingsError("alerts.group_interval must be at least 1s") }
            settings.alerting.policy.groupInterval = interval
        }
        if let interval = try duration("alerts.repeat_interval") {
            guard interval >= .seconds(1) else { throw AgentSettingsError("alerts.repeat_interval must be at least 1s") }
            settings.alerting.policy.repeatInterval = interval
        }
        settings.alerting.externalURL = "http://\(settings.httpHost):\(settings.httpPort)"
        settings.config.nodeName = settings.nodeName
        settings.server.nodeName = settings.nodeName
        settings.gossip = try self.gossipSettings(merged, nodeName: settings.nodeName)
        return settings
    }
}

extension AgentSettings {
    static func gossipSettings(_ merged: [String: String], nodeName: String) throws(AgentSettingsError) -> GossipSettings? {
        let gossipOnly = ["join", "encrypt_key", "cluster_label", "tags", "gossip_profile"]
        guard let bind = merged["gossip"] else {
            if let name = gossipOnly.first(where: { merged[$0] != nil }) {
                throw AgentSettingsError("\(name) needs a gossip address: add --gossip host:port (e.g. 127.0.0.1:7946)")
            }
            return nil
        }
        guard let address = parseAddress(bind) else {
            throw AgentSettingsError("gossip must be host:port such as 127.0.0.1:7946, not '\(bind)'")
        }
        var settings = GossipSettings()
        settings.name = nodeName
        settings.bindHost = address.host
        settings.bindPort = Int(address.port)
        switch merged["gossip_profile"] ?? "lan" {
        case "lan": settings.swim = .lan
        case "wan": settings.swim = .wan
        case "local": settings.swim = .local
        case let other: throw AgentSettingsError("gossip_profile must be lan, wan or local, not '\(other)'")
        }
        if let join = merged["join"] {
            settings.seeds = try join.split(separator: ",").map { part throws(AgentSettingsError) in
                let text = part.trimmingCharacters(in: .whitespaces)
                guard let seed = parseAddress(text) else {
                    throw AgentSettingsError("join takes gossip addresses host:port[,host:port], not '\(text)'")
                }
                return seed
            }
        }
        if let tags = merged["tags"], !tags.isEmpty {
            for pair in tags.split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, !parts[0].isEmpty else { throw AgentSettingsError("tags take k=v,k=v, not '\(pair)'") }
                settings.tags[String(parts[0]).trimmingCharacters(in: .whitespaces)] = String(parts[1]).trimmingCharacters(in: .whitespaces)
            }
        }
        if let key = merged["encrypt_key"] {
            do {
                settings.keyring = try Keyring(primary: key, label: merged["cluster_label"] ?? "")
            } catch {
                throw AgentSettingsError("encrypt_key: \(error)")
            }
        } else if merged["cluster_label"] != nil {
            throw AgentSettingsError("cluster_label needs encrypt_key (the label is bound into encrypted packets)")
        }
        return settings
    }
}

/// A setting given with a wrong name or value. The message names it and says what it takes.
public struct AgentSettingsError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
