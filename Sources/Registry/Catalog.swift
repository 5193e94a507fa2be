import ConfigCenter
import Foundation
import Synchronization

/// What the registry needs to know about the agents in the cluster (from gossip, or just this agent).
public struct AgentInfo: Sendable, Equatable {
    public var name: String
    /// Alive or suspect in gossip (not dead, not left).
    public var alive: Bool
    /// Started with `--drain` or drained through the API: its instances are in maintenance.
    public var draining: Bool
    /// Its HTTP API (`host:port`), when advertised.
    public var http: String?
    /// Stores data and runs checks (false for `gossamer lb` members).
    public var isAgent: Bool

    public init(name: String, alive: Bool, draining: Bool = false, http: String? = nil, isAgent: Bool = true) {
        self.name = name
        self.alive = alive
        self.draining = draining
        self.http = http
        self.isAgent = isAgent
    }
}

/// The cluster's agents, as the registry sees them.
public protocol RegistryMembership: Sendable {
    func agents() -> [AgentInfo]
}

/// A registry record as stored, with the store's stamp of the write.
struct Stored<Value: Sendable>: Sendable {
    var value: Value
    var stamp: Stamp
    var version: Int
}

/// An instance as lookups answer it: the registration, its effective health and where it came from.
public struct InstanceView: Codable, Sendable, Equatable {
    public struct Check: Codable, Sendable, Equatable {
        public var id: String
        public var type: CheckKind
        public var status: HealthStatus
        public var output: String
        public var updatedAt: String?

        enum CodingKeys: String, CodingKey {
            case id, type, status, output, updatedAt = "updated_at"
        }
    }

    public var service: String
    public var id: String
    public var address: String
    public var port: Int
    public var tags: [String]
    public var meta: [String: String]
    public var weight: Int
    public var zone: String?
    public var status: HealthStatus
    public var owner: String
    public var ownerAlive: Bool
    public var maintenance: Bool
    public var maintenanceReason: String?
    public var checks: [Check]
    public var registeredAt: String
    /// The newer of the registration's and the health record's stamps (`wall.counter@node`): orders writes of
    /// this instance (the Redis mirror never replaces an entry with an older one).
    public var stamp: String

    enum CodingKeys: String, CodingKey {
        case service, id, address, port, tags, meta, weight, zone, status, owner, checks, stamp, maintenance
        case ownerAlive = "owner_alive", maintenanceReason = "maintenance_reason", registeredAt = "registered_at"
    }

    init(instance: Stored<ServiceInstance>, health: Stored<InstanceHealth>?, owner: AgentInfo?) {
        let registration = instance.value
        let ownerAlive = owner?.alive ?? false
        let draining = owner?.draining ?? false
        // A health record written for an earlier registration (before a re-register) does not count.
        let current = health.flatMap { $0.value.registeredAt == registration.registeredAt ? $0 : nil }
        var status = current?.value.status ?? registration.initialStatus
        if !ownerAlive { status = .critical }
        if registration.maintenance || draining { status = .maintenance }
        self.service = registration.service
        self.id = registration.id
        self.address = registration.address
        self.port = registration.port
        self.tags = registration.tags
        self.meta = registration.meta
        self.weight = registration.weight
        self.zone = registration.zone
        self.status = status
        self.owner = registration.owner
        self.ownerAlive = ownerAlive
        self.maintenance = registration.maintenance || draining
        self.maintenanceReason = registration.maintenance ? registration.maintenanceReason : (draining ? "owner agent is draining" : nil)
        self.checks = registration.checks.map { definition in
            let result = current?.value.checks[definition.id]
            var status = result?.status ?? registration.initialStatus
            var output = result?.output ?? "no result yet"
            if !ownerAlive {
                status = .critical
                output = "owner agent \(registration.owner) is not alive"
            }
            return Check(id: definition.id, type: definition.kind, status: status, output: output, updatedAt: result.map { Timestamps.iso8601(millis: $0.updatedAt) })
        }
        self.registeredAt = Timestamps.iso8601(millis: registration.registeredAt)
        self.stamp = max(instance.stamp, current?.stamp ?? instance.stamp).description
    }
}

/// The answer to a lookup.
public struct ServiceLookup: Codable, Sendable, Equatable {
    public var service: String
    public var index: Int64
    public var protectThreshold: Double
    /// True when `?passing` returned every instance because the passing share is below the threshold.
    public var protected: Bool
    public var instances: [InstanceView]

    enum CodingKeys: String, CodingKey {
        case service, index, instances, protected
        case protectThreshold = "protect_threshold"
    }
}

/// One row of `GET /v1/services`.
public struct ServiceSummary: Codable, Sendable, Equatable {
    public var name: String
    public var instances: Int
    public var passing: Int
    public var protectThreshold: Double

    enum CodingKeys: String, CodingKey {
        case name, instances, passing
        case protectThreshold = "protect_threshold"
    }
}

/// What a lookup asks for.
public struct LookupFilter: Sendable, Equatable {
    public var passingOnly: Bool
    public var tags: [String]
    public var zone: String?

    public init(passingOnly: Bool = false, tags: [String] = [], zone: String? = nil) {
        self.passingOnly = passingOnly
        self.tags = tags
        self.zone = zone
    }
}

/// The registry's in-memory view of its records in the store, kept current from the change feed, plus the
/// gossip view of owners. Lookups read it without touching SQLite. Each service has an index (a local counter,
/// bumped when its records or the liveness of one of its owners change) for blocking queries.
final class Catalog: Sendable {
    struct State {
        var instances: [String: [String: Stored<ServiceInstance>]] = [:]
        var health: [String: [String: Stored<InstanceHealth>]] = [:]
        var settings: [String: Stored<ServiceSettings>] = [:]
        var serviceIndex: [String: Int64] = [:]
        var agents: [String: AgentInfo] = [:]
    }

    let state = Mutex(State())
    /// Bumped on every change; waiters re-check their service's index.
    let changes = Watermark()
    /// Set once at shutdown: waits return at once, so blocking queries and watches do not hold the server open.
    private let closed = Atomic<Bool>(false)
    let membership: any RegistryMembership

    init(membership: any RegistryMembership) {
        self.membership = membership
        let agents = Dictionary(membership.agents().map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.state.withLock { $0.agents = agents }
    }

    // MARK: Applying store changes

    /// Replaces the whole view with the store's records (start-up, or after the feed lagged).
    func load(_ versions: [KVVersion]) {
        self.state.withLock { state in
            let services = Set(state.instances.keys).union(state.health.keys).union(state.settings.keys)
            state.instances = [:]
            state.health = [:]
            state.settings = [:]
            for version in versions { _ = Self.apply(version, to: &state) }
            for service in services.union(state.instances.keys) { self.bump(service, in: &state) }
        }
        self.changes.increment()
    }

    /// Applies one change from the feed; returns the service it touched.
    @discardableResult
    func apply(_ version: KVVersion) -> String? {
        let service = self.state.withLock { state -> String? in
            guard let service = Self.apply(version, to: &state) else { return nil }
            self.bump(service, in: &state)
            return service
        }
        if service != nil { self.changes.increment() }
        return service
    }

    /// Applies a version to the view; returns the service when the view changed (a version already applied,
    /// e.g. once directly after a local write and again from the feed, changes nothing).
    private static func apply(_ version: KVVersion, to state: inout State) -> String? {
        guard let record = RegistryKeys.parse(version.key) else { return nil }
        switch record {
        case .instance(let service, let id):
            return Self.update(&state.instances[service, default: [:]][id], with: version) ? service : nil
        case .health(let service, let id):
            return Self.update(&state.health[service, default: [:]][id], with: version) ? service : nil
        case .settings(let service):
            return Self.update(&state.settings[service], with: version) ? service : nil
        }
    }

    /// Replaces `slot` with the decoded version unless it already holds that version or a later one.
    private static func update<Value: Decodable & Sendable>(_ slot: inout Stored<Value>?, with version: KVVersion) -> Bool {
        if let held = slot, held.version >= version.version { return false }
        if version.tombstone {
            guard slot != nil else { return false }
            slot = nil
            return true
        }
        guard let value = try? JSONDecoder().decode(Value.self, from: version.value) else { return false }
        slot = Stored(value: value, stamp: version.stamp, version: version.version)
        return true
    }

    private func bump(_ service: String, in state: inout State) {
        state.serviceIndex[service] = self.changes.value + 1
    }

    /// Re-reads the membership; bumps the services whose owners changed liveness or drain. Returns them.
    @discardableResult
    func refreshAgents() -> Set<String> {
        let fresh = Dictionary(self.membership.agents().map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let touched = self.state.withLock { state -> Set<String> in
            guard fresh != state.agents else { return [] }
            let changed = Set(fresh.keys).union(state.agents.keys).filter { name in
                fresh[name]?.alive != state.agents[name]?.alive || fresh[name]?.draining != state.agents[name]?.draining
            }
            state.agents = fresh
            var touched: Set<String> = []
            for (service, instances) in state.instances where instances.values.contains(where: { changed.contains($0.value.owner) }) {
                touched.insert(service)
                self.bump(service, in: &state)
            }
            return touched
        }
        if !touched.isEmpty { self.changes.increment() }
        return touched
    }

    // MARK: Reading

    func index(of service: String) -> Int64 {
        self.state.withLock { $0.serviceIndex[service] ?? 0 }
    }

    func lookup(_ service: String, filter: LookupFilter) -> ServiceLookup {
        self.state.withLock { state in
            let threshold = state.settings[service]?.value.protectThreshold ?? 0
            var all = Self.views(service, in: state)
            all.removeAll { view in
                !filter.tags.allSatisfy(view.tags.contains) || (filter.zone != nil && view.zone != filter.zone)
            }
            var protected = false
            if filter.passingOnly {
                let passing = all.filter { $0.status == .passing }
                if !all.isEmpty && Double(passing.count) / Double(all.count) < threshold {
                    protected = true
                } else {
                    all = passing
                }
            }
            return ServiceLookup(
                service: service, index: state.serviceIndex[service] ?? 0, protectThreshold: threshold, protected: protected, instances: all)
        }
    }

    func instance(_ service: String, _ id: String) -> InstanceView? {
        self.state.withLock { state in
            guard let stored = state.instances[service]?[id] else { return nil }
            return InstanceView(instance: stored, health: state.health[service]?[id], owner: state.agents[stored.value.owner])
        }
    }

    func summaries() -> [ServiceSummary] {
        self.state.withLock { state in
            state.instances.filter { !$0.value.isEmpty }.keys.sorted().map { service in
                let views = Self.views(service, in: state)
                return ServiceSummary(
                    name: service, instances: views.count, passing: views.filter { $0.status == .passing }.count,
                    protectThreshold: state.settings[service]?.value.protectThreshold ?? 0)
            }
        }
    }

    /// Every instance with its stored records (for the owner's checks, the reaper and the Redis mirror), or
    /// only those of one service.
    func records(of service: String? = nil) -> [(instance: Stored<ServiceInstance>, health: Stored<InstanceHealth>?)] {
        self.state.withLock { state in
            let services = service.map { [$0: state.instances[$0] ?? [:]] } ?? state.instances
            return services.flatMap { service, instances in
                instances.values.map { ($0, state.health[service]?[$0.value.id]) }
            }
        }
    }

    func agent(_ name: String) -> AgentInfo? { self.state.withLock { $0.agents[name] } }

    func agents() -> [AgentInfo] { self.state.withLock { Array($0.agents.values) } }

    func settings(_ service: String) -> Stored<ServiceSettings>? { self.state.withLock { $0.settings[service] } }

    func views(_ service: String) -> [InstanceView] { self.state.withLock { Self.views(service, in: $0) } }

    private static func views(_ service: String, in state: State) -> [InstanceView] {
        (state.instances[service] ?? [:]).values
            .map { InstanceView(instance: $0, health: state.health[service]?[$0.value.id], owner: state.agents[$0.value.owner]) }
            .sorted { $0.id < $1.id }
    }

    /// Ends every wait, now and from now on (graceful shutdown).
    func close() {
        self.closed.store(true, ordering: .releasing)
        self.changes.increment()
    }

    var isClosed: Bool { self.closed.load(ordering: .acquiring) }

    /// Waits until the service's index is above `index`, or `timeout` passes, or the catalog is closed.
    func wait(_ service: String, above index: Int64, timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        while self.index(of: service) <= index {
            let mark = self.changes.value
            guard self.index(of: service) <= index else { return }
            let left = deadline - .now
            guard left > .zero, !Task.isCancelled, !self.isClosed else { return }
            _ = await self.changes.wait(above: mark, timeout: left)
        }
    }
}
