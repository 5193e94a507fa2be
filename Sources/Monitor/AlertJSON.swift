import Common

// MARK: - Fast JSON of alert state

/// Hand-written JSON of ``AlertState``, ``AlertTransition`` and ``Alert``, in the same shape their `Codable`
/// conformances write (so `JSONDecoder` reads it back), with keys sorted.
///
/// Why: the agent saves the evaluator's state after every round with a transition, and in an alert storm
/// (a thousand alerts moving at once) Foundation's `JSONEncoder` took longer than evaluating the rules
/// (Benchmarks/AlertBench: 45 ms of an 83 ms round for 1,500 alerts). Writing the text directly (strings quoted by
/// `JSONText`, shared with the KV answers) is several times faster. Tests check that decoding it gives back the
/// same values.
enum AlertJSON {
    static func append(_ labels: [String: String], to out: inout String) {
        out += "{"
        var first = true
        for key in labels.keys.sorted() {
            if !first { out += "," }
            first = false
            out += JSONText.quoted(key) + ":" + JSONText.quoted(labels[key] ?? "")
        }
        out += "}"
    }

    /// A number as ``JSONNumber`` writes it: finite values as numbers, others as `"+Inf"`, `"-Inf"`, `"NaN"`.
    static func append(number value: Double, to out: inout String) {
        guard value.isFinite else {
            out += JSONText.quoted(PrometheusText.formatNumber(value))
            return
        }
        out += value == value.rounded(.towardZero) && abs(value) < 1e15 ? String(Int64(value)) : "\(value)"
    }

    /// `"key":`, preceded by a comma unless it is the object's first.
    static func append(key: String, to out: inout String, first: inout Bool) {
        if !first { out += "," }
        first = false
        out += "\"" + key + "\":"
    }
}

extension Alert {
    /// Appends the alert's JSON (the form of ``encode(to:)``, keys sorted).
    func appendJSON(to out: inout String) {
        var first = true
        out += "{"
        AlertJSON.append(key: "active_at", to: &out, first: &first)
        out += String(self.activeAt.millisecondsSinceEpoch)
        AlertJSON.append(key: "annotations", to: &out, first: &first)
        AlertJSON.append(self.annotations, to: &out)
        if let firedAt = self.firedAt {
            AlertJSON.append(key: "fired_at", to: &out, first: &first)
            out += String(firedAt.millisecondsSinceEpoch)
        }
        if let since = self.keepFiringSince {
            AlertJSON.append(key: "keep_firing_since", to: &out, first: &first)
            out += String(since.millisecondsSinceEpoch)
        }
        AlertJSON.append(key: "labels", to: &out, first: &first)
        AlertJSON.append(self.labels, to: &out)
        if let resolvedAt = self.resolvedAt {
            AlertJSON.append(key: "resolved_at", to: &out, first: &first)
            out += String(resolvedAt.millisecondsSinceEpoch)
        }
        AlertJSON.append(key: "rule", to: &out, first: &first)
        out += JSONText.quoted(self.rule)
        AlertJSON.append(key: "status", to: &out, first: &first)
        out += JSONText.quoted(self.status.rawValue)
        if let value = self.value {
            AlertJSON.append(key: "value", to: &out, first: &first)
            AlertJSON.append(number: value, to: &out)
        }
        out += "}"
    }
}

extension AlertTransition {
    /// The transition's JSON (the form of its `Codable` conformance, keys sorted).
    public func jsonText() -> String {
        var out = ""
        out.reserveCapacity(512)
        out += #"{"alert":"#
        self.alert.appendJSON(to: &out)
        out += #","at":"#
        out += String(self.at.millisecondsSinceEpoch)
        out += #","from":"#
        out += JSONText.quoted(self.from.rawValue)
        out += #","to":"#
        out += JSONText.quoted(self.to.rawValue)
        out += "}"
        return out
    }
}

extension AlertState {
    /// The state's JSON (the form of its `Codable` conformance, keys sorted), for saving after a round.
    public func jsonText() -> String {
        var out = ""
        out.reserveCapacity(256 + self.rules.count * 96)
        out += #"{"rules":{"#
        var firstRule = true
        for name in self.rules.keys.sorted() {
            guard let rule = self.rules[name] else { continue }
            if !firstRule { out += "," }
            firstRule = false
            out += JSONText.quoted(name)
            out += #":{"alerts":["#
            let entries = rule.alerts.map { (key: LabelPair.sorted($0.key), series: $0.key, alert: $0.value.alert) }
                .sorted { $0.key.lexicographicallyPrecedes($1.key) }
            for (index, entry) in entries.enumerated() {
                if index > 0 { out += "," }
                out += #"{"alert":"#
                entry.alert.appendJSON(to: &out)
                out += #","series":"#
                AlertJSON.append(entry.series, to: &out)
                out += "}"
            }
            out += "]"
            if let last = rule.lastEvaluatedAt {
                out += #","last_evaluated_at":"#
                out += String(last.millisecondsSinceEpoch)
            }
            if let noData = rule.noDataAlert {
                out += #","no_data_alert":"#
                noData.appendJSON(to: &out)
            }
            out += #","no_data_evaluations":"#
            out += String(rule.noDataEvaluations)
            out += "}"
        }
        out += "}}"
        return out
    }
}
