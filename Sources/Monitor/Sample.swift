// MARK: - Sample

/// One time series value, as the alert engine reads it: a metric name, its labels and a number.
///
/// Counters and gauges give one sample per series. A histogram series gives Prometheus-style samples: one
/// `<name>_bucket` per bucket (cumulative, with an `le` label, the last one `le="+Inf"`), `<name>_sum` and
/// `<name>_count`.
public struct Sample: Hashable, Sendable {
    /// The metric name, such as `gossamer_disk_used_ratio` or `gossamer_http_request_duration_seconds_count`.
    public var name: String
    /// The series labels (swift-metrics dimensions), such as `["mount": "/"]`.
    public var labels: [String: String]
    /// The value. Counters and histogram counts are whole numbers stored as `Double`.
    public var value: Double

    /// Creates a sample.
    public init(name: String, labels: [String: String] = [:], value: Double) {
        self.name = name
        self.labels = labels
        self.value = value
    }
}

// MARK: - Metric families

/// The Prometheus type of a metric family.
public enum MetricKind: String, Hashable, Sendable {
    /// A monotonically increasing total (swift-metrics `Counter`, `FloatingPointCounter`).
    case counter
    /// A value that goes up and down (swift-metrics `Gauge`, `Meter`).
    case gauge
    /// Observations counted into fixed buckets (swift-metrics `Recorder` with `aggregate: true`, `Timer`).
    case histogram
}

/// All series of one metric name, with their type and help text: the unit of Prometheus exposition.
public struct MetricFamily: Hashable, Sendable {
    /// The metric name.
    public var name: String
    /// The `# HELP` text; `nil` when nobody described the metric.
    public var help: String?
    /// The Prometheus type.
    public var kind: MetricKind
    /// The series, one per distinct label set.
    public var series: [MetricSeries]

    /// Creates a family.
    public init(name: String, help: String? = nil, kind: MetricKind, series: [MetricSeries]) {
        self.name = name
        self.help = help
        self.kind = kind
        self.series = series
    }

    /// The family's samples, series by series (a histogram series expands to its buckets, sum and count).
    public var samples: [Sample] {
        var samples: [Sample] = []
        samples.reserveCapacity(self.series.count)
        for series in self.series {
            switch series.value {
            case .scalar(let value):
                samples.append(Sample(name: self.name, labels: series.labels, value: value))
            case .histogram(let histogram):
                let bucketName = self.name + "_bucket"
                for (bound, count) in zip(histogram.bounds, histogram.cumulativeCounts) {
                    var labels = series.labels
                    labels["le"] = PrometheusText.formatNumber(bound)
                    samples.append(Sample(name: bucketName, labels: labels, value: Double(count)))
                }
                var labels = series.labels
                labels["le"] = "+Inf"
                samples.append(Sample(name: bucketName, labels: labels, value: Double(histogram.count)))
                samples.append(Sample(name: self.name + "_sum", labels: series.labels, value: histogram.sum))
                samples.append(
                    Sample(name: self.name + "_count", labels: series.labels, value: Double(histogram.count)))
            }
        }
        return samples
    }
}

/// One series of a family: its labels and its current value.
public struct MetricSeries: Hashable, Sendable {
    /// The labels (swift-metrics dimensions).
    public var labels: [String: String]
    /// The value: a number for counters and gauges, buckets for histograms.
    public var value: MetricValue

    /// Creates a series.
    public init(labels: [String: String] = [:], value: MetricValue) {
        self.labels = labels
        self.value = value
    }
}

/// The value of one series.
public enum MetricValue: Hashable, Sendable {
    /// A counter's total or a gauge's current value.
    case scalar(Double)
    /// A histogram's buckets, sum and count.
    case histogram(HistogramValue)
}

/// A histogram read at one moment.
public struct HistogramValue: Hashable, Sendable {
    /// The finite upper bounds of the buckets, strictly increasing (the `+Inf` bucket is implicit).
    public var bounds: [Double]
    /// For each bound, how many observations were less than or equal to it (cumulative, as Prometheus exposes them).
    public var cumulativeCounts: [Int]
    /// The sum of all observations.
    public var sum: Double
    /// The number of observations (the `+Inf` bucket).
    public var count: Int

    /// Creates a histogram value. `cumulativeCounts` must have one entry per bound.
    public init(bounds: [Double], cumulativeCounts: [Int], sum: Double, count: Int) {
        precondition(bounds.count == cumulativeCounts.count, "one cumulative count per bound")
        self.bounds = bounds
        self.cumulativeCounts = cumulativeCounts
        self.sum = sum
        self.count = count
    }
}
