import Common

// MARK: - Alert evaluator

/// The alert rule engine as a pure function: rules, samples and `now` in; the next state and the status transitions
/// out. It reads no clock, does no I/O and keeps nothing between calls: the caller holds the ``AlertState``, persists
/// it, records and notifies the transitions, and calls again when ``nextEvaluation(rules:state:now:)`` says.
///
/// Each round:
/// 1. Rules are *due* when never evaluated, when the wall clock has reached the next multiple of their
///    ``AlertRule/interval`` (or ``Settings-swift.struct/defaultInterval``) since their last evaluation, or when the
///    wall clock went backwards. Only due rules run; the others keep their state untouched. Aligning evaluations to
///    multiples of the interval (as Prometheus aligns rule groups) makes every rule with the same interval due at
///    the same instant, so the caller samples its metrics once per tick rather than once per rule, however the
///    rules' creation times were spread.
/// 2. The samples are indexed once by metric name, keeping only the metrics due rules read and dropping NaN values
///    (a NaN counts as no data), so a rule looks only at its own metric's series.
/// 3. A rule selects the series its ``AlertRule/match`` accepts. With ``AlertRule/Aggregate/none`` each series is its
///    own alert, identified by its labels; otherwise the values combine into one alert identified by the matchers. A
///    NaN aggregate (such as `+Inf + -Inf`) counts as no data.
/// 4. Each alert moves on its condition `value op threshold`:
///    - inactive → pending when the condition holds (→ firing at once when `for` is zero);
///    - pending → firing once the condition has held since `activeAt` for at least `for`, checked at evaluations, so it
///      fires at the first evaluation at or after `activeAt + for`; pending → inactive when the condition fails first;
///    - firing stays firing while `value op recover` holds (hysteresis; `recover` defaults to the threshold); when it
///      stops holding the alert resolves, or, with `keep_firing_for`, keeps firing until that long has passed without
///      the condition holding again.
/// 5. An alert whose series is missing this round, or every alert when nothing matches, follows
///    ``AlertRule/noData``: `ok` and `nodata` treat the condition as false, `alerting` as true (creating the rule's
///    aggregate-style alert if it has none), `keep_last` leaves the alert as it is (so an alert whose series never
///    returns stays until the rule changes). With `nodata`, a separate alert labelled `nodata="true"` goes pending on
///    the first evaluation without any data and fires after ``AlertRule/noDataAfter`` in a row; it ends at the first
///    evaluation with data.
/// 6. Rules no longer in the rule set end their alerts (pending → inactive, firing → resolved) and are forgotten.
///
/// Rules are identified by name; if two share one, only the first is used. Transitions come out rule by rule in the
/// order of `rules` (removed rules last, by name), each rule's ordered by alert labels.
///
/// Cost: one pass over the samples plus, per due rule, a pass over the series of its own metric, with one dictionary
/// lookup per series only while the rule has alerts or the series crosses the threshold. Annotation templates are
/// parsed only when a rule produces a transition. 1,000 rules over 10,000 series take a few milliseconds per round in
/// release.
public struct AlertEvaluator: Sendable {
    /// Defaults for rules that leave them out.
    public struct Settings: Sendable, Hashable {
        /// How often a rule without `interval` is evaluated. Default 15 s (Prometheus' default). Shorter catches
        /// problems sooner at more CPU per minute; `for` durations are only as precise as the interval.
        public var defaultInterval: Duration = .seconds(15)
        /// With `no_data: nodata` and no `no_data_after`: evaluations without data in a row before the no-data alert
        /// fires. Default 3 (45 s at the default interval), enough to ride out a restart of the exporter.
        public var defaultNoDataAfter: Int = 3

        /// The defaults.
        public init() {}
    }

    /// The defaults this evaluator applies.
    public var settings: Settings

    /// Creates an evaluator.
    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    typealias RuleState = AlertState.RuleState

    // MARK: - Evaluation

    /// Evaluates the due `rules` against `samples` at `now`. `rules` is the whole rule set: rules missing from it
    /// that `state` remembers are ended and forgotten.
    public func evaluate(
        rules: [AlertRule],
        samples: [Sample],
        now: WallTime,
        state: AlertState
    ) -> (state: AlertState, transitions: [AlertTransition]) {
        var state = state
        var transitions: [AlertTransition] = []
        var names: Set<String> = []
        names.reserveCapacity(rules.count)
        var due: [AlertRule] = []
        for rule in rules where names.insert(rule.name).inserted {
            if self.isDue(rule, last: state.rules[rule.name]?.lastEvaluatedAt, now: now) {
                due.append(rule)
            }
        }

        let index = Self.index(samples, metrics: Set(due.map(\.metric)))
        for rule in due {
            // Taken out of the dictionary so the rule's alerts are mutated in place, not copied.
            var ruleState = state.rules.removeValue(forKey: rule.name) ?? RuleState()
            self.evaluate(
                rule, series: index[rule.metric] ?? [], now: now, state: &ruleState, transitions: &transitions)
            state.rules[rule.name] = ruleState
        }

        for name in state.rules.keys.sorted() where !names.contains(name) {
            guard let removed = state.rules.removeValue(forKey: name) else { continue }
            let ended = (removed.alerts.values.map(\.alert) + (removed.noDataAlert.map { [$0] } ?? [])).map { alert in
                Self.end(alert, now: now)
            }
            transitions += Self.sorted(ended)
        }
        return (state, transitions)
    }

    /// The earliest instant at which one of `rules` is due, never before `now`; `nil` when there are no rules.
    public func nextEvaluation(rules: [AlertRule], state: AlertState, now: WallTime) -> WallTime? {
        rules.map { rule in
            guard let last = state.rules[rule.name]?.lastEvaluatedAt, last <= now else { return now }
            let interval = Self.milliseconds(self.interval(of: rule))
            return max(now, WallTime(millisecondsSinceEpoch: (Self.tick(last, interval) + 1) * interval))
        }.min()
    }

    /// How often `rule` is evaluated.
    public func interval(of rule: AlertRule) -> Duration {
        rule.interval ?? self.settings.defaultInterval
    }

    // MARK: - One rule

    private func isDue(_ rule: AlertRule, last: WallTime?, now: WallTime) -> Bool {
        guard let last else { return true }
        let interval = Self.milliseconds(self.interval(of: rule))
        return now < last || Self.tick(now, interval) > Self.tick(last, interval)
    }

    /// An interval in whole milliseconds, at least 1.
    private static func milliseconds(_ interval: Duration) -> Int64 {
        max(1, interval.wholeMilliseconds)
    }

    /// Which multiple of `interval` milliseconds since the epoch `time` falls in (rounded down).
    private static func tick(_ time: WallTime, _ interval: Int64) -> Int64 {
        let ms = time.millisecondsSinceEpoch
        return ms >= 0 ? ms / interval : -((-ms + interval - 1) / interval)
    }

    /// The samples of `metrics`, by metric name, without NaN values.
    static func index(_ samples: [Sample], metrics: Set<String>) -> [String: [Sample]] {
        var index: [String: [Sample]] = [:]
        guard !metrics.isEmpty else { return index }
        index.reserveCapacity(metrics.count)
        for sample in samples where !sample.value.isNaN && metrics.contains(sample.name) {
            index[sample.name, default: []].append(sample)
        }
        return index
    }

    private func evaluate(
        _ rule: AlertRule,
        series: [Sample],
        now: WallTime,
        state: inout RuleState,
        transitions: inout [AlertTransition]
    ) {
        state.lastEvaluatedAt = now
        var round = Round(rule: rule, now: now)
        var hasData = false
        let recover = rule.recover ?? rule.threshold
        switch rule.aggregate {
        case .none:
            for sample in series where rule.matches(sample.labels) {
                hasData = true
                let enter = rule.op.holds(sample.value, rule.threshold)
                // Most series are fine and have no alert: skip the lookup when there is nothing to find or start.
                guard enter || !state.alerts.isEmpty else { continue }
                let stay = rule.op.holds(sample.value, recover)
                round.step(
                    &state.alerts[sample.labels], sample.labels, enter: enter, stay: stay, value: sample.value,
                    seen: true)
            }
        case .sum, .avg, .max, .min:
            let values = series.lazy.filter { rule.matches($0.labels) }.map(\.value)
            if let value = Self.aggregate(rule.aggregate, values), !value.isNaN {
                hasData = true
                let identity = rule.matchedLabels
                let enter = rule.op.holds(value, rule.threshold)
                let stay = rule.op.holds(value, recover)
                round.step(&state.alerts[identity], identity, enter: enter, stay: stay, value: value, seen: true)
            }
        }

        // Alerts whose series was not seen follow the no-data policy; the marks of the others are cleared.
        var missing: [[String: String]] = []
        var index = state.alerts.startIndex
        while index != state.alerts.endIndex {
            if state.alerts.values[index].seen {
                state.alerts.values[index].seen = false
            } else {
                missing.append(state.alerts.keys[index])
            }
            state.alerts.formIndex(after: &index)
        }
        for identity in missing {
            switch rule.noData {
            case .ok, .nodata:
                round.step(&state.alerts[identity], identity, enter: false, stay: false, value: nil, seen: false)
            case .alerting:
                round.step(&state.alerts[identity], identity, enter: true, stay: true, value: nil, seen: false)
            case .keepLast:
                break
            }
        }
        if !hasData, rule.noData == .alerting, state.alerts.isEmpty {
            let identity = rule.matchedLabels
            round.step(&state.alerts[identity], identity, enter: true, stay: true, value: nil, seen: false)
        }
        self.trackNoData(hasData: hasData, state: &state, round: &round)
        transitions += Self.sorted(round.changes)
    }

    /// Counts evaluations without data and moves the rule's no-data alert (`no_data: nodata`).
    private func trackNoData(hasData: Bool, state: inout RuleState, round: inout Round) {
        let rule = round.rule
        guard rule.noData == .nodata, !hasData else {
            state.noDataEvaluations = 0
            if let alert = state.noDataAlert {
                var ended = Self.end(alert, now: round.now).alert
                round.record(&ended, from: alert.status)
                state.noDataAlert = nil
            }
            return
        }
        state.noDataEvaluations += 1
        let firing = state.noDataEvaluations >= (rule.noDataAfter ?? self.settings.defaultNoDataAfter)
        if var alert = state.noDataAlert {
            if firing, alert.status == .pending {
                alert.status = .firing
                alert.firedAt = round.now
                round.record(&alert, from: .pending)
            }
            state.noDataAlert = alert
        } else {
            var labels = Self.labels(rule, rule.matchedLabels)
            labels["nodata"] = "true"
            var alert = Alert(
                rule: rule.name,
                status: firing ? .firing : .pending,
                labels: labels,
                value: nil,
                activeAt: round.now,
                firedAt: firing ? round.now : nil
            )
            round.record(&alert, from: .inactive)
            state.noDataAlert = alert
        }
    }

    // MARK: - Helpers

    /// An alert's labels: its identity, then the rule's labels, then `alertname` and `severity`.
    static func labels(_ rule: AlertRule, _ identity: [String: String]) -> [String: String] {
        var labels = identity
        labels.merge(rule.labels) { _, ruleValue in ruleValue }
        labels["alertname"] = rule.name
        labels["severity"] = rule.severity.rawValue
        return labels
    }

    /// The transition that ends `alert` without data: pending → inactive, firing → resolved.
    private static func end(_ alert: Alert, now: WallTime) -> AlertTransition {
        var ended = alert
        ended.value = nil
        ended.keepFiringSince = nil
        if alert.status == .firing {
            ended.status = .resolved
            ended.resolvedAt = now
        } else {
            ended.status = .inactive
        }
        return AlertTransition(from: alert.status, to: ended.status, at: now, alert: ended)
    }

    private static func sorted(_ transitions: [AlertTransition]) -> [AlertTransition] {
        guard transitions.count > 1 else { return transitions }
        return
            transitions
            .map { (key: LabelPair.sorted($0.alert.labels), transition: $0) }
            .sorted { $0.key.lexicographicallyPrecedes($1.key) }
            .map(\.transition)
    }

    /// Sum, mean, maximum or minimum of `values`; `nil` when there are none.
    private static func aggregate(_ kind: AlertRule.Aggregate, _ values: some Sequence<Double>) -> Double? {
        var count = 0
        var sum = 0.0
        var largest = -Double.infinity
        var smallest = Double.infinity
        for value in values {
            count += 1
            sum += value
            largest = max(largest, value)
            smallest = min(smallest, value)
        }
        guard count > 0 else { return nil }
        switch kind {
        case .sum: return sum
        case .avg: return sum / Double(count)
        case .max: return largest
        case .min: return smallest
        case .none: return nil
        }
    }
}

// MARK: - One rule's round

extension AlertEvaluator {
    /// One rule's evaluation in progress: moves its alerts and collects their transitions, parsing the annotation
    /// templates at most once, on the first transition.
    struct Round {
        let rule: AlertRule
        let now: WallTime
        private(set) var changes: [AlertTransition] = []
        private var templates: [String: AlertTemplate]?

        init(rule: AlertRule, now: WallTime) {
            self.rule = rule
            self.now = now
        }

        /// Moves the alert stored in `slot` (identified by `identity`; `nil` when inactive) on this evaluation's
        /// condition: `enter` (against the threshold) for an inactive or pending alert, `stay` (against `recover`) for
        /// a firing one. `seen` marks an alert whose series was observed.
        mutating func step(
            _ slot: inout AlertState.Tracked?,
            _ identity: [String: String],
            enter: Bool,
            stay: Bool,
            value: Double?,
            seen: Bool
        ) {
            guard var alert = slot?.alert else {
                guard enter else { return }
                var alert = Alert(
                    rule: self.rule.name,
                    status: .pending,
                    labels: AlertEvaluator.labels(self.rule, identity),
                    value: value,
                    activeAt: self.now
                )
                if self.rule.forDuration <= .zero {
                    alert.status = .firing
                    alert.firedAt = self.now
                }
                self.record(&alert, from: .inactive)
                slot = AlertState.Tracked(alert: alert, seen: seen)
                return
            }
            alert.value = value
            switch alert.status {
            case .pending:
                guard enter else {
                    alert.status = .inactive
                    self.record(&alert, from: .pending)
                    slot = nil
                    return
                }
                if alert.activeAt.duration(to: self.now) >= self.rule.forDuration {
                    alert.status = .firing
                    alert.firedAt = self.now
                    self.record(&alert, from: .pending)
                }
            case .firing:
                if stay {
                    alert.keepFiringSince = nil
                } else {
                    let since = alert.keepFiringSince ?? self.now
                    guard since.duration(to: self.now) < self.rule.keepFiringFor else {
                        alert.status = .resolved
                        alert.resolvedAt = self.now
                        alert.keepFiringSince = nil
                        self.record(&alert, from: .firing)
                        slot = nil
                        return
                    }
                    alert.keepFiringSince = since
                }
            case .inactive, .resolved:
                preconditionFailure("only pending and firing alerts are stored: \(alert)")
            }
            slot = AlertState.Tracked(alert: alert, seen: seen)
        }

        /// Renders the rule's annotations for `alert` and appends its transition from `from`.
        mutating func record(_ alert: inout Alert, from: AlertStatus) {
            if self.templates == nil {
                // Validation rejects rules whose templates do not parse; should one slip through, it renders as text.
                self.templates = self.rule.annotations.mapValues { text in
                    (try? AlertTemplate(text)) ?? AlertTemplate(literal: text)
                }
            }
            let labels = alert.labels
            let value = alert.value
            alert.annotations = (self.templates ?? [:]).mapValues { $0.render(labels: labels, value: value) }
            self.changes.append(AlertTransition(from: from, to: alert.status, at: self.now, alert: alert))
        }
    }
}
