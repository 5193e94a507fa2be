import Common

// MARK: - Validation

/// A problem with one field of a rule that makes the rule unusable (`op`, `match.mount`, `annotations.summary`,
/// `receivers[0].webhook`).
public typealias RuleError = FieldError

/// Something suspicious about one field of a rule that does not stop it from working, such as a metric nobody
/// exports (yet).
public typealias RuleWarning = FieldError

/// The outcome of ``AlertRule/validate(knownMetrics:)``.
public struct RuleValidation: Hashable, Sendable {
    /// Problems that make the rule unusable; store the rule only when there are none.
    public var errors: [RuleError]
    /// Problems worth telling the operator about that still leave the rule usable.
    public var warnings: [RuleWarning]

    /// Whether the rule has no errors (warnings allowed).
    public var isValid: Bool { self.errors.isEmpty }
}

extension AlertRule {
    /// The longest rule name.
    public static let maximumNameLength = 128
    /// The shortest evaluation interval.
    public static let minimumInterval: Duration = .seconds(1)
    /// Labels the engine sets itself, which ``labels`` may not set.
    public static let reservedLabels: Set<String> = ["alertname", "severity"]

    /// Checks the rule's meaning; decoding already checked its shape.
    ///
    /// Errors: a name that is empty, longer than ``maximumNameLength`` or not made of letters, digits, `-`, `_` and
    /// `.`; an invalid metric or label name; a non-finite threshold; `recover` on the wrong side of the threshold or used
    /// with `==`/`!=`; a negative `for` or `keep_firing_for`; an `interval` under ``minimumInterval``; `no_data_after`
    /// below 1 or without `no_data: nodata`; `labels` setting ``reservedLabels``; an annotation template that does not
    /// parse; a webhook or alertmanager receiver that is not an `http://` or `https://` URL.
    ///
    /// Warning: `knownMetrics` (the sample names currently exported, when the caller passes them) lacks ``metric``.
    public func validate(knownMetrics: Set<String>? = nil) -> RuleValidation {
        var errors: [RuleError] = []
        func fail(_ field: String, _ message: String) {
            errors.append(RuleError(field: field, message))
        }
        let labelPattern = "[a-zA-Z_][a-zA-Z0-9_]*, not starting with __"

        let nameLength = 1...Self.maximumNameLength
        if !nameLength.contains(self.name.count) || !self.name.allSatisfy(Self.isNameCharacter) {
            let allowed = "1 to \(Self.maximumNameLength) letters, digits, '-', '_' or '.'"
            fail("name", "name must be \(allowed), not '\(self.name)'")
        }
        if !PrometheusText.isValidMetricName(self.metric) {
            fail("metric", "metric must match [a-zA-Z_:][a-zA-Z0-9_:]*, not '\(self.metric)'")
        }
        for name in self.match.keys.sorted() where !PrometheusText.isValidLabelName(name) {
            fail("match.\(name)", "match label '\(name)' must match \(labelPattern)")
        }
        if !self.threshold.isFinite {
            fail("threshold", "threshold must be a finite number")
        }
        if let recover = self.recover, let problem = self.recoverProblem(recover) {
            fail("recover", problem)
        }
        if self.forDuration < .zero {
            fail("for", "for must not be negative")
        }
        if self.keepFiringFor < .zero {
            fail("keep_firing_for", "keep_firing_for must not be negative")
        }
        if let interval = self.interval, interval < Self.minimumInterval {
            let minimum = DurationText.format(Self.minimumInterval)
            fail("interval", "interval must be at least \(minimum), not \(DurationText.format(interval))")
        }
        if let noDataAfter = self.noDataAfter {
            if self.noData != .nodata {
                fail("no_data_after", "no_data_after applies only with no_data: nodata, not \(self.noData.rawValue)")
            } else if noDataAfter < 1 {
                fail("no_data_after", "no_data_after must be at least 1, not \(noDataAfter)")
            }
        }
        for name in self.labels.keys.sorted() {
            if !PrometheusText.isValidLabelName(name) {
                fail("labels.\(name)", "label '\(name)' must match \(labelPattern)")
            } else if Self.reservedLabels.contains(name) {
                fail(
                    "labels.\(name)",
                    "labels may not set '\(name)': the rule's \(name == "alertname" ? "name" : name) sets it")
            }
        }
        for (name, text) in self.annotations.sorted(by: { $0.key < $1.key }) {
            if !PrometheusText.isValidLabelName(name) {
                fail("annotations.\(name)", "annotation '\(name)' must match \(labelPattern)")
            }
            do {
                _ = try AlertTemplate(text)
            } catch {
                fail("annotations.\(name)", "annotations.\(name): \(error.message)")
            }
        }
        for (index, receiver) in self.receivers.enumerated() {
            switch receiver {
            case .webhook(let url) where !Self.isHTTPURL(url), .alertmanager(let url) where !Self.isHTTPURL(url):
                let field = "receivers[\(index)].\(receiver.kind)"
                fail(field, "\(field) must be an http:// or https:// URL, not '\(url)'")
            case .webhook, .alertmanager, .log:
                break
            }
        }

        var warnings: [RuleWarning] = []
        if let knownMetrics, PrometheusText.isValidMetricName(self.metric), !knownMetrics.contains(self.metric) {
            let message = "no metric named '\(self.metric)' is exported now; the rule sees no data until one is"
            warnings.append(RuleWarning(field: "metric", message))
        }
        return RuleValidation(errors: errors, warnings: warnings)
    }

    /// Why `recover` is unusable with this comparison and threshold, or `nil`.
    private func recoverProblem(_ recover: Double) -> String? {
        guard recover.isFinite else { return "recover must be a finite number" }
        let op = self.op.rawValue
        let threshold = PrometheusText.formatNumber(self.threshold)
        let why = "a firing alert resolves once the value is no longer \(op) recover"
        switch self.op {
        case .greaterThan, .greaterThanOrEqual:
            return recover > self.threshold
                ? "recover must be at most the threshold \(threshold) for op '\(op)': \(why)" : nil
        case .lessThan, .lessThanOrEqual:
            return recover < self.threshold
                ? "recover must be at least the threshold \(threshold) for op '\(op)': \(why)" : nil
        case .equal, .notEqual:
            return "recover applies only to > >= < <=, not '\(op)'"
        }
    }

    private static func isNameCharacter(_ character: Character) -> Bool {
        character.isASCII
            && (character.isLetter || character.isNumber || character == "-" || character == "_" || character == ".")
    }

    private static func isHTTPURL(_ url: String) -> Bool {
        for scheme in ["http://", "https://"] where url.hasPrefix(scheme) {
            let host = url.dropFirst(scheme.count).prefix { $0 != "/" && $0 != "?" && $0 != "#" }
            return !host.isEmpty && !host.contains(where: \.isWhitespace)
        }
        return false
    }
}
