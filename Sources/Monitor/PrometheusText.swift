// MARK: - Prometheus text exposition

/// Renders metric families in the Prometheus text exposition format, version 0.0.4, as served at `/metrics`.
///
/// Output rules, following the format specification:
/// - each family is `# HELP name text`, `# TYPE name counter|gauge|histogram`, then one line per sample; every line
///   ends with `\n`;
/// - families are ordered by name and series by their labels (by name, then value), so equal input gives equal output;
///   labels are written in name order, `le` last;
/// - label values escape `\` as `\\`, `"` as `\"` and a line feed as `\n`; help text escapes `\` and line feeds;
/// - a histogram series gives `name_bucket{…,le="…"}` lines with cumulative counts, ending with `le="+Inf"`, then
///   `name_sum` and `name_count`;
/// - numbers are Go-parsable: whole numbers without a fraction (`3`), others in shortest round-trip form (`0.25`,
///   `1e-05`), and `+Inf`, `-Inf`, `NaN`.
///
/// Names are checked rather than trusted: a family whose name is not `[a-zA-Z_:][a-zA-Z0-9_:]*` or repeats an earlier
/// family's name is left out, and so is a series with a label name that is not `[a-zA-Z_][a-zA-Z0-9_]*`, starts with
/// `__` (reserved) or is `le` on a histogram, and a series whose value does not fit the family's type. What was left
/// out is listed in ``Output/rejected`` so the exporter can log it; the rest of the page is still served. Callers name
/// their metrics `gossamer_…`; the renderer does not enforce the prefix.
public enum PrometheusText {
    /// The `Content-Type` of a rendered page.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// A family or series left out of the page, and why.
    public struct Rejection: Hashable, Sendable, CustomStringConvertible {
        /// The metric name.
        public var metric: String
        /// What was wrong, e.g. `invalid label name 'mount-point'`.
        public var reason: String

        /// Creates a rejection.
        public init(metric: String, reason: String) {
            self.metric = metric
            self.reason = reason
        }

        /// `metric: reason`.
        public var description: String { "\(self.metric): \(self.reason)" }
    }

    /// A rendered page and what had to be left out of it.
    public struct Output: Hashable, Sendable {
        /// The exposition text; empty or ending with a line feed.
        public var text: String
        /// Families and series left out, in output order.
        public var rejected: [Rejection]
    }

    /// Renders `families`. Families without any valid series are left out entirely.
    public static func render(_ families: [MetricFamily]) -> Output {
        var text = ""
        var rejected: [Rejection] = []
        var seen: Set<String> = []
        for family in families.sorted(by: { $0.name < $1.name }) {
            guard self.isValidMetricName(family.name) else {
                rejected.append(Rejection(metric: family.name, reason: "invalid metric name"))
                continue
            }
            guard seen.insert(family.name).inserted else {
                rejected.append(Rejection(metric: family.name, reason: "duplicate metric name"))
                continue
            }
            var series: [(labels: [LabelPair], value: MetricValue)] = []
            series.reserveCapacity(family.series.count)
            for entry in family.series {
                let labels = LabelPair.sorted(entry.labels)
                if let problem = self.seriesProblem(labels, entry.value, kind: family.kind) {
                    rejected.append(Rejection(metric: family.name, reason: problem))
                    continue
                }
                series.append((labels, entry.value))
            }
            guard !series.isEmpty else { continue }
            series.sort { $0.labels.lexicographicallyPrecedes($1.labels) }

            text += "# HELP \(family.name) \(self.escapeHelp(family.help ?? family.name))\n"
            text += "# TYPE \(family.name) \(family.kind.rawValue)\n"
            for (labels, value) in series {
                switch value {
                case .scalar(let number):
                    self.appendLine(&text, family.name, labels, extra: nil, number)
                case .histogram(let histogram):
                    let bucket = family.name + "_bucket"
                    for (bound, count) in zip(histogram.bounds, histogram.cumulativeCounts) {
                        self.appendLine(&text, bucket, labels, extra: self.formatNumber(bound), Double(count))
                    }
                    self.appendLine(&text, bucket, labels, extra: "+Inf", Double(histogram.count))
                    self.appendLine(&text, family.name + "_sum", labels, extra: nil, histogram.sum)
                    self.appendLine(&text, family.name + "_count", labels, extra: nil, Double(histogram.count))
                }
            }
        }
        return Output(text: text, rejected: rejected)
    }

    // MARK: - Names

    /// Whether `name` is a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    public static func isValidMetricName(_ name: String) -> Bool {
        self.isValidName(name, allowColon: true)
    }

    /// Whether `name` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved for
    /// Prometheus' internal use).
    public static func isValidLabelName(_ name: String) -> Bool {
        self.isValidName(name, allowColon: false) && !name.hasPrefix("__")
    }

    private static func isValidName(_ name: String, allowColon: Bool) -> Bool {
        var first = true
        for byte in name.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "_"):
                break
            case UInt8(ascii: "0")...UInt8(ascii: "9") where !first:
                break
            case UInt8(ascii: ":") where allowColon:
                break
            default:
                return false
            }
            first = false
        }
        return !first
    }

    /// Why a series cannot be written, or `nil` when it can.
    private static func seriesProblem(_ labels: [LabelPair], _ value: MetricValue, kind: MetricKind) -> String? {
        switch (kind, value) {
        case (.histogram, .scalar): return "a histogram series needs a histogram value"
        case (.counter, .histogram), (.gauge, .histogram): return "a \(kind.rawValue) series needs a scalar value"
        case (.histogram, .histogram), (.counter, .scalar), (.gauge, .scalar): break
        }
        for label in labels {
            guard self.isValidLabelName(label.name) else { return "invalid label name '\(label.name)'" }
            if kind == .histogram, label.name == "le" { return "label 'le' is reserved for histogram buckets" }
        }
        return nil
    }

    // MARK: - Formatting

    /// `value` as the exposition format writes it: `3`, `0.25`, `1e-05`, `+Inf`, `-Inf`, `NaN`.
    public static func formatNumber(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return value.description
    }

    private static func appendLine(
        _ text: inout String, _ name: String, _ labels: [LabelPair], extra le: String?, _ value: Double
    ) {
        text += name
        if !labels.isEmpty || le != nil {
            text += "{"
            var separator = ""
            for label in labels {
                text += separator
                text += label.name
                text += "=\""
                self.appendEscaped(&text, label.value)
                text += "\""
                separator = ","
            }
            if let le {
                text += separator
                text += "le=\"\(le)\""
            }
            text += "}"
        }
        text += " "
        text += self.formatNumber(value)
        text += "\n"
    }

    private static func appendEscaped(_ text: inout String, _ value: String) {
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\\": text += "\\\\"
            case "\"": text += "\\\""
            case "\n": text += "\\n"
            default: text.unicodeScalars.append(scalar)
            }
        }
    }

    private static func escapeHelp(_ help: String) -> String {
        var escaped = ""
        for scalar in help.unicodeScalars {
            switch scalar {
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }
}
