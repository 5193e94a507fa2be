import CoreMetrics
import Synchronization

// MARK: - Metrics registry

/// A swift-metrics backend that keeps every value in memory so it can be read back: by the alert engine
/// (``samples()``) and by the Prometheus exporter (``families()`` → ``PrometheusText``).
///
/// The agent bootstraps the process with one registry (`MetricsSystem.bootstrap(registry)`); libraries keep emitting
/// through the swift-metrics facade. Tests pass a registry as the `factory:` of a metric instead, never bootstrapping.
///
/// Mapping from swift-metrics:
///
/// | swift-metrics | exposed as |
/// |---|---|
/// | `Counter`, `FloatingPointCounter` | counter (the two share one series when label and dimensions match) |
/// | `Gauge`, `Recorder(aggregate: false)`, `Meter` | gauge |
/// | `Recorder(aggregate: true)` | histogram with ``Settings-swift.struct/buckets`` or the default buckets |
/// | `Timer` | histogram in seconds (nanoseconds ÷ 10⁹), same buckets |
///
/// The swift-metrics label is the metric name and the dimensions are its labels. Creating a metric twice with the same
/// label and dimensions returns the same series. Names are not checked here; ``PrometheusText`` refuses invalid ones.
///
/// **Cost.** Creating a metric takes the registry lock once. After that, a counter increment or a gauge set is one
/// relaxed atomic operation on storage owned by that series, and a histogram observation takes that series' own
/// lock; nothing on the hot path touches a registry-wide lock. Reading (``families()``, ``samples()``) holds the
/// registry lock only to copy the series list.
///
/// **Cardinality.** Keeping label values bounded is the caller's job (status, route, mount — never ids). As a backstop
/// the registry keeps at most ``Settings-swift.struct/maxSeriesPerMetric`` series per name; further series, series
/// whose name is already used by a different kind, and series with a repeated dimension name are *dropped*: they get
/// a handler that discards every value, and ``droppedSeries`` (exported as `gossamer_metrics_series_dropped_total`)
/// counts them.
public final class MetricsRegistry: MetricsFactory, Sendable {
    /// Limits and histogram buckets.
    public struct Settings: Sendable, Hashable {
        /// The most series one metric name may have. Default 1,000: ample for bounded labels, small enough that a
        /// label fed with ids cannot exhaust memory or slow `/metrics` down.
        public var maxSeriesPerMetric: Int = 1000
        /// Bucket bounds for histograms with no entry in ``buckets``. Default: Prometheus' client default
        /// (5 ms … 10 s), which suits request durations in seconds.
        public var defaultBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
        /// Bucket bounds by metric name, for histograms of other units (sizes, counts). Bounds are sorted, and
        /// duplicates, non-finite values and `+Inf` (always implicit) are ignored.
        public var buckets: [String: [Double]] = [:]

        /// The defaults.
        public init() {}
    }

    /// The name under which the registry exports ``droppedSeries``.
    public static let droppedSeriesMetric = "gossamer_metrics_series_dropped_total"

    /// The swift-metrics kind a family was created with. Timers and recorders are both histograms in Prometheus but
    /// record different units, so one name cannot mix them.
    enum Origin: Hashable {
        case counter
        case gauge
        case histogram
        case timer

        var kind: MetricKind {
            switch self {
            case .counter: .counter
            case .gauge: .gauge
            case .histogram, .timer: .histogram
            }
        }
    }

    /// A stored series of any kind.
    enum Stored: Sendable {
        case counter(CounterSeries)
        case gauge(GaugeSeries)
        case histogram(HistogramSeries)

        var object: any RegisteredSeries {
            switch self {
            case .counter(let series): series
            case .gauge(let series): series
            case .histogram(let series): series
            }
        }
    }

    struct Family: Sendable {
        var origin: Origin
        var series: [[String: String]: Stored] = [:]
    }

    struct State: Sendable {
        var families: [String: Family] = [:]
        var help: [String: String] = [:]
    }

    /// The settings this registry was created with.
    public let settings: Settings
    private let state = Mutex(State())
    private let dropped = Atomic<Int>(0)

    /// Creates an empty registry.
    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    // MARK: - Reading

    /// How many series were refused so far (over the per-name cap, kind clash, repeated dimension name).
    public var droppedSeries: Int {
        self.dropped.load(ordering: .relaxed)
    }

    /// Sets the `# HELP` text of a metric name. Call it where the metric is created; it may come before or after.
    public func describe(_ name: String, help: String) {
        self.state.withLock { $0.help[name] = help }
    }

    /// Every family with its current values, ordered by name, each family's series ordered by labels; the registry's
    /// own `gossamer_metrics_series_dropped_total` included.
    public func families() -> [MetricFamily] {
        let state = self.state.withLock { $0 }
        var families: [MetricFamily] = []
        families.reserveCapacity(state.families.count + 1)
        for (name, family) in state.families where !family.series.isEmpty {
            var series: [(key: [LabelPair], series: MetricSeries)] = []
            series.reserveCapacity(family.series.count)
            for (labels, stored) in family.series {
                let value: MetricValue =
                    switch stored {
                    case .counter(let counter): .scalar(counter.value)
                    case .gauge(let gauge): .scalar(gauge.value)
                    case .histogram(let histogram): .histogram(histogram.value)
                    }
                series.append((LabelPair.sorted(labels), MetricSeries(labels: labels, value: value)))
            }
            series.sort { $0.key.lexicographicallyPrecedes($1.key) }
            families.append(
                MetricFamily(name: name, help: state.help[name], kind: family.origin.kind, series: series.map(\.series))
            )
        }
        if state.families[Self.droppedSeriesMetric] == nil {
            families.append(
                MetricFamily(
                    name: Self.droppedSeriesMetric,
                    help: "Metric series the registry refused: over the per-name cap, kind clash or repeated label.",
                    kind: .counter,
                    series: [MetricSeries(value: .scalar(Double(self.droppedSeries)))]
                )
            )
        }
        families.sort { $0.name < $1.name }
        return families
    }

    /// Every current value as flat samples (histograms as `_bucket`, `_sum`, `_count`), in ``families()`` order.
    public func samples() -> [Sample] {
        self.families().flatMap(\.samples)
    }

    // MARK: - MetricsFactory

    /// A counter series (shared with a `FloatingPointCounter` of the same label and dimensions).
    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        guard case .counter(let series) = self.series(label, dimensions, .counter) else { return DroppedSeries.shared }
        return series
    }

    /// A counter series that takes fractional increments (shared with a `Counter` of the same label and dimensions).
    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)])
        -> any FloatingPointCounterHandler
    {
        guard case .counter(let series) = self.series(label, dimensions, .counter) else { return DroppedSeries.shared }
        return series
    }

    /// A gauge series.
    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        guard case .gauge(let series) = self.series(label, dimensions, .gauge) else { return DroppedSeries.shared }
        return series
    }

    /// A histogram series when `aggregate` is true (a `Recorder`), a gauge series otherwise (a `Gauge`).
    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        switch self.series(label, dimensions, aggregate ? .histogram : .gauge) {
        case .gauge(let series): series
        case .histogram(let series): series
        case .counter, nil: DroppedSeries.shared
        }
    }

    /// A histogram series that records durations in seconds.
    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        guard case .histogram(let series) = self.series(label, dimensions, .timer) else { return DroppedSeries.shared }
        return series
    }

    /// Removes the counter's series from the registry (its name disappears once it has no series left).
    public func destroyCounter(_ handler: any CounterHandler) { self.remove(handler) }
    /// Removes the floating-point counter's series.
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) { self.remove(handler) }
    /// Removes the meter's series.
    public func destroyMeter(_ handler: any MeterHandler) { self.remove(handler) }
    /// Removes the recorder's or gauge's series.
    public func destroyRecorder(_ handler: any RecorderHandler) { self.remove(handler) }
    /// Removes the timer's series.
    public func destroyTimer(_ handler: any TimerHandler) { self.remove(handler) }

    // MARK: - Storage

    /// The existing series for `name` and `dimensions`, or a new one; `nil` (counted as dropped) when refused.
    private func series(_ name: String, _ dimensions: [(String, String)], _ origin: Origin) -> Stored? {
        let labels = [String: String](dimensions, uniquingKeysWith: { first, _ in first })
        guard labels.count == dimensions.count else { return self.drop() }
        let created: Stored? = self.state.withLock { state in
            if let family = state.families[name] {
                guard family.origin == origin else { return nil }
                if let existing = family.series[labels] { return existing }
                guard family.series.count < self.settings.maxSeriesPerMetric else { return nil }
            } else {
                guard self.settings.maxSeriesPerMetric > 0 else { return nil }
                state.families[name] = Family(origin: origin)
            }
            let stored = self.makeSeries(name, labels, origin)
            state.families[name]?.series[labels] = stored
            return stored
        }
        return created ?? self.drop()
    }

    private func makeSeries(_ name: String, _ labels: [String: String], _ origin: Origin) -> Stored {
        switch origin {
        case .counter:
            .counter(CounterSeries(name: name, labels: labels))
        case .gauge:
            .gauge(GaugeSeries(name: name, labels: labels))
        case .histogram, .timer:
            .histogram(HistogramSeries(name: name, labels: labels, bounds: self.bounds(for: name)))
        }
    }

    /// The configured bounds for `name`: sorted, finite, without duplicates.
    private func bounds(for name: String) -> [Double] {
        let configured = self.settings.buckets[name] ?? self.settings.defaultBuckets
        var bounds: [Double] = []
        for bound in configured.filter(\.isFinite).sorted() where bound != bounds.last {
            bounds.append(bound)
        }
        return bounds
    }

    private func drop() -> Stored? {
        self.dropped.wrappingAdd(1, ordering: .relaxed)
        return nil
    }

    private func remove(_ handler: AnyObject) {
        guard let series = handler as? any RegisteredSeries else { return }
        self.state.withLock { state in
            guard let stored = state.families[series.name]?.series[series.labels], stored.object === series else {
                return
            }
            state.families[series.name]?.series[series.labels] = nil
            if state.families[series.name]?.series.isEmpty == true {
                state.families[series.name] = nil
            }
        }
    }
}

// MARK: - Label order

/// A label name and value, ordered by name then value: the canonical order of labels in output.
struct LabelPair: Hashable, Comparable, Sendable {
    var name: String
    var value: String

    static func < (lhs: LabelPair, rhs: LabelPair) -> Bool {
        (lhs.name, lhs.value) < (rhs.name, rhs.value)
    }

    /// The labels as pairs sorted by name.
    static func sorted(_ labels: [String: String]) -> [LabelPair] {
        labels.map { LabelPair(name: $0.key, value: $0.value) }.sorted()
    }
}
