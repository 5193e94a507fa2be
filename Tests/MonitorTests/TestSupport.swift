import Monitor

// MARK: - Fixtures

/// A fixed wall-clock origin; tests move time by adding durations to it, never by waiting.
let t0 = WallTime(millisecondsSinceEpoch: 1_700_000_000_000)

/// A sample of `name` with `labels`.
func sample(_ name: String, _ labels: [String: String], _ value: Double) -> Sample {
    Sample(name: name, labels: labels, value: value)
}

/// A rule on `gossamer_test_value` evaluated every second, so each test step is due.
func testRule(
    name: String = "test",
    metric: String = "gossamer_test_value",
    match: [String: String] = [:],
    aggregate: AlertRule.Aggregate = .none,
    op: AlertRule.Comparison = .greaterThan,
    threshold: Double = 0.9,
    recover: Double? = nil,
    for forDuration: Duration = .zero,
    keepFiringFor: Duration = .zero,
    noData: AlertRule.NoData = .ok,
    noDataAfter: Int? = nil,
    labels: [String: String] = [:],
    annotations: [String: String] = [:]
) -> AlertRule {
    AlertRule(
        name: name, metric: metric, match: match, aggregate: aggregate, op: op, threshold: threshold,
        recover: recover, for: forDuration, keepFiringFor: keepFiringFor, interval: .seconds(1), noData: noData,
        noDataAfter: noDataAfter, labels: labels, annotations: annotations
    )
}

/// Drives an ``AlertEvaluator`` round by round, keeping the state between rounds.
struct Rounds {
    var rules: [AlertRule]
    var evaluator = AlertEvaluator()
    var state = AlertState()

    init(_ rules: AlertRule...) {
        self.rules = rules
    }

    init(rules: [AlertRule]) {
        self.rules = rules
    }

    /// Evaluates at `t0 + offset` and returns the transitions.
    @discardableResult
    mutating func at(_ offset: Duration, _ samples: [Sample]) -> [AlertTransition] {
        let (state, transitions) = self.evaluator.evaluate(
            rules: self.rules, samples: samples, now: t0 + offset, state: self.state)
        self.state = state
        return transitions
    }

    /// Evaluates at `t0 + offset` with one unlabelled sample of `gossamer_test_value`.
    @discardableResult
    mutating func at(_ offset: Duration, value: Double) -> [AlertTransition] {
        self.at(offset, [sample("gossamer_test_value", [:], value)])
    }

    /// The statuses of the current alerts.
    var statuses: [AlertStatus] { self.state.alerts.map(\.status) }
}

extension [AlertTransition] {
    /// Each transition as `from→to`, for compact expectations.
    var moves: [String] { self.map { "\($0.from.rawValue)→\($0.to.rawValue)" } }
}
