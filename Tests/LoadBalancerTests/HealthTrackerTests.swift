import LoadBalancer
import Testing

@Suite struct HealthTrackerTests {
    /// A fixed origin; tests move time by adding durations to it, never by waiting.
    let t0 = ContinuousClock.now

    func tracker(
        members: Int,
        configure: (inout Settings) -> Void = { _ in }
    ) -> HealthTracker {
        var settings = Settings()
        configure(&settings)
        var tracker = HealthTracker(settings: settings)
        tracker.onMembershipChange(makeEndpoints(members), now: self.t0)
        return tracker
    }

    func fail(_ tracker: inout HealthTracker, _ id: String, times: Int, at now: ContinuousClock.Instant) -> HealthTracker.FailureOutcome? {
        var last: HealthTracker.FailureOutcome?
        for _ in 0..<times { last = tracker.onFailure(id, now: now) }
        return last
    }

    @Test func test_ejection_fiveConsecutiveFailures_ejectForBaseTimeThenReturn() {
        // Given
        var tracker = self.tracker(members: 4)

        // When
        let fourth = self.fail(&tracker, "endpoint-1", times: 4, at: self.t0)
        let fifth = tracker.onFailure("endpoint-1", now: self.t0)

        // Then
        #expect(fourth == .counted(consecutiveFailures: 4))
        #expect(fifth == .ejected(until: self.t0 + .seconds(30)))
        let during = tracker.plan(now: self.t0 + .seconds(29))
        #expect(during.endpoints.map(\.id) == ["endpoint-0", "endpoint-2", "endpoint-3"])
        #expect(during.ejected == ["endpoint-1"])
        #expect(during.nextReview == self.t0 + .seconds(30))
        let after = tracker.plan(now: self.t0 + .seconds(30))
        #expect(after.endpoints.count == 4)
        #expect(after.ejected.isEmpty)
    }

    @Test func test_ejection_successInBetween_resetsTheCount() {
        // Given
        var tracker = self.tracker(members: 4)

        // When
        _ = self.fail(&tracker, "endpoint-0", times: 4, at: self.t0)
        tracker.onSuccess("endpoint-0", now: self.t0)
        let outcome = self.fail(&tracker, "endpoint-0", times: 4, at: self.t0)

        // Then
        #expect(outcome == .counted(consecutiveFailures: 4))
    }

    @Test func test_ejection_repeatedEjections_growLinearlyAndCapAtMax() {
        // Given
        var tracker = self.tracker(members: 4) { $0.outlierDetection.maxEjectionTime = .seconds(100) }
        var now = self.t0
        var durations: [Duration] = []

        // When: the endpoint fails five times each time it comes back.
        for _ in 0..<5 {
            guard case .ejected(let until) = self.fail(&tracker, "endpoint-2", times: 5, at: now) else {
                Issue.record("not ejected")
                return
            }
            durations.append(now.duration(to: until))
            now = until
        }

        // Then
        #expect(durations == [.seconds(30), .seconds(60), .seconds(90), .seconds(100), .seconds(100)])
    }

    @Test func test_ejection_quietForMaxEjectionTime_resetsTheMultiplier() {
        // Given: ejected twice in a row (30 s, then 60 s), back at t0 + 90 s.
        var tracker = self.tracker(members: 4)
        _ = self.fail(&tracker, "endpoint-2", times: 5, at: self.t0)
        _ = self.fail(&tracker, "endpoint-2", times: 5, at: self.t0 + .seconds(30))

        // When: it fails again after 300 s of good behaviour.
        let comeback = self.t0 + .seconds(90 + 300)
        let outcome = self.fail(&tracker, "endpoint-2", times: 5, at: comeback)

        // Then
        #expect(outcome == .ejected(until: comeback + .seconds(30)))
    }

    @Test func test_ejection_halfThePoolOut_refusesFurtherEjections() {
        // Given
        var tracker = self.tracker(members: 4)
        _ = self.fail(&tracker, "endpoint-0", times: 5, at: self.t0)
        _ = self.fail(&tracker, "endpoint-1", times: 5, at: self.t0)

        // When
        let third = self.fail(&tracker, "endpoint-2", times: 5, at: self.t0)

        // Then
        #expect(third == .ejectionBudgetSpent)
        #expect(tracker.plan(now: self.t0).endpoints.map(\.id) == ["endpoint-2", "endpoint-3"])
    }

    @Test func test_ejection_disabled_neverEjects() {
        // Given
        var tracker = self.tracker(members: 2) { $0.outlierDetection.consecutiveFailures = 0 }

        // When
        let outcome = self.fail(&tracker, "endpoint-0", times: 50, at: self.t0)

        // Then
        #expect(outcome == .counted(consecutiveFailures: 50))
    }

    @Test func test_panic_healthyShareBelowThreshold_balancesOverAllMembers() {
        // Given
        var tracker = self.tracker(members: 4)

        // When: one of four unhealthy (75% healthy), then three of four (25%).
        tracker.onUnhealthy("endpoint-0", now: self.t0)
        let calm = tracker.plan(now: self.t0)
        tracker.onUnhealthy("endpoint-1", now: self.t0)
        tracker.onUnhealthy("endpoint-2", now: self.t0)
        let panic = tracker.plan(now: self.t0)

        // Then
        #expect(!calm.isPanicking)
        #expect(calm.endpoints.map(\.id) == ["endpoint-1", "endpoint-2", "endpoint-3"])
        #expect(panic.isPanicking)
        #expect(panic.endpoints.count == 4)
        #expect(panic.weightFactors == [1, 1, 1, 1])
    }

    @Test func test_panic_exactlyAtThreshold_doesNotPanic() {
        // Given
        var tracker = self.tracker(members: 4)

        // When
        tracker.onUnhealthy("endpoint-0", now: self.t0)
        tracker.onUnhealthy("endpoint-1", now: self.t0)

        // Then
        #expect(!tracker.plan(now: self.t0).isPanicking)
    }

    @Test func test_slowStart_newlyHealthyEndpoint_rampsLinearlyOverTheWindow() {
        // Given
        var tracker = self.tracker(members: 3) { $0.slowStart.window = .seconds(10) }
        tracker.onUnhealthy("endpoint-1", now: self.t0)

        // When
        tracker.onHealthy("endpoint-1", now: self.t0 + .seconds(100))
        let factors = [0, 5, 10, 20].map { tracker.plan(now: self.t0 + .seconds(100 + $0)).weightFactors }

        // Then
        #expect(factors[0] == [1, 0.1, 1])
        #expect(abs(factors[1][1] - 0.55) < 1e-9)
        #expect(factors[2] == [1, 1, 1])
        #expect(factors[3] == [1, 1, 1])
        #expect(tracker.plan(now: self.t0 + .seconds(100)).nextReview == self.t0 + .seconds(101))
        #expect(tracker.plan(now: self.t0 + .seconds(110)).nextReview == nil)
    }

    @Test func test_slowStart_returnFromEjection_rampsFromTheEjectionEnd() {
        // Given
        var tracker = self.tracker(members: 3) { $0.slowStart.window = .seconds(10) }
        _ = self.fail(&tracker, "endpoint-0", times: 5, at: self.t0)

        // When: the ejection ends at t0 + 30 s.
        let plan = tracker.plan(now: self.t0 + .seconds(35))

        // Then
        #expect(plan.endpoints.map(\.id) == ["endpoint-0", "endpoint-1", "endpoint-2"])
        #expect(abs(plan.weightFactors[0] - 0.55) < 1e-9)
    }

    @Test func test_slowStart_memberJoiningLater_ramps_initialMembersDoNot() {
        // Given
        var tracker = self.tracker(members: 2) { $0.slowStart.window = .seconds(10) }

        // When
        tracker.onMembershipChange(makeEndpoints(3), now: self.t0 + .seconds(50))
        let plan = tracker.plan(now: self.t0 + .seconds(50))

        // Then
        #expect(plan.weightFactors == [1, 1, 0.1])
    }

    @Test func test_slowStart_factorsFeedTheSnapshotWeights() {
        // Given
        var tracker = self.tracker(members: 2) { $0.slowStart.window = .seconds(10) }
        tracker.onMembershipChange(makeEndpoints(3), now: self.t0)

        // When
        let snapshot = EndpointSnapshot(plan: tracker.plan(now: self.t0 + .seconds(5)), counters: InFlightCounters(), settings: Settings())

        // Then: 100 × 100 hundredths at full weight, 55% of that while ramping.
        #expect(snapshot.effectiveWeights == [10_000, 10_000, 5_500])
    }

    @Test func test_membership_removedMember_isForgotten() {
        // Given
        var tracker = self.tracker(members: 3)
        _ = self.fail(&tracker, "endpoint-2", times: 5, at: self.t0)

        // When
        tracker.onMembershipChange(makeEndpoints(2), now: self.t0)

        // Then
        #expect(tracker.plan(now: self.t0).ejected.isEmpty)
        #expect(tracker.onFailure("endpoint-2", now: self.t0) == .ignored)
    }
}
