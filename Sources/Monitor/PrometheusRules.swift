import Common

// MARK: - Prometheus rules files

/// A Prometheus alerting rules file (`groups: [{name, interval, rules: [{alert, expr, for, keep_firing_for, labels,
/// annotations}]}]`), decoded from YAML or JSON, so operators can load the files they already have with
/// `gossamer alerts rules apply FILE`.
///
/// Gossamer rules are thresholds on one metric, so only expressions of that shape translate:
///
/// ```
/// metric OP number
/// metric{label="value", other=""} OP number
/// sum|avg|max|min(metric{…}) OP number
/// ```
///
/// with `OP` one of `>`, `>=`, `<`, `<=`, `==`, `!=`. The `severity` label becomes the rule's severity when it is
/// `info`, `warning` or `critical` (other labels stay labels); the group's `interval` becomes each rule's interval.
/// Recording rules (`record:`) are skipped and reported. Anything else (functions such as `rate`, `by` clauses,
/// arithmetic, regex matchers) is refused with the rule's name and what to write instead, and nothing is applied.
public struct PrometheusRuleFile: Decodable, Sendable {
    /// A rule group.
    public struct Group: Decodable, Sendable {
        public var name: String
        public var interval: String?
        public var rules: [Rule]
    }

    /// An alerting or recording rule.
    public struct Rule: Decodable, Sendable {
        public var alert: String?
        public var record: String?
        public var expr: String
        public var `for`: String?
        public var keep_firing_for: String?
        public var labels: [String: String]?
        public var annotations: [String: String]?
    }

    /// The groups.
    public var groups: [Group]

    /// The outcome of ``translate()``.
    public struct Translation: Sendable {
        /// The alerting rules, in file order.
        public var rules: [AlertRule]
        /// Names of recording rules skipped.
        public var skipped: [String]
    }

    /// Translates every alerting rule, or throws one ``RuleError`` listing every rule that cannot be translated.
    public func translate() throws(RuleDecodingError) -> Translation {
        var rules: [AlertRule] = []
        var skipped: [String] = []
        var errors: [RuleError] = []
        for (groupIndex, group) in self.groups.enumerated() {
            for (ruleIndex, rule) in group.rules.enumerated() {
                let field = "groups[\(groupIndex)].rules[\(ruleIndex)]"
                guard let name = rule.alert else {
                    skipped.append(rule.record ?? field)
                    continue
                }
                do {
                    rules.append(try Self.translate(rule, name: name, groupInterval: group.interval, field: field))
                } catch {
                    errors.append(error)
                }
            }
        }
        guard errors.isEmpty else { throw RuleDecodingError(errors: errors) }
        return Translation(rules: rules, skipped: skipped)
    }

    private static func translate(_ rule: Rule, name: String, groupInterval: String?, field: String) throws(RuleError) -> AlertRule {
        guard let expression = ThresholdExpression.parse(rule.expr) else {
            throw RuleError(
                field: "\(field).expr",
                "alert \(name): expr '\(rule.expr)' is not a threshold on one metric; Gossamer translates `metric{label=\"v\"} > 1` "
                    + "and `max(metric{…}) > 1` (sum, avg, max, min); write a Gossamer rule for anything else")
        }
        func duration(_ text: String?, _ key: String) throws(RuleError) -> Duration? {
            guard let text else { return nil }
            guard let value = DurationText.parse(text) else {
                throw RuleError(field: "\(field).\(key)", "alert \(name): \(key) must be a duration such as 5m, not '\(text)'")
            }
            return value
        }
        var labels = rule.labels ?? [:]
        var severity = AlertRule.Severity.warning
        if let text = labels["severity"], let parsed = AlertRule.Severity(rawValue: text) {
            severity = parsed
            labels["severity"] = nil
        }
        return AlertRule(
            name: name, metric: expression.metric, match: expression.match, aggregate: expression.aggregate, op: expression.op,
            threshold: expression.threshold, for: try duration(rule.for, "for") ?? .zero,
            keepFiringFor: try duration(rule.keep_firing_for, "keep_firing_for") ?? .zero,
            interval: try duration(groupInterval, "interval"), severity: severity, labels: labels, annotations: rule.annotations ?? [:])
    }
}

/// `[agg(]metric[{k="v",…}][)] OP number`, the PromQL subset a Gossamer rule can express.
struct ThresholdExpression: Hashable {
    var metric: String
    var match: [String: String]
    var aggregate: AlertRule.Aggregate
    var op: AlertRule.Comparison
    var threshold: Double

    static func parse(_ text: String) -> ThresholdExpression? {
        var scanner = Scanner(Substring(text))
        var aggregate = AlertRule.Aggregate.none
        var name = scanner.identifier()
        scanner.skipSpaces()
        if let word = name, let parsed = AlertRule.Aggregate(rawValue: word), parsed != .none, scanner.take("(") {
            aggregate = parsed
            scanner.skipSpaces()
            name = scanner.identifier()
        }
        guard let metric = name, PrometheusText.isValidMetricName(metric) else { return nil }
        scanner.skipSpaces()
        var match: [String: String] = [:]
        if scanner.take("{") {
            while true {
                scanner.skipSpaces()
                if scanner.take("}") { break }
                guard let label = scanner.identifier() else { return nil }
                scanner.skipSpaces()
                guard scanner.take("="), !scanner.peek("="), !scanner.peek("~") else { return nil }
                scanner.skipSpaces()
                guard let value = scanner.quoted() else { return nil }
                match[label] = value
                scanner.skipSpaces()
                if scanner.take(",") { continue }
                guard scanner.take("}") else { return nil }
                break
            }
        }
        scanner.skipSpaces()
        if aggregate != .none {
            guard scanner.take(")") else { return nil }
            scanner.skipSpaces()
        }
        var op: AlertRule.Comparison?
        for candidate in [">=", "<=", "==", "!=", ">", "<"] where scanner.take(candidate) {
            op = AlertRule.Comparison(rawValue: candidate)
            break
        }
        guard let op else { return nil }
        scanner.skipSpaces()
        guard let threshold = Double(scanner.rest.trimmingCharacters(in: " \t\n")), threshold.isFinite else { return nil }
        return ThresholdExpression(metric: metric, match: match, aggregate: aggregate, op: op, threshold: threshold)
    }

    /// A tiny cursor over the expression text.
    private struct Scanner {
        var text: Substring

        init(_ text: Substring) { self.text = text }

        var rest: String { String(self.text) }

        mutating func skipSpaces() { self.text = self.text.drop { $0 == " " || $0 == "\t" || $0 == "\n" } }

        func peek(_ prefix: String) -> Bool { self.text.hasPrefix(prefix) }

        mutating func take(_ prefix: String) -> Bool {
            guard self.text.hasPrefix(prefix) else { return false }
            self.text = self.text.dropFirst(prefix.count)
            return true
        }

        mutating func identifier() -> String? {
            let word = self.text.prefix { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ":") }
            guard !word.isEmpty, !(word.first?.isNumber ?? true) else { return nil }
            self.text = self.text.dropFirst(word.count)
            return String(word)
        }

        mutating func quoted() -> String? {
            guard let quote = self.text.first, quote == "\"" || quote == "'" else { return nil }
            var value = ""
            var index = self.text.index(after: self.text.startIndex)
            while index < self.text.endIndex {
                let character = self.text[index]
                if character == quote {
                    self.text = self.text[self.text.index(after: index)...]
                    return value
                }
                if character == "\\" {
                    index = self.text.index(after: index)
                    guard index < self.text.endIndex else { return nil }
                }
                value.append(self.text[index])
                index = self.text.index(after: index)
            }
            return nil
        }
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> Substring {
        var text = self
        while let first = text.first, set.contains(first) { text = text.dropFirst() }
        while let last = text.last, set.contains(last) { text = text.dropLast() }
        return text
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        String(Substring(self).trimmingCharacters(in: set))
    }
}
