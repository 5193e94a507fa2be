import Common

// MARK: - Silence

/// A silence: for a while, notifications leave out the alerts whose labels match. Alerts themselves are untouched
/// (they still evaluate, fire and show in listings); only their notifications stop, as with Alertmanager.
///
/// The JSON form, as stored and listed (times are milliseconds since the epoch, like ``WallTime``):
///
/// ```json
/// {"id": "3f2a…", "matchers": [{"name": "alertname", "value": "disk-full", "op": "="}],
///  "starts_at": 1700000000000, "ends_at": 1700007200000, "created_by": "ops", "comment": "resizing"}
/// ```
///
/// A silence mutes an alert at `now` when it ``isActive(at:)`` (from `starts_at` inclusive to `ends_at` exclusive)
/// and every matcher accepts the alert's labels (``matches(labels:)``). Operators write them through
/// ``SilenceRequest``; ``validate()`` checks one.
public struct Silence: Codable, Hashable, Sendable {
    /// One condition on one label.
    public struct Matcher: Codable, Hashable, Sendable {
        /// How the label's value is compared with ``value``.
        public enum Operator: String, Codable, Hashable, Sendable, CaseIterable {
            /// `=`: equal.
            case equal = "="
            /// `!=`: not equal.
            case notEqual = "!="
            /// `=~`: the regular expression matches the whole value.
            case regexMatch = "=~"
            /// `!~`: the regular expression does not match the whole value.
            case regexNoMatch = "!~"

            /// Whether the operator takes a regular expression.
            public var isRegex: Bool { self == .regexMatch || self == .regexNoMatch }
        }

        /// The label name.
        public var name: String
        /// The value, or a regular expression for `=~` and `!~`.
        public var value: String
        /// The comparison.
        public var op: Operator

        /// Creates a matcher; `op` defaults to equality.
        public init(name: String, value: String, op: Operator = .equal) {
            self.name = name
            self.value = value
            self.op = op
        }

        /// Whether the labels satisfy the matcher. A missing label counts as the empty value (so `team=""` matches
        /// alerts without a `team` label, as in Alertmanager). Regular expressions are anchored: they must match the
        /// whole value (`=~"disk.*"` does not match `"my-disk"`). They use Swift `Regex` syntax, which covers the
        /// RE2 syntax Alertmanager uses in practice; one that does not compile matches nothing (``validate()``
        /// rejects it).
        public func matches(_ labels: [String: String]) -> Bool {
            self.matches(value: labels[self.name] ?? "", regex: self.op.isRegex ? try? Regex(self.value) : nil)
        }

        /// Whether `value` satisfies the matcher, given the matcher's compiled regex (`nil` for equality matchers or
        /// when it does not compile).
        func matches(value: String, regex: Regex<AnyRegexOutput>?) -> Bool {
            switch self.op {
            case .equal: value == self.value
            case .notEqual: value != self.value
            case .regexMatch: regex.map { value.wholeMatch(of: $0) != nil } ?? false
            case .regexNoMatch: regex.map { value.wholeMatch(of: $0) == nil } ?? false
            }
        }
    }

    /// Where a silence is in its life at some instant.
    public enum State: String, Hashable, Sendable {
        /// `starts_at` is still ahead.
        case pending
        /// It mutes matching alerts.
        case active
        /// `ends_at` has passed.
        case expired
    }

    /// The unique id (the server generates it).
    public var id: String
    /// All must match for the silence to mute an alert.
    public var matchers: [Matcher]
    /// When it starts muting.
    public var startsAt: WallTime
    /// When it stops muting (exclusive). Expiring a silence early sets it to now.
    public var endsAt: WallTime
    /// Who created it.
    public var createdBy: String
    /// Why.
    public var comment: String

    /// Creates a silence.
    public init(
        id: String, matchers: [Matcher], startsAt: WallTime, endsAt: WallTime, createdBy: String = "",
        comment: String = ""
    ) {
        self.id = id
        self.matchers = matchers
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.createdBy = createdBy
        self.comment = comment
    }

    enum CodingKeys: String, CodingKey {
        case id, matchers
        case startsAt = "starts_at"
        case endsAt = "ends_at"
        case createdBy = "created_by"
        case comment
    }

    // MARK: - Matching

    /// Whether the silence mutes at `now`: `startsAt <= now < endsAt`.
    public func isActive(at now: WallTime) -> Bool {
        self.startsAt <= now && now < self.endsAt
    }

    /// Pending, active or expired at `now`.
    public func state(at now: WallTime) -> State {
        if now < self.startsAt { return .pending }
        return now < self.endsAt ? .active : .expired
    }

    /// Whether every matcher accepts `labels` (regardless of time; see ``isActive(at:)``). A silence without
    /// matchers matches nothing.
    public func matches(labels: [String: String]) -> Bool {
        !self.matchers.isEmpty && self.matchers.allSatisfy { $0.matches(labels) }
    }

    // MARK: - Validation

    /// Checks the silence: a non-empty `id`; at least one matcher; valid label names; regular expressions that
    /// compile; at least one matcher that does not match the empty value (otherwise it would also mute alerts that
    /// lack the label, such as every alert for `team=~".*"`, the rule Alertmanager applies); `ends_at` after
    /// `starts_at`. Returns the problems in field order, each naming its field (`matchers[1].value`, `ends_at`);
    /// empty when the silence is usable.
    public func validate() -> [SilenceError] {
        var errors: [SilenceError] = []
        if self.id.isEmpty {
            errors.append(SilenceError(field: "id", "id must not be empty"))
        }
        if self.matchers.isEmpty {
            errors.append(SilenceError(field: "matchers", "matchers must list at least one matcher"))
        }
        var matchesEverything = true
        for (index, matcher) in self.matchers.enumerated() {
            let field = "matchers[\(index)]"
            if !PrometheusText.isValidLabelName(matcher.name) {
                errors.append(
                    SilenceError(
                        field: "\(field).name",
                        "\(field).name must match [a-zA-Z_][a-zA-Z0-9_]*, not starting with __, not '\(matcher.name)'"))
            }
            var regex: Regex<AnyRegexOutput>?
            if matcher.op.isRegex {
                do {
                    regex = try Regex(matcher.value)
                } catch {
                    errors.append(
                        SilenceError(
                            field: "\(field).value",
                            "\(field).value (label \(matcher.name)) is not a valid regular expression: '\(matcher.value)' (\(error))"))
                    continue
                }
            }
            if !matcher.matches(value: "", regex: regex) {
                matchesEverything = false
            }
        }
        if !self.matchers.isEmpty, matchesEverything {
            errors.append(
                SilenceError(
                    field: "matchers",
                    "matchers must include at least one that does not match the empty value, or the silence mutes "
                        + "alerts that lack the label"))
        }
        if self.endsAt <= self.startsAt {
            errors.append(SilenceError(field: "ends_at", "ends_at must be after starts_at"))
        }
        return errors
    }
}

// MARK: - Errors

/// A problem with one field of a silence or of a silence request (`matchers[0].value`, `duration`, `ends_at`).
public typealias SilenceError = FieldError

// MARK: - Compiled form

/// Silences with their regular expressions compiled once, for checking many alerts. Built per planning pass and
/// never stored: `Regex` is not `Sendable`.
struct CompiledSilences {
    private struct Entry {
        var silence: Silence
        var regexes: [Regex<AnyRegexOutput>?]
    }

    private let entries: [Entry]

    /// Compiles the silences active at `now` (the others cannot mute anything now).
    init(_ silences: [Silence], activeAt now: WallTime) {
        self.entries = silences.filter { $0.isActive(at: now) && !$0.matchers.isEmpty }.map { silence in
            Entry(silence: silence, regexes: silence.matchers.map { $0.op.isRegex ? try? Regex($0.value) : nil })
        }
    }

    /// Whether there are no active silences.
    var isEmpty: Bool { self.entries.isEmpty }

    /// When the silences that mute `labels` have all ended: the latest `endsAt` among the active silences matching
    /// them; `nil` when none does (the alert is not muted).
    func mutedUntil(_ labels: [String: String]) -> WallTime? {
        var until: WallTime?
        for entry in self.entries where until.map({ entry.silence.endsAt > $0 }) ?? true {
            let matches = zip(entry.silence.matchers, entry.regexes).allSatisfy { matcher, regex in
                matcher.matches(value: labels[matcher.name] ?? "", regex: regex)
            }
            if matches { until = entry.silence.endsAt }
        }
        return until
    }
}
