// MARK: - Evaluator state

/// Everything ``AlertEvaluator`` remembers between rounds: per rule, when it last ran, its pending and firing alerts
/// and its run of evaluations without data.
///
/// It is a `Codable` value so the agent can persist it after each round and hand it back after a restart: pending
/// timers are wall-clock instants, so an alert pending since t0 still fires at the first evaluation at or after
/// t0 + `for`, however long the agent was down.
public struct AlertState: Hashable, Sendable {
    /// A pending or firing alert, with a mark the evaluator sets on alerts whose series it saw in the current round
    /// (and clears before the round ends, so at rest it is always `false`).
    struct Tracked: Hashable, Sendable {
        var alert: Alert
        var seen = false
    }

    /// One rule's memory.
    struct RuleState: Hashable, Sendable {
        /// When the rule was last evaluated.
        var lastEvaluatedAt: WallTime?
        /// Evaluations in a row that found no data.
        var noDataEvaluations = 0
        /// Pending and firing alerts, by the labels that identify them (series labels, or the matchers when the rule
        /// aggregates).
        var alerts: [[String: String]: Tracked] = [:]
        /// The separate no-data alert (`no_data: nodata`), pending or firing.
        var noDataAlert: Alert?
    }

    /// By rule name.
    var rules: [String: RuleState] = [:]

    /// No rule evaluated yet, no alerts.
    public init() {}

    /// Every pending and firing alert, ordered by rule name, then labels.
    public var alerts: [Alert] {
        var alerts: [Alert] = []
        for name in self.rules.keys.sorted() {
            guard let rule = self.rules[name] else { continue }
            alerts += rule.alerts.values.map(\.alert).sorted {
                LabelPair.sorted($0.labels).lexicographicallyPrecedes(LabelPair.sorted($1.labels))
            }
            if let noData = rule.noDataAlert { alerts.append(noData) }
        }
        return alerts
    }

    /// When the rule named `rule` was last evaluated, or `nil` if never.
    public func lastEvaluation(of rule: String) -> WallTime? {
        self.rules[rule]?.lastEvaluatedAt
    }
}

// MARK: - Codable

extension AlertState: Codable {
    /// Decodes `{"rules": {"<name>": {…}}}` as ``encode(to:)`` writes it.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        self.rules = try container.decode([String: RuleState].self, forKey: AnyKey("rules"))
    }

    /// Encodes `{"rules": {"<name>": {"last_evaluated_at", "no_data_evaluations", "alerts": [{"series", "alert"}],
    /// "no_data_alert"}}}`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: AnyKey.self)
        try container.encode(self.rules, forKey: AnyKey("rules"))
    }
}

extension AlertState.RuleState: Codable {
    /// An alert with the labels that identify it within its rule.
    private struct Entry: Codable {
        var series: [String: String]
        var alert: Alert
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        self.lastEvaluatedAt = try container.decodeIfPresent(WallTime.self, forKey: AnyKey("last_evaluated_at"))
        self.noDataEvaluations = try container.decode(Int.self, forKey: AnyKey("no_data_evaluations"))
        let entries = try container.decode([Entry].self, forKey: AnyKey("alerts"))
        self.alerts = Dictionary(
            entries.map { ($0.series, AlertState.Tracked(alert: $0.alert)) }, uniquingKeysWith: { _, last in last })
        self.noDataAlert = try container.decodeIfPresent(Alert.self, forKey: AnyKey("no_data_alert"))
        let stored = entries.map(\.alert.status) + (self.noDataAlert.map { [$0.status] } ?? [])
        guard stored.allSatisfy({ $0 == .pending || $0 == .firing }) else {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(
                    codingPath: decoder.codingPath, debugDescription: "stored alerts must be pending or firing")
            )
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: AnyKey.self)
        try container.encodeIfPresent(self.lastEvaluatedAt, forKey: AnyKey("last_evaluated_at"))
        try container.encode(self.noDataEvaluations, forKey: AnyKey("no_data_evaluations"))
        let entries = self.alerts
            .map { Entry(series: $0.key, alert: $0.value.alert) }
            .sorted { LabelPair.sorted($0.series).lexicographicallyPrecedes(LabelPair.sorted($1.series)) }
        try container.encode(entries, forKey: AnyKey("alerts"))
        try container.encodeIfPresent(self.noDataAlert, forKey: AnyKey("no_data_alert"))
    }
}
