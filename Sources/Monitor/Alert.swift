// MARK: - Alerts

/// Where an alert is in its life: inactive → pending → firing → resolved, or pending → inactive when the condition
/// clears before `for` has passed.
public enum AlertStatus: String, Hashable, Sendable, Codable {
    /// The condition does not hold (the engine keeps no record of inactive alerts).
    case inactive
    /// The condition holds but not yet for the rule's `for`.
    case pending
    /// The condition has held for `for`: receivers are told.
    case firing
    /// A firing alert ended; receivers are told, then the alert is forgotten (inactive again).
    case resolved
}

/// One alert of a rule: the rule's single alert when it aggregates, or one matching series' alert.
public struct Alert: Hashable, Sendable {
    /// The rule's name.
    public var rule: String
    /// The alert's status.
    public var status: AlertStatus
    /// Series labels (the matchers when the rule aggregates), then the rule's labels, then `alertname` and
    /// `severity`; a no-data alert also has `nodata="true"`. Fixed when the alert starts, so its resolution carries
    /// the same labels receivers saw when it fired, even if the rule is edited meanwhile.
    public var labels: [String: String]
    /// The rule's annotations, rendered at the latest transition.
    public var annotations: [String: String]
    /// The value at the latest evaluation; `nil` when the series had no data.
    public var value: Double?
    /// When the condition started to hold (pending or, with no `for`, firing).
    public var activeAt: WallTime
    /// When the alert started firing (Alertmanager's `startsAt`).
    public var firedAt: WallTime?
    /// When the alert resolved (Alertmanager's `endsAt`).
    public var resolvedAt: WallTime?
    /// While firing under `keep_firing_for`: when the condition stopped holding.
    public var keepFiringSince: WallTime?

    /// Creates an alert.
    public init(
        rule: String,
        status: AlertStatus,
        labels: [String: String],
        annotations: [String: String] = [:],
        value: Double?,
        activeAt: WallTime,
        firedAt: WallTime? = nil,
        resolvedAt: WallTime? = nil,
        keepFiringSince: WallTime? = nil
    ) {
        self.rule = rule
        self.status = status
        self.labels = labels
        self.annotations = annotations
        self.value = value
        self.activeAt = activeAt
        self.firedAt = firedAt
        self.resolvedAt = resolvedAt
        self.keepFiringSince = keepFiringSince
    }
}

/// A change of an alert's status, produced by ``AlertEvaluator``: what the wiring records and notifies.
public struct AlertTransition: Hashable, Sendable, Codable {
    /// The status before.
    public var from: AlertStatus
    /// The status after (the same as `alert.status`).
    public var to: AlertStatus
    /// The evaluation time at which it happened.
    public var at: WallTime
    /// The alert after the change, annotations rendered with its labels and `value` (the resolving value for a
    /// resolution).
    public var alert: Alert

    /// Creates a transition.
    public init(from: AlertStatus, to: AlertStatus, at: WallTime, alert: Alert) {
        self.from = from
        self.to = to
        self.at = at
        self.alert = alert
    }
}

// MARK: - Codable

extension Alert: Codable {
    /// Decodes the form ``encode(to:)`` writes.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        self.rule = try container.decode(String.self, forKey: AnyKey("rule"))
        self.status = try container.decode(AlertStatus.self, forKey: AnyKey("status"))
        self.labels = try container.decode([String: String].self, forKey: AnyKey("labels"))
        self.annotations = try container.decode([String: String].self, forKey: AnyKey("annotations"))
        self.value = try container.decodeIfPresent(JSONNumber.self, forKey: AnyKey("value"))?.value
        self.activeAt = try container.decode(WallTime.self, forKey: AnyKey("active_at"))
        self.firedAt = try container.decodeIfPresent(WallTime.self, forKey: AnyKey("fired_at"))
        self.resolvedAt = try container.decodeIfPresent(WallTime.self, forKey: AnyKey("resolved_at"))
        self.keepFiringSince = try container.decodeIfPresent(WallTime.self, forKey: AnyKey("keep_firing_since"))
    }

    /// Encodes snake_case fields; times as milliseconds since the epoch; a non-finite value as the string `+Inf`,
    /// `-Inf` or `NaN` (JSON has no such numbers).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: AnyKey.self)
        try container.encode(self.rule, forKey: AnyKey("rule"))
        try container.encode(self.status, forKey: AnyKey("status"))
        try container.encode(self.labels, forKey: AnyKey("labels"))
        try container.encode(self.annotations, forKey: AnyKey("annotations"))
        try container.encodeIfPresent(self.value.map(JSONNumber.init), forKey: AnyKey("value"))
        try container.encode(self.activeAt, forKey: AnyKey("active_at"))
        try container.encodeIfPresent(self.firedAt, forKey: AnyKey("fired_at"))
        try container.encodeIfPresent(self.resolvedAt, forKey: AnyKey("resolved_at"))
        try container.encodeIfPresent(self.keepFiringSince, forKey: AnyKey("keep_firing_since"))
    }
}

/// A `Double` that survives JSON: finite values as numbers, others as `"+Inf"`, `"-Inf"` or `"NaN"`.
struct JSONNumber: Codable {
    var value: Double

    init(_ value: Double) {
        self.value = value
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Double.self) {
            self.value = number
            return
        }
        switch try container.decode(String.self) {
        case "+Inf": self.value = .infinity
        case "-Inf": self.value = -.infinity
        case "NaN": self.value = .nan
        case let text:
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a number: '\(text)'")
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if self.value.isFinite {
            try container.encode(self.value)
        } else {
            try container.encode(PrometheusText.formatNumber(self.value))
        }
    }
}
