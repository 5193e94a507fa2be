// MARK: - Alert rule

/// A threshold alert on one metric, as operators write it (JSON, stored as a config record so it replicates and
/// versions like any key):
///
/// ```json
/// {"name": "disk-full", "metric": "gossamer_disk_used_ratio", "match": {"mount": "/"}, "aggregate": "max",
///  "op": ">", "threshold": 0.9, "recover": 0.85, "for": "5m", "keep_firing_for": "0s", "interval": "15s",
///  "no_data": "ok", "severity": "critical", "labels": {"team": "ops"},
///  "annotations": {"summary": "disk {{ $labels.mount }} at {{ $value }}"},
///  "receivers": [{"webhook": "http://127.0.0.1:9000/hook"}]}
/// ```
///
/// Only `name`, `metric`, `op` and `threshold` are required. Decoding checks the shape (types, known words, duration
/// text, no unknown fields) and throws ``RuleDecodingError``; ``validate(knownMetrics:)`` checks the meaning. How the
/// fields drive alerts is described on ``AlertEvaluator``.
public struct AlertRule: Hashable, Sendable {
    /// How the matching series become values to compare.
    public enum Aggregate: String, Hashable, Sendable, CaseIterable {
        /// Each matching series on its own: one alert per series, identified by the series' labels.
        case none
        /// One alert for the sum of the matching series.
        case sum
        /// One alert for their mean.
        case avg
        /// One alert for the largest value.
        case max
        /// One alert for the smallest value.
        case min
    }

    /// The comparison that makes the alert condition true: `value op threshold`.
    public enum Comparison: String, Hashable, Sendable, CaseIterable {
        /// `>`
        case greaterThan = ">"
        /// `>=`
        case greaterThanOrEqual = ">="
        /// `<`
        case lessThan = "<"
        /// `<=`
        case lessThanOrEqual = "<="
        /// `==`
        case equal = "=="
        /// `!=`
        case notEqual = "!="

        /// Whether `value op threshold` holds.
        public func holds(_ value: Double, _ threshold: Double) -> Bool {
            switch self {
            case .greaterThan: value > threshold
            case .greaterThanOrEqual: value >= threshold
            case .lessThan: value < threshold
            case .lessThanOrEqual: value <= threshold
            case .equal: value == threshold
            case .notEqual: value != threshold
            }
        }
    }

    /// What an evaluation with no matching series means.
    public enum NoData: String, Hashable, Sendable, CaseIterable {
        /// Missing data is fine: the condition counts as false (pending alerts end, firing ones resolve).
        case ok
        /// Missing data is itself a problem: the condition counts as true.
        case alerting
        /// Alerts keep the state they had (pending stays pending, firing stays firing) until data returns.
        case keepLast = "keep_last"
        /// The condition counts as false, and a separate no-data alert (labels plus `nodata="true"`) goes pending on
        /// the first evaluation without data and fires after ``AlertRule/noDataAfter`` of them in a row.
        case nodata
    }

    /// How urgent the alert is; also set as the `severity` label.
    public enum Severity: String, Hashable, Sendable, CaseIterable {
        /// For the record.
        case info
        /// Someone should look soon.
        case warning
        /// Someone should look now.
        case critical
    }

    /// Where notifications go. Each receiver gets its own notification groups (see ``NotificationPlanner``).
    public enum Receiver: Hashable, Sendable, CustomStringConvertible {
        /// `{"webhook": "http://host:port/path"}`: POSTs the Alertmanager webhook message (version 4) to the URL, so
        /// receivers written for Alertmanager work unchanged.
        case webhook(String)
        /// `{"alertmanager": "http://host:9093"}`: forwards the alerts to a real Alertmanager with
        /// `POST <url>/api/v2/alerts`, the way Prometheus does, and lets it group, silence and route them.
        case alertmanager(String)
        /// `{"log": true}`: logs one line per alert through swift-log (at `info`), for trying rules out.
        case log

        /// The receiver's kind as written in JSON: `webhook`, `alertmanager` or `log`; also the `receiver` field
        /// of webhook messages and a bounded metric dimension.
        public var kind: String {
            switch self {
            case .webhook: "webhook"
            case .alertmanager: "alertmanager"
            case .log: "log"
            }
        }

        /// The kind and URL, such as `webhook http://127.0.0.1:9000/hook`, for logs.
        public var description: String {
            switch self {
            case .webhook(let url), .alertmanager(let url): "\(self.kind) \(url)"
            case .log: self.kind
            }
        }
    }

    /// The rule's unique name; also the `alertname` label.
    public var name: String
    /// The metric name the rule reads, exactly as in the samples (for histograms `…_bucket`, `…_sum`, `…_count`).
    public var metric: String
    /// Label equality matchers: a series matches when each listed label has that value. An empty value matches a
    /// series without the label, as in Prometheus.
    public var match: [String: String]
    /// How matching series combine. Default ``Aggregate/none``.
    public var aggregate: Aggregate
    /// The comparison.
    public var op: Comparison
    /// The value compared against.
    public var threshold: Double
    /// Hysteresis: a firing alert resolves only once `value op recover` no longer holds. On the safe side of the
    /// threshold (at most it for `>`/`>=`, at least it for `<`/`<=`); not allowed with `==`/`!=`. `nil` means the
    /// threshold itself.
    public var recover: Double?
    /// How long the condition must hold before a pending alert fires (`for`). Default zero: fire at once.
    public var forDuration: Duration
    /// How long a firing alert keeps firing after its condition stops holding (`keep_firing_for`). Default zero.
    public var keepFiringFor: Duration
    /// How often the rule is evaluated; `nil` uses ``AlertEvaluator/Settings-swift.struct/defaultInterval``.
    public var interval: Duration?
    /// What no data means. Default ``NoData/ok``.
    public var noData: NoData
    /// With ``NoData/nodata``: evaluations without data in a row before the no-data alert fires; `nil` uses
    /// ``AlertEvaluator/Settings-swift.struct/defaultNoDataAfter`` (3).
    public var noDataAfter: Int?
    /// Default ``Severity/warning``.
    public var severity: Severity
    /// Extra labels on every alert of the rule (they override series labels of the same name).
    public var labels: [String: String]
    /// Annotations, each an ``AlertTemplate``, rendered at every transition.
    public var annotations: [String: String]
    /// Where the wiring sends notifications.
    public var receivers: [Receiver]

    /// Creates a rule; everything but the name, metric, comparison and threshold has a default.
    public init(
        name: String,
        metric: String,
        match: [String: String] = [:],
        aggregate: Aggregate = .none,
        op: Comparison,
        threshold: Double,
        recover: Double? = nil,
        for forDuration: Duration = .zero,
        keepFiringFor: Duration = .zero,
        interval: Duration? = nil,
        noData: NoData = .ok,
        noDataAfter: Int? = nil,
        severity: Severity = .warning,
        labels: [String: String] = [:],
        annotations: [String: String] = [:],
        receivers: [Receiver] = []
    ) {
        self.name = name
        self.metric = metric
        self.match = match
        self.aggregate = aggregate
        self.op = op
        self.threshold = threshold
        self.recover = recover
        self.forDuration = forDuration
        self.keepFiringFor = keepFiringFor
        self.interval = interval
        self.noData = noData
        self.noDataAfter = noDataAfter
        self.severity = severity
        self.labels = labels
        self.annotations = annotations
        self.receivers = receivers
    }

    // MARK: - Matching

    /// Whether a series with `labels` is selected by ``match``.
    func matches(_ labels: [String: String]) -> Bool {
        for (name, value) in self.match where (labels[name] ?? "") != value {
            return false
        }
        return true
    }

    /// The labels shared by every series the rule selects: the non-empty matchers. They identify the rule's single
    /// alert when it aggregates.
    var matchedLabels: [String: String] {
        self.match.filter { !$0.value.isEmpty }
    }
}
