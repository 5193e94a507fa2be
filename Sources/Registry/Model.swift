import ConfigCenter
import Foundation

/// Health of a check or an instance, from best to worst. `maintenance` is an operator's choice, not a check result.
public enum HealthStatus: String, Codable, Sendable, Comparable, CaseIterable {
    case passing, warning, critical, maintenance

    private var rank: Int {
        switch self {
        case .passing: 0
        case .warning: 1
        case .critical: 2
        case .maintenance: 3
        }
    }

    public static func < (lhs: HealthStatus, rhs: HealthStatus) -> Bool { lhs.rank < rhs.rank }
}

/// What a check probes.
public enum CheckKind: String, Codable, Sendable, CaseIterable {
    /// GET a URL: 2xx passing, 429 warning, anything else (or no answer) critical.
    case http
    /// Open a TCP connection to `host:port`.
    case tcp
    /// The service reports in (`PUT /v1/checks/<id>/pass|warn|fail`) before the TTL runs out.
    case ttl
}

/// A health check as registered, with its defaults filled in.
public struct CheckDefinition: Codable, Sendable, Equatable {
    /// Unique on the owner agent; `PUT /v1/checks/<id>/…` names it.
    public var id: String
    public var kind: CheckKind
    /// The URL of an `http` check.
    public var url: String?
    /// The `host:port` of a `tcp` check.
    public var tcp: String?
    /// The time-to-live of a `ttl` check, in milliseconds.
    public var ttlMillis: Int64?
    public var intervalMillis: Int64
    public var timeoutMillis: Int64
    /// Consecutive successes needed to turn passing (anti-flap).
    public var successBeforePassing: Int
    /// Consecutive failures needed to turn critical (anti-flap).
    public var failuresBeforeCritical: Int

    public init(
        id: String, kind: CheckKind, url: String? = nil, tcp: String? = nil, ttlMillis: Int64? = nil,
        intervalMillis: Int64 = 10_000, timeoutMillis: Int64 = 2_000, successBeforePassing: Int = 1, failuresBeforeCritical: Int = 1
    ) {
        self.id = id
        self.kind = kind
        self.url = url
        self.tcp = tcp
        self.ttlMillis = ttlMillis
        self.intervalMillis = intervalMillis
        self.timeoutMillis = timeoutMillis
        self.successBeforePassing = successBeforePassing
        self.failuresBeforeCritical = failuresBeforeCritical
    }

    enum CodingKeys: String, CodingKey {
        case id, kind = "type", url, tcp, ttlMillis = "ttl_ms", intervalMillis = "interval_ms", timeoutMillis = "timeout_ms"
        case successBeforePassing = "success_before_passing", failuresBeforeCritical = "failures_before_critical"
    }
}

/// A registered service instance: the record stored (replicated) under `_gossamer/registry/instances/<service>/<id>`.
public struct ServiceInstance: Codable, Sendable, Equatable {
    public var service: String
    public var id: String
    public var address: String
    public var port: Int
    public var tags: [String]
    public var meta: [String: String]
    public var weight: Int
    public var zone: String?
    public var checks: [CheckDefinition]
    /// The agent the instance was registered with: it runs the checks and writes the health.
    public var owner: String
    /// Health before the first check result.
    public var initialStatus: HealthStatus
    /// Remove the instance after it has been critical this long (nil: never).
    public var deregisterCriticalAfterMillis: Int64?
    public var maintenance: Bool
    public var maintenanceReason: String?
    /// Wall-clock milliseconds of the registration.
    public var registeredAt: Int64

    public init(
        service: String, id: String, address: String, port: Int, tags: [String] = [], meta: [String: String] = [:], weight: Int = 100,
        zone: String? = nil, checks: [CheckDefinition] = [], owner: String, initialStatus: HealthStatus = .passing,
        deregisterCriticalAfterMillis: Int64? = nil, maintenance: Bool = false, maintenanceReason: String? = nil, registeredAt: Int64 = 0
    ) {
        self.service = service
        self.id = id
        self.address = address
        self.port = port
        self.tags = tags
        self.meta = meta
        self.weight = weight
        self.zone = zone
        self.checks = checks
        self.owner = owner
        self.initialStatus = initialStatus
        self.deregisterCriticalAfterMillis = deregisterCriticalAfterMillis
        self.maintenance = maintenance
        self.maintenanceReason = maintenanceReason
        self.registeredAt = registeredAt
    }

    enum CodingKeys: String, CodingKey {
        case service, id, address, port, tags, meta, weight, zone, checks, owner
        case initialStatus = "initial_status", deregisterCriticalAfterMillis = "deregister_critical_after_ms"
        case maintenance, maintenanceReason = "maintenance_reason", registeredAt = "registered_at_ms"
    }
}

/// The latest result of one check.
public struct CheckResult: Codable, Sendable, Equatable {
    public var status: HealthStatus
    public var output: String
    /// Wall-clock milliseconds of the result.
    public var updatedAt: Int64

    public init(status: HealthStatus, output: String, updatedAt: Int64) {
        self.status = status
        self.output = output
        self.updatedAt = updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case status, output, updatedAt = "updated_at_ms"
    }
}

/// Health of an instance as its owner last wrote it: the record under `_gossamer/registry/health/<service>/<id>`.
public struct InstanceHealth: Codable, Sendable, Equatable {
    /// Check id → its latest result.
    public var checks: [String: CheckResult]
    /// The worst of the checks (the initial status until they have all reported).
    public var status: HealthStatus
    /// Wall-clock milliseconds since when `status` has held.
    public var since: Int64
    /// The `registeredAt` of the registration it belongs to (a re-registration starts afresh).
    public var registeredAt: Int64

    public init(checks: [String: CheckResult], status: HealthStatus, since: Int64, registeredAt: Int64) {
        self.checks = checks
        self.status = status
        self.since = since
        self.registeredAt = registeredAt
    }

    enum CodingKeys: String, CodingKey {
        case checks, status, since = "since_ms", registeredAt = "registered_at_ms"
    }
}

/// Per-service settings: the record under `_gossamer/registry/services/<service>`.
public struct ServiceSettings: Codable, Sendable, Equatable {
    /// When the passing share falls below this (0–1), `?passing` lookups return every instance.
    public var protectThreshold: Double

    public init(protectThreshold: Double = 0) {
        self.protectThreshold = protectThreshold
    }

    enum CodingKeys: String, CodingKey {
        case protectThreshold = "protect_threshold"
    }
}

/// Where registry records live in the replicated store.
public enum RegistryKeys {
    /// Every registry record is under this prefix; the KV API does not write it.
    public static let root = "_gossamer/registry/"
    /// The whole reserved namespace: the KV API refuses writes under it.
    public static let reservedPrefix = "_gossamer/"
    static let instances = root + "instances/"
    static let health = root + "health/"
    static let services = root + "services/"

    static func instance(_ service: String, _ id: String) -> String { "\(instances)\(service)/\(id)" }
    static func health(_ service: String, _ id: String) -> String { "\(health)\(service)/\(id)" }
    static func settings(_ service: String) -> String { "\(services)\(service)" }

    /// What a registry key holds.
    enum Record: Equatable {
        case instance(service: String, id: String)
        case health(service: String, id: String)
        case settings(service: String)
    }

    /// Parses a key under ``root``; nil for anything else.
    static func parse(_ key: String) -> Record? {
        func pair(_ rest: Substring) -> (String, String)? {
            let parts = rest.split(separator: "/", maxSplits: 1)
            guard parts.count == 2 else { return nil }
            return (String(parts[0]), String(parts[1]))
        }
        if key.hasPrefix(instances), let (service, id) = pair(key.dropFirst(instances.count)) { return .instance(service: service, id: id) }
        if key.hasPrefix(health), let (service, id) = pair(key.dropFirst(health.count)) { return .health(service: service, id: id) }
        if key.hasPrefix(services) {
            let service = key.dropFirst(services.count)
            if !service.isEmpty && !service.contains("/") { return .settings(service: String(service)) }
        }
        return nil
    }
}

/// Wall-clock milliseconds now.
func wallMillis() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
