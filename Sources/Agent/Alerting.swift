import ConfigCenter
import Foundation
import Logging
import Metrics
import Monitor
import Server
import ServiceLifecycle
import Synchronization

/// Where alerting keeps its records in the replicated store. Rules and silences are shared by every agent; each
/// agent publishes its own pending and firing alerts so any agent can list the cluster's.
enum AlertKeys {
    static let root = "_gossamer/alerts/"
    /// `rules/<name>`: a rule's JSON.
    static let rules = root + "rules/"
    /// `disabled/<name>`: a default rule an operator deleted.
    static let disabled = root + "disabled/"
    /// `silences/<id>`: a silence's JSON.
    static let silences = root + "silences/"
    /// `active/<node>`: that agent's pending and firing alerts.
    static let active = root + "active/"
}

/// Alerting settings of the agent.
public struct AlertingSettings: Sendable {
    /// Evaluate the shipped default rules (unless overridden or deleted). Default true.
    public var defaultRules = true
    /// Defaults of the evaluator (interval, no-data count).
    public var evaluator = AlertEvaluator.Settings()
    /// Receivers of rules that name none (`alerts.webhook`); empty: such alerts are logged only.
    public var defaultReceivers: [AlertRule.Receiver] = []
    /// Grouping, waits, repeats, rate limit and retries of notifications.
    public var policy = NotificationPolicy()
    /// Allow `PUT /v1/debug/metrics/gossamer_debug_*` (tests and demos). Default false.
    public var debugMetrics = false
    /// This agent's HTTP base URL, sent as the webhook payload's `externalURL` and in each alert's `generatorURL`.
    public var externalURL = "http://127.0.0.1:7700"

    public init() {}
}

/// The agent's alerting: the rule set from the store, the evaluation loop over this agent's metrics, the local
/// log of state and transitions, the published active alerts and the notifier.
///
/// One round: refresh the metrics, read them as samples, let the pure ``AlertEvaluator`` move the alerts, save the
/// state and transitions in ``AlertLog`` (so pending timers survive a restart), publish the pending and firing set to
/// `_gossamer/alerts/active/<node>` when it changed (so every agent can list every agent's alerts), and hand the
/// transitions to the ``Notifier``. Rounds run when the evaluator says a rule is due, and at once when the rules
/// change.
final class Alerting: AlertsBackend, Sendable {
    let store: ConfigStore
    let node: String
    let settings: AlertingSettings
    let log: AlertLog
    let notifier: Notifier
    private let evaluator: AlertEvaluator
    private let metrics: AgentMetrics
    /// Fresh metric samples (refreshes the sampled gauges first).
    private let sample: @Sendable () async -> [Sample]
    /// Names of alive agents, `nil` without gossip (only this agent exists).
    private let aliveAgents: @Sendable () -> Set<String>?
    /// Extra readiness checks from the agent (gossip joined, consistency).
    private let readinessChecks: @Sendable () async -> [String: (ok: Bool, detail: String)]
    private let logger: Logger

    private struct Current {
        var stored: [String: AlertRuleEntry] = [:]
        var disabled: Set<String> = []
        var silences: [String: Silence] = [:]
        var state = AlertState()
        var published: [PublishedKey] = []
        var loaded = false
        /// When the state was last saved to the log.
        var savedAt: WallTime?
    }

    /// What makes the published set change: an alert appearing, going or changing status (not its value).
    private struct PublishedKey: Hashable {
        var rule: String
        var labels: [String: String]
        var status: AlertStatus
    }

    private let current = Mutex(Current())
    /// Time of a whole round: sampling, evaluating, saving.
    private let roundTimer: Metrics.Timer
    /// Bumped when rules change, to wake the loop.
    private let changes = Watermark()

    init(
        store: ConfigStore, settings: AlertingSettings, dataDir: String, metrics: AgentMetrics,
        sample: @escaping @Sendable () async -> [Sample], aliveAgents: @escaping @Sendable () -> Set<String>?,
        readinessChecks: @escaping @Sendable () async -> [String: (ok: Bool, detail: String)], logger: Logger
    ) throws {
        self.store = store
        self.node = store.settings.nodeName
        self.settings = settings
        self.log = try AlertLog(path: URL(fileURLWithPath: dataDir).appendingPathComponent("alerts.sqlite").path)
        self.evaluator = AlertEvaluator(settings: settings.evaluator)
        self.metrics = metrics
        self.sample = sample
        self.aliveAgents = aliveAgents
        self.readinessChecks = readinessChecks
        self.logger = logger
        self.roundTimer = Metrics.Timer(label: "gossamer_alert_round_seconds", factory: metrics.registry)
        metrics.registry.describe("gossamer_alert_round_seconds", help: "Time of one alert evaluation round: sampling the metrics, evaluating the due rules, saving the state.")
        metrics.registry.describe("gossamer_alerts", help: "This agent's alerts by state (pending, firing).")
        metrics.registry.describe("gossamer_alert_rules", help: "Alert rules this agent evaluates.")
        metrics.registry.describe("gossamer_alert_notifications_total", help: "Notifications by outcome: sent, failed (each failed attempt), given_up, silenced (alerts left out by a silence).")
        self.notifier = Notifier(
            policy: settings.policy, sender: WebhookSender(logger: logger), externalURL: settings.externalURL, logger: logger)
    }

    // MARK: Rules

    /// The rules evaluated now, in name order.
    var effectiveRules: [AlertRule] {
        self.current.withLock { current in
            Self.effective(current, defaults: self.settings.defaultRules).map(\.rule)
        }
    }

    private static func effective(_ current: Current, defaults: Bool) -> [AlertRuleEntry] {
        var entries = current.stored
        if defaults {
            for rule in DefaultRules.all where entries[rule.name] == nil && !current.disabled.contains(rule.name) {
                entries[rule.name] = AlertRuleEntry(source: "default", version: nil, rule: rule)
            }
        }
        return entries.values.sorted { $0.rule.name < $1.rule.name }
    }

    func rules() async throws -> [AlertRuleEntry] {
        self.current.withLock { Self.effective($0, defaults: self.settings.defaultRules) }
    }

    func rule(named name: String) async throws -> AlertRuleEntry? {
        try await self.rules().first { $0.rule.name == name }
    }

    func putRule(_ rule: AlertRule, origin: WriteOrigin) async throws -> AlertRuleEntry {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var ops: [TxnOp] = [.put(key: AlertKeys.rules + rule.name, value: try encoder.encode(rule), contentType: "json", cas: nil)]
        if self.current.withLock({ $0.disabled.contains(rule.name) }) { ops.append(.delete(key: AlertKeys.disabled + rule.name, cas: nil)) }
        let receipt = try await self.store.transaction(ops, origin: origin)
        guard case .put(let written)? = receipt.results.first else { throw ConfigStoreError(code: .storage, message: "the rule was not written") }
        let version = written.version
        let entry = AlertRuleEntry(source: "custom", version: version, rule: rule)
        self.current.withLock { current in
            current.stored[rule.name] = entry
            current.disabled.remove(rule.name)
        }
        _ = self.changes.increment()
        return entry
    }

    func deleteRule(named name: String, origin: WriteOrigin) async throws -> Bool {
        let (stored, isDefault, disabled) = self.current.withLock {
            ($0.stored[name] != nil, DefaultRules.all.contains { $0.name == name }, $0.disabled.contains(name))
        }
        var ops: [TxnOp] = []
        if stored { ops.append(.delete(key: AlertKeys.rules + name, cas: nil)) }
        if isDefault && self.settings.defaultRules && !disabled {
            ops.append(.put(key: AlertKeys.disabled + name, value: Data("{}".utf8), contentType: "json", cas: nil))
        }
        guard !ops.isEmpty else { return false }
        _ = try await self.store.transaction(ops, origin: origin)
        self.current.withLock { current in
            current.stored[name] = nil
            if isDefault { current.disabled.insert(name) }
        }
        _ = self.changes.increment()
        return true
    }

    func ruleHistory(named name: String, limit: Int) async throws -> [AlertRuleVersion] {
        let versions: [KVVersion]
        do {
            versions = try await self.store.history(AlertKeys.rules + name, limit: limit)
        } catch let error as ConfigStoreError where error.code == .notFound {
            return []
        }
        return versions.map { version in
            AlertRuleVersion(
                version: version.version, deleted: version.tombstone, author: version.author,
                updatedAt: Timestamps.iso8601(millis: version.appliedAt),
                rule: version.tombstone ? nil : try? JSONDecoder().decode(AlertRule.self, from: version.value))
        }
    }

    func ruleDiff(named name: String, from: Int, to: Int) async throws -> String {
        try await self.store.diff(AlertKeys.rules + name, from: from, to: to)
    }

    func rollbackRule(named name: String, to version: Int, origin: WriteOrigin) async throws -> AlertRuleEntry? {
        let old = try await self.store.get(AlertKeys.rules + name, version: version)
        if old.tombstone {
            _ = try await self.deleteRule(named: name, origin: origin)
            return nil
        }
        let rule: AlertRule
        do {
            rule = try JSONDecoder().decode(AlertRule.self, from: old.value)
        } catch let error as RuleDecodingError {
            throw error.errors.first ?? RuleError(field: "body", "the stored rule does not decode")
        }
        if let problem = rule.validate(knownMetrics: []).errors.first { throw problem }
        return try await self.putRule(rule, origin: origin)
    }

    func knownMetrics() async -> Set<String> {
        Set(await self.sample().map(\.name))
    }

    // MARK: Alerts and history

    func activeAlerts() async throws -> [ActiveAlert] {
        let alive = self.aliveAgents()
        var result: [ActiveAlert] = []
        for record in try await self.store.list(prefix: AlertKeys.active) where !record.tombstone {
            guard let published = try? JSONDecoder().decode(PublishedAlerts.self, from: record.value) else { continue }
            let nodeAlive = published.node == self.node || (alive?.contains(published.node) ?? false)
            result += published.alerts.map { ActiveAlert(node: published.node, nodeAlive: nodeAlive, alert: $0) }
        }
        return result
    }

    func history(rule: String?, limit: Int) async throws -> [AlertTransition] {
        try await self.log.history(rule: rule, limit: limit)
    }

    // MARK: Silences

    func silences(includeExpired: Bool) async throws -> [Silence] {
        let now = WallTime.now
        return self.current.withLock { current in
            current.silences.values
                .filter { includeExpired || $0.endsAt > now }
                .sorted { ($0.endsAt > now ? 0 : 1, $0.startsAt, $0.id) < ($1.endsAt > now ? 0 : 1, $1.startsAt, $1.id) }
        }
    }

    func addSilence(_ silence: Silence, origin: WriteOrigin) async throws -> Silence {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        _ = try await self.store.put(AlertKeys.silences + silence.id, value: try encoder.encode(silence), contentType: "json", origin: origin)
        self.applySilence(silence)
        return silence
    }

    func expireSilence(id: String, origin: WriteOrigin) async throws -> Bool {
        let now = WallTime.now
        guard var silence = self.current.withLock({ $0.silences[id] }), silence.endsAt > now else { return false }
        silence.endsAt = now
        _ = try await self.addSilence(silence, origin: origin)
        return true
    }

    private func applySilence(_ silence: Silence) {
        let all = self.current.withLock { current in
            current.silences[silence.id] = silence
            return Array(current.silences.values)
        }
        self.notifier.updateSilences(all)
    }

    // MARK: Readiness and debug gauges

    func readiness() async -> [String: (ok: Bool, detail: String)] {
        var checks = await self.readinessChecks()
        checks["alerts"] = self.current.withLock { $0.loaded } ? (true, "ok") : (false, "alert rules not loaded yet")
        return checks
    }

    func setDebugGauge(name: String, labels: [String: String], value: Double?) -> Bool {
        guard self.settings.debugMetrics else { return false }
        self.metrics.setDebugGauge(name: name, labels: labels, value: value)
        return true
    }

    // MARK: The loop

    /// Loads the saved state and the records, then evaluates until cancelled.
    func run() async {
        do {
            if let state = try await self.log.loadState() { self.current.withLock { $0.state = state } }
        } catch {
            self.logger.error("alerts: cannot read the saved alert state; starting fresh", metadata: ["alerts.error": "\(error)"])
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.followStore() }
            group.addTask { await self.notifier.run() }
            group.addTask { await self.evaluateLoop() }
            await group.next()
            group.cancelAll()
        }
    }

    private func evaluateLoop() async {
        while !Task.isCancelled && !self.current.withLock({ $0.loaded }) { try? await Task.sleep(for: .milliseconds(20)) }
        await self.publishIfChanged(force: true)
        while !Task.isCancelled {
            let mark = self.changes.value
            let rules = self.effectiveRules
            let now = WallTime.now
            let state = self.current.withLock { $0.state }
            let next = self.evaluator.nextEvaluation(rules: rules, state: state, now: now)
            if let next, next <= now {
                await self.round(rules: rules, now: now)
                continue
            }
            let wait = next.map { now.duration(to: $0) } ?? .seconds(60)
            _ = await self.changes.wait(above: mark, timeout: max(.milliseconds(1), wait))
        }
    }

    /// One evaluation round at `now`.
    func round(rules: [AlertRule], now: WallTime) async {
        let started = ContinuousClock.now
        let samples = await self.sample()
        let before = self.current.withLock { $0.state }
        let (state, transitions) = self.evaluator.evaluate(rules: rules, samples: samples, now: now, state: before)
        let save = self.current.withLock { current -> Bool in
            current.state = state
            // Pending timers and firing alerts change only with a transition, so the state is saved then; otherwise
            // once a minute, for the rules' last evaluation times and no-data counts.
            guard !transitions.isEmpty || current.savedAt.map({ $0.duration(to: now) >= .seconds(60) || now < $0 }) ?? true else { return false }
            current.savedAt = now
            return true
        }
        if save {
            do {
                try await self.log.save(state, transitions: transitions, at: now)
            } catch {
                self.logger.error("alerts: cannot save alert state", metadata: ["alerts.error": "\(error)"])
            }
        }
        let elapsed = (ContinuousClock.now - started).components
        self.roundTimer.recordNanoseconds(elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000)
        self.recordMetrics(state)
        guard !transitions.isEmpty else { return }
        for transition in transitions {
            self.logger.notice(
                "alert \(transition.alert.rule) \(transition.from.rawValue) → \(transition.to.rawValue)",
                metadata: [
                    "alert.labels": "\(transition.alert.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))",
                    "alert.value": "\(transition.alert.value.map { "\($0)" } ?? "none")",
                ])
        }
        let defaults = self.settings.defaultReceivers
        let receivers = Dictionary(rules.map { ($0.name, $0.receivers.isEmpty ? defaults : $0.receivers) }, uniquingKeysWith: { first, _ in first })
        self.notifier.submit(transitions, receivers: receivers)
        await self.publishIfChanged(force: false)
    }

    /// Exports the alert counts and the notifier's counters.
    private func recordMetrics(_ state: AlertState) {
        let alerts = state.alerts
        self.metrics.setGauge("gossamer_alerts", [("state", "pending")], Double(alerts.filter { $0.status == .pending }.count))
        self.metrics.setGauge("gossamer_alerts", [("state", "firing")], Double(alerts.filter { $0.status == .firing }.count))
        self.metrics.setGauge("gossamer_alert_rules", [], Double(self.effectiveRules.count))
        let counters = self.notifier.counters
        for (outcome, total) in [("sent", counters.sent), ("failed", counters.failed), ("given_up", counters.givenUp), ("silenced", counters.silenced)] {
            self.metrics.setTotal("gossamer_alert_notifications_total", [("outcome", outcome)], Double(total))
        }
    }

    /// Writes this agent's pending and firing alerts to the store when the set (or a status) changed.
    private func publishIfChanged(force: Bool) async {
        let (alerts, changed) = self.current.withLock { current -> ([Alert], Bool) in
            let alerts = current.state.alerts
            let keys = alerts.map { PublishedKey(rule: $0.rule, labels: $0.labels, status: $0.status) }
            let changed = force || keys != current.published
            if changed { current.published = keys }
            return (alerts, changed)
        }
        guard changed else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            let body = try encoder.encode(PublishedAlerts(node: self.node, updatedAt: WallTime.now, alerts: alerts))
            let key = AlertKeys.active + self.node
            let existing = try await self.store.current(key)
            let live = existing.map { !$0.tombstone } ?? false
            // An agent without alerts has no record: it deletes its record when its last alert ends.
            if alerts.isEmpty {
                if live { _ = try await self.store.delete(key, origin: WriteOrigin(author: "gossamer-alerts")) }
                return
            }
            _ = try await self.store.put(key, value: body, contentType: "json", origin: WriteOrigin(author: "gossamer-alerts"))
        } catch {
            self.logger.warning("alerts: cannot publish active alerts", metadata: ["alerts.error": "\(error)"])
        }
    }

    /// Loads rules, disabled defaults and silences, then follows their changes; reloads after falling behind.
    private func followStore() async {
        await self.store.follow(prefix: AlertKeys.root, logger: self.logger, what: "alerts") { records in
            var fresh = (stored: [String: AlertRuleEntry](), disabled: Set<String>(), silences: [String: Silence]())
            for record in records where !record.tombstone {
                self.apply(record, to: &fresh.stored, &fresh.disabled, &fresh.silences)
            }
            self.current.withLock { current in
                current.stored = fresh.stored
                current.disabled = fresh.disabled
                current.silences = fresh.silences
                current.loaded = true
            }
            self.notifier.updateSilences(Array(fresh.silences.values))
            _ = self.changes.increment()
        } apply: { version in
            guard !version.key.hasPrefix(AlertKeys.active) else { return }
            self.current.withLock { current in
                if !version.tombstone {
                    self.apply(version, to: &current.stored, &current.disabled, &current.silences)
                } else if version.key.hasPrefix(AlertKeys.rules) {
                    current.stored[String(version.key.dropFirst(AlertKeys.rules.count))] = nil
                } else if version.key.hasPrefix(AlertKeys.disabled) {
                    current.disabled.remove(String(version.key.dropFirst(AlertKeys.disabled.count)))
                } else if version.key.hasPrefix(AlertKeys.silences) {
                    current.silences[String(version.key.dropFirst(AlertKeys.silences.count))] = nil
                }
            }
            if version.key.hasPrefix(AlertKeys.silences) {
                self.notifier.updateSilences(self.current.withLock { Array($0.silences.values) })
            }
            _ = self.changes.increment()
        }
    }

    /// Applies one live record under the alerts prefix. A rule record that no longer decodes (written by a newer
    /// agent, say) is skipped with a warning rather than stopping every other rule.
    private func apply(_ record: KVVersion, to stored: inout [String: AlertRuleEntry], _ disabled: inout Set<String>, _ silences: inout [String: Silence]) {
        if record.key.hasPrefix(AlertKeys.rules) {
            do {
                let rule = try JSONDecoder().decode(AlertRule.self, from: record.value)
                stored[rule.name] = AlertRuleEntry(source: "custom", version: record.version, rule: rule)
            } catch {
                self.logger.warning("alerts: skipping an unreadable rule record", metadata: ["alerts.key": "\(record.key)", "alerts.error": "\(error)"])
            }
        } else if record.key.hasPrefix(AlertKeys.disabled) {
            disabled.insert(String(record.key.dropFirst(AlertKeys.disabled.count)))
        } else if record.key.hasPrefix(AlertKeys.silences) {
            if let silence = try? JSONDecoder().decode(Silence.self, from: record.value) { silences[silence.id] = silence }
        }
    }
}

/// The record an agent publishes at `_gossamer/alerts/active/<node>`.
struct PublishedAlerts: Codable {
    var node: String
    var updatedAt: WallTime
    var alerts: [Alert]

    enum CodingKeys: String, CodingKey {
        case node
        case updatedAt = "updated_at"
        case alerts
    }
}

/// Runs alerting until graceful shutdown.
struct AlertingService: Service {
    let alerting: Alerting

    func run() async throws {
        await cancelWhenGracefulShutdown { await self.alerting.run() }
    }
}
