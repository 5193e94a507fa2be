/// The anti-flap state of one check: raw probe results in, reported status out (pure; no clock, no I/O).
///
/// A check turns passing only after `successBeforePassing` passing results in a row, and turns critical (or
/// warning) only after `failuresBeforeCritical` non-passing results in a row, like Consul's
/// `success_before_passing` / `failures_before_critical`. TTL reports from the service apply at once.
public struct CheckTracker: Sendable, Equatable {
    public let definition: CheckDefinition
    /// The status reported for the check.
    public private(set) var status: HealthStatus
    public private(set) var output: String
    private var successes = 0
    private var failures = 0

    public init(definition: CheckDefinition, initial: HealthStatus) {
        self.definition = definition
        self.status = initial
        self.output = "no result yet"
    }

    /// Records a probe result; returns true when the reported status changed.
    public mutating func record(_ observed: HealthStatus, output: String) -> Bool {
        let before = self.status
        if observed == .passing {
            self.successes += 1
            self.failures = 0
            if self.successes >= self.definition.successBeforePassing { self.status = .passing }
        } else {
            self.failures += 1
            self.successes = 0
            if self.failures >= self.definition.failuresBeforeCritical { self.status = observed }
        }
        if self.status == observed { self.output = output }
        return self.status != before
    }

    /// A TTL report or expiry: applies at once; returns true when the status changed.
    public mutating func force(_ status: HealthStatus, output: String) -> Bool {
        let before = self.status
        self.status = status
        self.output = output
        self.successes = status == .passing ? self.definition.successBeforePassing : 0
        self.failures = status == .passing ? 0 : self.definition.failuresBeforeCritical
        return status != before
    }
}

/// The status of an instance from its checks: the worst of them (`passing` with no checks).
public func aggregateStatus(_ statuses: some Sequence<HealthStatus>) -> HealthStatus {
    statuses.max() ?? .passing
}
