import Logging

// MARK: - Health tracker

/// Passive health for one endpoint pool: outlier ejection, panic mode and slow start, as a pure value.
///
/// Inputs are events with an explicit `now` (`onSuccess`, `onFailure`, `onHealthy`, `onUnhealthy`,
/// `onMembershipChange`); the output is `plan(now:)`, the endpoints and weight factors for the next
/// `EndpointSnapshot`. The tracker never reads a clock and never schedules anything: `HealthPlan.nextReview` says
/// when the plan will change by itself (an ejection ends, a ramp moves on), and the owner rebuilds then.
///
/// Rules:
/// - **Ejection.** `consecutiveFailures` failures in a row eject an endpoint for
///   `min(baseEjectionTime × n, maxEjectionTime)`, the n-th ejection in a row; n resets once the endpoint has stayed
///   in for `maxEjectionTime`. No ejection happens while `maxEjectedShare` of the pool (at least one endpoint) is out.
/// - **Panic.** When the share of members that are healthy and not ejected falls below `panicThreshold`, the plan
///   balances over every member at full weight.
/// - **Slow start.** An endpoint that becomes healthy, returns from ejection or joins after the first membership
///   update ramps its weight factor linearly from `minimumWeightShare` to 1 over `slowStart.window`.
public struct HealthTracker: Sendable {
    struct Member: Sendable {
        var endpoint: Endpoint
        var isHealthy = true
        var consecutiveFailures = 0
        var timesEjected = 0
        var ejectedUntil: ContinuousClock.Instant?
        var rampStart: ContinuousClock.Instant?
    }

    /// What `onFailure` did.
    public enum FailureOutcome: Hashable, Sendable {
        /// The failure was counted; the endpoint stays in.
        case counted(consecutiveFailures: Int)
        /// The endpoint is ejected until the given instant; rebuild the snapshot.
        case ejected(until: ContinuousClock.Instant)
        /// The endpoint reached the threshold but the pool's ejection budget is spent; it stays in.
        case ejectionBudgetSpent
        /// The endpoint is already ejected, or not a member; nothing changed.
        case ignored
    }

    let settings: Settings
    var members: [String: Member] = [:]
    var order: [String] = []
    var hasMembership = false

    /// Creates an empty tracker with the ejection, panic and slow-start knobs of `settings`.
    public init(settings: Settings) {
        self.settings = settings
    }

    // MARK: - Inputs

    /// Sets the pool's members (healthy ones, as the registry reports them). New members after the first call start
    /// in slow start; members that left are forgotten, ejection history included.
    public mutating func onMembershipChange(_ endpoints: [Endpoint], now: ContinuousClock.Instant) {
        var next: [String: Member] = [:]
        next.reserveCapacity(endpoints.count)
        for endpoint in endpoints {
            if var member = self.members[endpoint.id] {
                member.endpoint = endpoint
                next[endpoint.id] = member
            } else {
                next[endpoint.id] = Member(endpoint: endpoint, rampStart: self.hasMembership ? now : nil)
            }
        }
        self.members = next
        self.order = endpoints.map(\.id)
        self.hasMembership = true
    }

    /// A request to `id` succeeded: its consecutive-failure count resets.
    public mutating func onSuccess(_ id: String, now: ContinuousClock.Instant) {
        guard var member = self.members[id] else { return }
        Self.endExpiredEjection(&member, now: now)
        member.consecutiveFailures = 0
        self.members[id] = member
    }

    /// A request to `id` failed (connect error or a status the proxy counts as failure).
    @discardableResult
    public mutating func onFailure(_ id: String, now: ContinuousClock.Instant) -> FailureOutcome {
        guard var member = self.members[id] else { return .ignored }
        Self.endExpiredEjection(&member, now: now)
        guard member.ejectedUntil == nil else { return .ignored }
        let detection = self.settings.outlierDetection
        member.consecutiveFailures += 1
        defer { self.members[id] = member }
        guard detection.consecutiveFailures > 0, member.consecutiveFailures >= detection.consecutiveFailures else {
            return .counted(consecutiveFailures: member.consecutiveFailures)
        }
        let ejected = self.members.values.count { $0.ejectedUntil.map { $0 > now } ?? false }
        let budget = max(1, Int((detection.maxEjectedShare * Double(self.members.count)).rounded(.down)))
        guard ejected < budget else { return .ejectionBudgetSpent }

        if let returned = member.rampStart, member.timesEjected > 0, returned.duration(to: now) >= detection.maxEjectionTime {
            member.timesEjected = 0
        }
        member.timesEjected += 1
        let until = now + min(detection.baseEjectionTime * member.timesEjected, detection.maxEjectionTime)
        member.ejectedUntil = until
        member.consecutiveFailures = 0
        self.settings.logger.debug(
            "endpoint ejected",
            metadata: ["lb.endpoint": "\(id)", "lb.times_ejected": "\(member.timesEjected)"]
        )
        return .ejected(until: until)
    }

    /// An active check or the registry reports `id` healthy. If it was unhealthy, slow start begins now.
    public mutating func onHealthy(_ id: String, now: ContinuousClock.Instant) {
        guard var member = self.members[id], !member.isHealthy else { return }
        member.isHealthy = true
        member.consecutiveFailures = 0
        member.rampStart = now
        self.members[id] = member
    }

    /// An active check or the registry reports `id` unhealthy: it leaves the plan (unless the pool panics).
    public mutating func onUnhealthy(_ id: String, now: ContinuousClock.Instant) {
        guard var member = self.members[id] else { return }
        member.isHealthy = false
        self.members[id] = member
    }

    // MARK: - Output

    /// The endpoints and weight factors to build the next snapshot from.
    public func plan(now: ContinuousClock.Instant) -> HealthPlan {
        var endpoints: [Endpoint] = []
        var factors: [Double] = []
        var ejected: [String] = []
        var nextReview: ContinuousClock.Instant?
        func review(at instant: ContinuousClock.Instant) {
            nextReview = min(nextReview ?? instant, instant)
        }
        let slowStart = self.settings.slowStart
        endpoints.reserveCapacity(self.order.count)
        factors.reserveCapacity(self.order.count)
        for id in self.order {
            guard var member = self.members[id] else { continue }
            Self.endExpiredEjection(&member, now: now)
            if let until = member.ejectedUntil {
                ejected.append(id)
                review(at: until)
                continue
            }
            guard member.isHealthy else { continue }
            endpoints.append(member.endpoint)
            var factor = 1.0
            if slowStart.window > .zero, let start = member.rampStart {
                let elapsed = start.duration(to: now)
                if elapsed < slowStart.window {
                    let progress = max(elapsed, .zero) / slowStart.window
                    factor = slowStart.minimumWeightShare + (1 - slowStart.minimumWeightShare) * progress
                    review(at: min(now + slowStart.window / 10, start + slowStart.window))
                }
            }
            factors.append(factor)
        }
        let memberCount = self.order.count
        if memberCount > 0, Double(endpoints.count) < self.settings.panicThreshold * Double(memberCount) {
            let everyone = self.order.compactMap { self.members[$0]?.endpoint }
            return HealthPlan(
                endpoints: everyone,
                weightFactors: [Double](repeating: 1, count: everyone.count),
                isPanicking: true,
                ejected: ejected,
                nextReview: nextReview
            )
        }
        return HealthPlan(endpoints: endpoints, weightFactors: factors, isPanicking: false, ejected: ejected, nextReview: nextReview)
    }

    /// An ejection whose time is up ends, and slow start begins where it ended.
    static func endExpiredEjection(_ member: inout Member, now: ContinuousClock.Instant) {
        guard let until = member.ejectedUntil, until <= now else { return }
        member.ejectedUntil = nil
        member.rampStart = until
    }
}

/// What a `HealthTracker` says to balance over.
public struct HealthPlan: Hashable, Sendable {
    /// The endpoints to put in the next snapshot, in membership order.
    public var endpoints: [Endpoint]
    /// Each endpoint's slow-start weight factor in `0...1` (1 when not ramping).
    public var weightFactors: [Double]
    /// Whether too few members are healthy, so `endpoints` is every member.
    public var isPanicking: Bool
    /// The ids of the endpoints ejected now.
    public var ejected: [String]
    /// When the plan changes by itself (an ejection ends or a ramp should step); `nil` when it will not.
    public var nextReview: ContinuousClock.Instant?

    /// Creates a plan (tests and callers that decide membership themselves).
    public init(
        endpoints: [Endpoint],
        weightFactors: [Double],
        isPanicking: Bool = false,
        ejected: [String] = [],
        nextReview: ContinuousClock.Instant? = nil
    ) {
        precondition(endpoints.count == weightFactors.count, "one weight factor per endpoint")
        self.endpoints = endpoints
        self.weightFactors = weightFactors
        self.isPanicking = isPanicking
        self.ejected = ejected
        self.nextReview = nextReview
    }
}
