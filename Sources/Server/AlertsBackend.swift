import ConfigCenter
import Foundation
import Monitor

/// What the alert routes need from the agent: rules kept as config records, the cluster's active alerts, this
/// agent's transition history and silences. The agent implements it (it owns the store, the evaluator and the
/// notifier); the HTTP layer only decodes, calls and encodes.
public protocol AlertsBackend: Sendable {
    /// The rules every agent evaluates: stored rules, then the default rules not overridden or deleted.
    func rules() async throws -> [AlertRuleEntry]
    /// One rule by name, or `nil`.
    func rule(named name: String) async throws -> AlertRuleEntry?
    /// Stores `rule` (creating or replacing the rule of that name); returns it as stored.
    func putRule(_ rule: AlertRule, origin: WriteOrigin) async throws -> AlertRuleEntry
    /// Deletes the rule named `name` (a default rule is disabled); `false` when there is no such rule.
    func deleteRule(named name: String, origin: WriteOrigin) async throws -> Bool
    /// The versions of a stored rule's record, newest first (deletes included); empty when it never existed.
    func ruleHistory(named name: String, limit: Int) async throws -> [AlertRuleVersion]
    /// A unified diff of two versions of a stored rule's record.
    func ruleDiff(named name: String, from: Int, to: Int) async throws -> String
    /// Puts back the rule as it was at `version` (a new version with that content; a delete if that version was
    /// one). Throws `RuleError` when that version no longer makes a valid rule.
    func rollbackRule(named name: String, to version: Int, origin: WriteOrigin) async throws -> AlertRuleEntry?
    /// Metric names this agent exports now, for the unknown-metric warning.
    func knownMetrics() async -> Set<String>
    /// Pending and firing alerts of every agent, as each last published them.
    func activeAlerts() async throws -> [ActiveAlert]
    /// This agent's transitions, newest first.
    func history(rule: String?, limit: Int) async throws -> [AlertTransition]
    /// Silences, active first; expired ones only with `includeExpired`.
    func silences(includeExpired: Bool) async throws -> [Silence]
    /// Stores a silence (it replicates to every agent).
    func addSilence(_ silence: Silence, origin: WriteOrigin) async throws -> Silence
    /// Ends a silence now; `false` when there is no such silence.
    func expireSilence(id: String, origin: WriteOrigin) async throws -> Bool
    /// Readiness problems (empty: ready), by check name, with every check's state.
    func readiness() async -> [String: (ok: Bool, detail: String)]
    /// Sets a test gauge (`gossamer_debug_*`) when debug metrics are enabled; `false` when they are not.
    func setDebugGauge(name: String, labels: [String: String], value: Double?) -> Bool
}

/// A rule as the API lists it: the rule, where it comes from and its record's version.
public struct AlertRuleEntry: Sendable, Hashable, Encodable {
    /// `default` (shipped with the agent) or `custom` (stored by an operator; it may override a default's name).
    public var source: String
    /// The record's version (custom rules); `nil` for defaults.
    public var version: Int?
    /// The rule.
    public var rule: AlertRule

    public init(source: String, version: Int?, rule: AlertRule) {
        self.source = source
        self.version = version
        self.rule = rule
    }
}

/// One pending or firing alert with the agent that evaluates it.
public struct ActiveAlert: Sendable, Hashable, Encodable {
    /// The agent whose metrics raised it.
    public var node: String
    /// Whether that agent is alive in gossip now (`false`: its last published alerts may be stale).
    public var nodeAlive: Bool
    /// The alert.
    public var alert: Alert

    public init(node: String, nodeAlive: Bool, alert: Alert) {
        self.node = node
        self.nodeAlive = nodeAlive
        self.alert = alert
    }

    enum Keys: String, CodingKey { case node, node_alive, alert }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(self.node, forKey: .node)
        try container.encode(self.nodeAlive, forKey: .node_alive)
        try container.encode(self.alert, forKey: .alert)
    }
}

/// One version of a stored rule's record, as `?history` lists it.
public struct AlertRuleVersion: Sendable, Encodable {
    public var version: Int
    public var deleted: Bool
    public var author: String?
    /// When this agent applied it, ISO 8601.
    public var updated_at: String
    /// The rule at that version (`nil` for a delete, or a record that no longer decodes).
    public var rule: AlertRule?

    public init(version: Int, deleted: Bool, author: String?, updatedAt: String, rule: AlertRule?) {
        self.version = version
        self.deleted = deleted
        self.author = author
        self.updated_at = updatedAt
        self.rule = rule
    }
}
