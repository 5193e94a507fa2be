import ConfigCenter
import Foundation
import Logging
import Synchronization

/// Runs the checks of the instances this agent owns and writes each health change to the store.
///
/// One `RunningInstance` per owned instance: a task per http/tcp check probing every interval, a task per
/// ttl check waiting for its deadline, and one writer task that writes the instance's health record whenever
/// it changed (so writes of one instance never race each other).
final class HealthRunner: Sendable {
    private let store: ConfigStore
    private let node: String
    private let prober: any CheckProber
    private let logger: Logger
    private let running = Mutex<[String: RunningInstance]>([:])

    init(store: ConfigStore, node: String, prober: any CheckProber, logger: Logger) {
        self.store = store
        self.node = node
        self.prober = prober
        self.logger = logger
    }

    /// The health record of a fresh registration: every check at the initial status.
    static func initialHealth(_ instance: ServiceInstance) -> InstanceHealth {
        let now = wallMillis()
        let checks = Dictionary(uniqueKeysWithValues: instance.checks.map {
            ($0.id, CheckResult(status: instance.initialStatus, output: "registered; no result yet", updatedAt: now))
        })
        return InstanceHealth(checks: checks, status: instance.initialStatus, since: now, registeredAt: instance.registeredAt)
    }

    /// Starts checks for newly owned (or re-registered) instances and stops those no longer owned here: of
    /// every service, or only of `service` (after a change to it, so a change costs its service's size only).
    func sync(_ catalog: Catalog, service: String? = nil) {
        var wanted: [String: (Stored<ServiceInstance>, Stored<InstanceHealth>?)] = [:]
        for (instance, health) in catalog.records(of: service) where instance.value.owner == self.node {
            wanted["\(instance.value.service)/\(instance.value.id)"] = (instance, health)
        }
        var stopped: [RunningInstance] = []
        var started: [RunningInstance] = []
        let prefix = service.map { "\($0)/" }
        self.running.withLock { running in
            for (key, current) in running where prefix.map({ key.hasPrefix($0) }) ?? true {
                guard let (instance, _) = wanted[key], current.matches(instance.value) else {
                    stopped.append(current)
                    running[key] = nil
                    continue
                }
                current.update(instance)
            }
            for (key, (instance, health)) in wanted where running[key] == nil {
                let fresh = RunningInstance(instance: instance, health: health, store: self.store, prober: self.prober, logger: self.logger)
                running[key] = fresh
                started.append(fresh)
            }
        }
        for instance in stopped { instance.stop() }
        for instance in started { instance.start() }
    }

    /// Applies a TTL report; nil when the instance's checks are not running here.
    func report(service: String, id: String, check: String, status: HealthStatus, note: String?) -> InstanceView.Check? {
        guard let instance = self.running.withLock({ $0["\(service)/\(id)"] }) else { return nil }
        return instance.report(check: check, status: status, note: note)
    }

    /// Instances whose checks run here.
    var count: Int { self.running.withLock { $0.count } }

    /// True while the checks of `service/id` run here.
    func isRunning(_ key: String) -> Bool { self.running.withLock { $0[key] != nil } }

    func stopAll() {
        let all = self.running.withLock { running in
            defer { running = [:] }
            return Array(running.values)
        }
        for instance in all { instance.stop() }
    }
}

/// The checks of one owned instance while they run.
final class RunningInstance: Sendable {
    private struct State {
        var instance: Stored<ServiceInstance>
        var trackers: [String: CheckTracker]
        var results: [String: CheckResult]
        var status: HealthStatus
        var since: Int64
        var ttlDeadlines: [String: ContinuousClock.Instant] = [:]
        var tasks: [Task<Void, Never>] = []
    }

    private let state: Mutex<State>
    /// Bumped when the health changed and must be written.
    private let dirty = Watermark()
    private let store: ConfigStore
    private let prober: any CheckProber
    private let logger: Logger

    init(instance: Stored<ServiceInstance>, health: Stored<InstanceHealth>?, store: ConfigStore, prober: any CheckProber, logger: Logger) {
        // Carry on from the stored health of this registration (an agent restart keeps statuses).
        let stored = health.flatMap { $0.value.registeredAt == instance.value.registeredAt ? $0.value : nil }
            ?? HealthRunner.initialHealth(instance.value)
        var trackers: [String: CheckTracker] = [:]
        for definition in instance.value.checks {
            trackers[definition.id] = CheckTracker(definition: definition, initial: stored.checks[definition.id]?.status ?? instance.value.initialStatus)
        }
        self.state = Mutex(State(instance: instance, trackers: trackers, results: stored.checks, status: stored.status, since: stored.since))
        self.store = store
        self.prober = prober
        self.logger = logger
    }

    /// True while the registration is the same one (same registration time and checks).
    func matches(_ instance: ServiceInstance) -> Bool {
        self.state.withLock { $0.instance.value.registeredAt == instance.registeredAt && $0.instance.value.checks == instance.checks }
    }

    /// Takes a newer version of the same registration (e.g. maintenance toggled).
    func update(_ instance: Stored<ServiceInstance>) {
        self.state.withLock { $0.instance = instance }
    }

    func start() {
        let definitions = self.state.withLock { $0.instance.value.checks }
        var tasks: [Task<Void, Never>] = [Task { await self.writeLoop() }]
        let now = ContinuousClock.now
        for definition in definitions {
            switch definition.kind {
            case .http, .tcp: tasks.append(Task { await self.probeLoop(definition) })
            case .ttl:
                self.state.withLock { $0.ttlDeadlines[definition.id] = now + .milliseconds(definition.ttlMillis ?? 0) }
                tasks.append(Task { await self.ttlLoop(definition) })
            }
        }
        self.state.withLock { $0.tasks = tasks }
    }

    func stop() {
        for task in self.state.withLock({ $0.tasks }) { task.cancel() }
    }

    private func probeLoop(_ definition: CheckDefinition) async {
        while !Task.isCancelled {
            let (status, output) = await self.prober.probe(definition)
            guard !Task.isCancelled else { return }
            self.apply(definition.id, force: false, status: status, output: output)
            try? await Task.sleep(for: .milliseconds(definition.intervalMillis))
        }
    }

    private func ttlLoop(_ definition: CheckDefinition) async {
        while !Task.isCancelled {
            guard let deadline = self.state.withLock({ $0.ttlDeadlines[definition.id] }) else { return }
            if ContinuousClock.now >= deadline {
                self.apply(definition.id, force: true, status: .critical, output: "TTL of \(DurationText.format(.milliseconds(definition.ttlMillis ?? 0))) expired")
                // Wait for the next report (which moves the deadline) without spinning.
                self.state.withLock { $0.ttlDeadlines[definition.id] = .now + .milliseconds(definition.ttlMillis ?? 0) }
            }
            let next = self.state.withLock { $0.ttlDeadlines[definition.id] } ?? deadline
            try? await Task.sleep(until: min(next, .now + .seconds(1)), clock: .continuous)
        }
    }

    /// A report of a ttl check: applies at once and restarts its TTL.
    func report(check: String, status: HealthStatus, note: String?) -> InstanceView.Check? {
        let definition = self.state.withLock { state -> CheckDefinition? in
            guard let definition = state.trackers[check]?.definition else { return nil }
            state.ttlDeadlines[check] = .now + .milliseconds(definition.ttlMillis ?? 0)
            return definition
        }
        guard let definition else { return nil }
        let output = note ?? "ttl check reported \(status.rawValue)"
        self.apply(check, force: true, status: status, output: output)
        return self.state.withLock { state in
            let result = state.results[check]
            return InstanceView.Check(
                id: check, type: definition.kind, status: result?.status ?? status, output: result?.output ?? output,
                updatedAt: result.map { Timestamps.iso8601(millis: $0.updatedAt) })
        }
    }

    /// Feeds a result to the check's tracker; marks the health dirty when a reported status changed.
    private func apply(_ check: String, force: Bool, status: HealthStatus, output: String) {
        let changed = self.state.withLock { state -> Bool in
            guard var tracker = state.trackers[check] else { return false }
            let changed = force ? tracker.force(status, output: output) : tracker.record(status, output: output)
            state.trackers[check] = tracker
            let now = wallMillis()
            // Output updates ride along with status changes; they do not cause writes by themselves.
            if changed || state.results[check] == nil {
                state.results[check] = CheckResult(status: tracker.status, output: tracker.output, updatedAt: now)
            }
            let aggregate = aggregateStatus(state.trackers.values.map(\.status))
            if aggregate != state.status {
                state.status = aggregate
                state.since = now
            }
            return changed
        }
        if changed { self.dirty.increment() }
    }

    /// Writes the health record each time it changed; only while the registration it belongs to is current.
    private func writeLoop() async {
        var written: Int64 = 0
        while !Task.isCancelled {
            await self.dirty.wait(above: written)
            guard !Task.isCancelled else { return }
            let mark = self.dirty.value
            let (instance, health) = self.state.withLock { state in
                (state.instance, InstanceHealth(checks: state.results, status: state.status, since: state.since, registeredAt: state.instance.value.registeredAt))
            }
            do {
                let value = try Registry.encode(health)
                let key = RegistryKeys.instance(instance.value.service, instance.value.id)
                let current = try await self.store.current(key)
                guard let current, !current.tombstone else { return }
                _ = try await self.store.transaction(
                    [.check(key: key, version: current.version),
                     .put(key: RegistryKeys.health(instance.value.service, instance.value.id), value: value, contentType: "json", cas: nil)],
                    origin: WriteOrigin(author: "health-check@\(instance.value.owner)"))
                written = mark
                self.logger.info(
                    "instance health changed",
                    metadata: ["registry.instance": "\(instance.value.service)/\(instance.value.id)", "registry.status": "\(health.status.rawValue)"])
            } catch {
                self.logger.warning(
                    "cannot write instance health; retrying",
                    metadata: ["registry.instance": "\(instance.value.service)/\(instance.value.id)", "registry.error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}
