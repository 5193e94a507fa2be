import ConfigCenter
import Foundation
import Logging
import Synchronization

/// Why a registry operation was refused.
public enum RegistryError: Error, Sendable, Equatable {
    /// A field of the registration is wrong; nothing was stored.
    case badRegistration(RegistrationError)
    case badRequest(String)
    case notFound(String)
    /// A TTL report reached an agent that does not own the check.
    case notOwner(check: String, owner: String, ownerHTTP: String?)
    /// A concurrent change kept winning; try again.
    case conflict(String)
}

/// Registry settings (`registry.*` in the agent's config).
public struct RegistrySettings: Sendable, Equatable {
    /// The shortest `deregister_critical_after` a registration may ask for (1 minute; tests lower it).
    public var minimumDeregisterAfter: Duration = .seconds(60)
    /// How often owner liveness is re-read from gossip (it is also read on every lookup).
    public var membershipRefresh: Duration = .milliseconds(250)
    /// How often critical instances are checked against `deregister_critical_after`.
    public var reapInterval: Duration = .seconds(1)

    public init() {}
}

/// The service registry of one agent (DESIGN decision 6): registrations and health are records in the
/// replicated store; this agent runs the checks of the instances it owns, removes instances critical for too
/// long, and answers lookups from an in-memory catalog kept current from the change feed.
public final class Registry: Sendable {
    public let store: ConfigStore
    public let node: String
    public let settings: RegistrySettings
    let catalog: Catalog
    let runner: HealthRunner
    let reaper: Reaper
    private let observers = Mutex<[@Sendable (String) -> Void]>([])
    private let loaded = Atomic<Bool>(false)
    private let logger: Logger

    public init(
        store: ConfigStore, membership: any RegistryMembership, settings: RegistrySettings = RegistrySettings(),
        prober: any CheckProber = NetworkProber(), logger: Logger = Logger(label: "gossamer.registry")
    ) {
        self.store = store
        self.node = store.settings.nodeName
        self.settings = settings
        self.catalog = Catalog(membership: membership)
        self.runner = HealthRunner(store: store, node: store.settings.nodeName, prober: prober, logger: logger)
        self.reaper = Reaper(store: store, node: store.settings.nodeName, logger: logger)
        self.logger = logger
    }

    /// Calls `observer` with the service's name after each change of its records or owners' liveness
    /// (the Redis mirror uses it). Call before `run()`.
    public func observe(_ observer: @escaping @Sendable (_ service: String) -> Void) {
        self.observers.withLock { $0.append(observer) }
    }

    /// Re-reads owner liveness; whoever notices a change (a lookup or the periodic refresh) tells the observers,
    /// so the Redis mirror hears of every owner that died or came back.
    private func refreshAgents() {
        let touched = self.catalog.refreshAgents()
        if !touched.isEmpty { self.changed(touched) }
    }

    private func changed(_ services: some Sequence<String>) {
        let observers = self.observers.withLock { $0 }
        for service in services { for observer in observers { observer(service) } }
    }

    // MARK: Running

    /// Follows the store and the membership until cancelled: keeps the catalog current, runs this agent's
    /// checks and removes instances critical for longer than they allow.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.followStore() }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: self.settings.membershipRefresh)
                    self.refreshAgents()
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: self.settings.reapInterval)
                    await self.reaper.pass(self.catalog)
                }
            }
            await group.next()
            group.cancelAll()
        }
        self.runner.stopAll()
    }

    /// Loads every registry record, then applies changes as they are committed; reloads after falling behind.
    private func followStore() async {
        await self.store.follow(prefix: RegistryKeys.root, logger: self.logger, what: "registry") { records in
            self.catalog.load(records)
            self.loaded.store(true, ordering: .releasing)
            self.runner.sync(self.catalog)
            self.changed(self.catalog.summaries().map(\.name))
        } apply: { version in
            guard let service = self.catalog.apply(version) else { return }
            self.runner.sync(self.catalog, service: service)
            self.changed([service])
        }
    }

    /// True once the catalog has loaded the store's records (lookups before that see only local writes).
    public var isLoaded: Bool { self.loaded.load(ordering: .acquiring) }

    // MARK: Lookups

    /// Instances of a service with their effective health (owner liveness read now).
    public func lookup(_ service: String, filter: LookupFilter = LookupFilter()) -> ServiceLookup {
        self.refreshAgents()
        return self.catalog.lookup(service, filter: filter)
    }

    /// Ends blocking lookups and watches, now and from now on: they answer at once (graceful shutdown).
    public func closeWaits() { self.catalog.close() }

    /// True once `closeWaits()` was called.
    public var waitsClosed: Bool { self.catalog.isClosed }

    /// For blocking queries: returns once the service's index is above `index`, after `timeout`, or at once
    /// after `closeWaits()`.
    public func waitForChange(_ service: String, above index: Int64, timeout: Duration) async {
        self.refreshAgents()
        await self.catalog.wait(service, above: index, timeout: timeout)
    }

    public func instance(_ service: String, _ id: String) -> InstanceView? {
        self.refreshAgents()
        return self.catalog.instance(service, id)
    }

    public func services() -> [ServiceSummary] {
        self.refreshAgents()
        return self.catalog.summaries()
    }

    /// Every instance with its effective health, for the Redis mirror.
    public func views(_ service: String) -> [InstanceView] { self.catalog.views(service) }

    /// The current index of a service (for blocking queries), after re-reading owner liveness: two answers
    /// for the same service and filter at the same index are identical (the HTTP layer caches on it).
    public func index(of service: String) -> Int64 {
        self.refreshAgents()
        return self.catalog.index(of: service)
    }

    /// The agent that writes the Redis entries of an instance whose owner is gone: the alive agent with the
    /// smallest name. True when that is this agent.
    public var isCustodian: Bool { Reaper.custodian(self.catalog.agents()) == self.node }

    /// Instances this agent removed after `deregister_critical_after`.
    public var removedCritical: Int { self.reaper.removed }

    /// Instances whose checks run on this agent.
    public var checksRunning: Int { self.runner.count }

    /// The agents the registry knows, for deciding who mirrors what.
    public func agent(_ name: String) -> AgentInfo? { self.catalog.agent(name) }

    // MARK: Writes

    /// Registers (or re-registers) an instance with this agent as its owner.
    public func register(service: String, id: String, request: RegistrationRequest, origin: WriteOrigin = WriteOrigin()) async throws(RegistryError) -> InstanceView {
        let instance: ServiceInstance
        do {
            instance = try request.validated(
                service: service, id: id, owner: self.node, now: wallMillis(), minimumDeregisterAfter: self.settings.minimumDeregisterAfter)
        } catch {
            throw .badRegistration(error)
        }
        for (other, _) in self.catalog.records()
        where other.value.owner == self.node && !(other.value.service == service && other.value.id == id) {
            if let clash = other.value.checks.first(where: { check in instance.checks.contains { $0.id == check.id } }) {
                throw .badRegistration(RegistrationError(
                    field: "checks", "check id '\(clash.id)' is already used by \(other.value.service)/\(other.value.id) on this agent; give the check an explicit id"))
            }
        }
        let health = HealthRunner.initialHealth(instance)
        let ops: [TxnOp] = [
            .put(key: RegistryKeys.instance(service, id), value: try Self.encode(instance), contentType: "json", cas: nil),
            .put(key: RegistryKeys.health(service, id), value: try Self.encode(health), contentType: "json", cas: nil),
        ]
        try await self.write(ops, origin: origin)
        guard let view = self.catalog.instance(service, id) else { throw .conflict("\(service)/\(id) was removed while it was being registered") }
        return view
    }

    /// Removes an instance (any agent may). False when it was not registered.
    public func deregister(service: String, id: String, origin: WriteOrigin = WriteOrigin()) async throws(RegistryError) -> Bool {
        guard self.catalog.instance(service, id) != nil else { return false }
        try await self.write([.delete(key: RegistryKeys.instance(service, id), cas: nil), .delete(key: RegistryKeys.health(service, id), cas: nil)], origin: origin)
        return true
    }

    /// Takes an instance out of rotation (or puts it back) without deregistering it.
    public func setMaintenance(service: String, id: String, enable: Bool, reason: String?, origin: WriteOrigin = WriteOrigin()) async throws(RegistryError) -> InstanceView {
        for _ in 0..<5 {
            guard let stored = self.catalog.records(of: service).first(where: { $0.instance.value.id == id })?.instance else {
                throw .notFound("instance \(service)/\(id) is not registered")
            }
            var instance = stored.value
            instance.maintenance = enable
            instance.maintenanceReason = enable ? (reason ?? "maintenance mode") : nil
            do {
                try await self.write(
                    [.put(key: RegistryKeys.instance(service, id), value: try Self.encode(instance), contentType: "json", cas: stored.version)], origin: origin)
            } catch .conflict {
                continue
            }
            if let view = self.catalog.instance(service, id) { return view }
        }
        throw .conflict("instance \(service)/\(id) kept changing; try again")
    }

    /// Sets a service's settings (protect threshold).
    public func setSettings(_ service: String, _ settings: ServiceSettings, origin: WriteOrigin = WriteOrigin()) async throws(RegistryError) -> ServiceSettings {
        do {
            try RegistrationRules.validateServiceName(service)
        } catch {
            throw .badRegistration(error)
        }
        guard settings.protectThreshold.isFinite, (0...1).contains(settings.protectThreshold) else {
            throw .badRegistration(RegistrationError(field: "protect_threshold", "protect_threshold must be between 0 and 1, not \(settings.protectThreshold)"))
        }
        try await self.write([.put(key: RegistryKeys.settings(service), value: try Self.encode(settings), contentType: "json", cas: nil)], origin: origin)
        return settings
    }

    /// A TTL check's report from its service (`pass`, `warn` or `fail`).
    public func report(check: String, status: HealthStatus, note: String?) async throws(RegistryError) -> InstanceView.Check {
        let matches = self.catalog.records().compactMap { record in
            record.instance.value.checks.first { $0.id == check }.map { (record.instance.value, $0) }
        }
        guard let (instance, definition) = matches.first(where: { $0.0.owner == self.node }) ?? matches.first
        else { throw .notFound("no check '\(check)' is registered") }
        guard instance.owner == self.node else {
            throw .notOwner(check: check, owner: instance.owner, ownerHTTP: self.catalog.agent(instance.owner)?.http)
        }
        guard definition.kind == .ttl else {
            throw .badRequest("check '\(check)' is a \(definition.kind.rawValue) check; only ttl checks take reports")
        }
        guard let result = self.runner.report(service: instance.service, id: instance.id, check: check, status: status, note: note) else {
            throw .notFound("check '\(check)' is not running yet; try again in a moment")
        }
        return result
    }

    private func write(_ ops: [TxnOp], origin: WriteOrigin) async throws(RegistryError) {
        var origin = origin
        if origin.author == nil { origin.author = "registry@\(self.node)" }
        do {
            let receipt = try await self.store.transaction(ops, origin: origin)
            // Apply at once so the answer (and this agent's next lookup) reflects the write; the feed repeats it harmlessly.
            var touched: Set<String> = []
            for result in receipt.results {
                switch result {
                case .put(let version): self.catalog.apply(version).map { _ = touched.insert($0) }
                case .deleted(let versions): for version in versions { self.catalog.apply(version).map { _ = touched.insert($0) } }
                case .checked, .got: break
                }
            }
            for service in touched { self.runner.sync(self.catalog, service: service) }
            self.changed(touched)
        } catch let error as ConfigStoreError {
            if error.code == .casMismatch || error.code == .txnFailed { throw .conflict(error.message) }
            throw .badRequest(error.message)
        } catch {
            throw .badRequest("\(error)")
        }
    }

    static func encode(_ value: some Encodable) throws(RegistryError) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return try encoder.encode(value)
        } catch {
            throw .badRequest("cannot encode the record: \(error)")
        }
    }
}
