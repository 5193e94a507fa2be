import Foundation
import Monitor
import Testing

@Suite struct AlertEvaluatorTests {
    // MARK: - for

    @Test func test_for_conditionHoldsThroughFor_pendingThenFiresAtActivePlusFor() {
        // Given
        var rounds = Rounds(testRule(for: .seconds(300)))

        // When / Then
        #expect(rounds.at(.zero, value: 0.95).moves == ["inactive→pending"])
        #expect(rounds.at(.seconds(299), value: 0.95).isEmpty)
        let fired = rounds.at(.seconds(300), value: 0.95)
        #expect(fired.moves == ["pending→firing"])
        #expect(fired.first?.alert.activeAt == t0)
        #expect(fired.first?.alert.firedAt == t0 + .seconds(300))
        #expect(fired.first?.at == t0 + .seconds(300))
    }

    @Test func test_for_conditionClearsBeforeFor_pendingBecomesInactive() {
        // Given
        var rounds = Rounds(testRule(for: .seconds(300)))
        rounds.at(.zero, value: 0.95)

        // When
        let transitions = rounds.at(.seconds(60), value: 0.5)

        // Then
        #expect(transitions.moves == ["pending→inactive"])
        #expect(rounds.state.alerts.isEmpty)
        #expect(rounds.at(.seconds(300), value: 0.5).isEmpty)
    }

    @Test func test_for_zero_firesAtTheFirstEvaluation() {
        // Given
        var rounds = Rounds(testRule())

        // When
        let transitions = rounds.at(.zero, value: 0.95)

        // Then
        #expect(transitions.moves == ["inactive→firing"])
        #expect(transitions.first?.alert.activeAt == t0)
        #expect(transitions.first?.alert.firedAt == t0)
        #expect(rounds.statuses == [.firing])
    }

    // MARK: - Hysteresis and keep_firing_for

    @Test func test_hysteresis_noisySeriesAroundThreshold_staysFiringUntilBelowRecover() {
        // Given
        var rounds = Rounds(testRule(threshold: 0.9, recover: 0.85, annotations: ["summary": "at {{ $value }}"]))
        #expect(rounds.at(.zero, value: 0.95).moves == ["inactive→firing"])

        // When: the value wobbles around the threshold.
        var noisy: [AlertTransition] = []
        for (second, value) in [0.91, 0.89, 0.92, 0.88].enumerated() {
            noisy += rounds.at(.seconds(second + 1), value: value)
        }
        let resolved = rounds.at(.seconds(10), value: 0.84)

        // Then
        #expect(noisy.isEmpty)
        #expect(resolved.moves == ["firing→resolved"])
        #expect(resolved.first?.alert.value == 0.84)
        #expect(resolved.first?.alert.resolvedAt == t0 + .seconds(10))
        #expect(resolved.first?.alert.annotations == ["summary": "at 0.84"])
    }

    @Test func test_hysteresis_withoutRecover_flapsOnTheThreshold() {
        // Given
        var rounds = Rounds(testRule(threshold: 0.9))

        // When
        var moves: [String] = []
        for (second, value) in [0.91, 0.89, 0.92, 0.88].enumerated() {
            moves += rounds.at(.seconds(second), value: value).moves
        }

        // Then
        #expect(moves == ["inactive→firing", "firing→resolved", "inactive→firing", "firing→resolved"])
    }

    @Test func test_hysteresis_pendingAlert_usesTheThresholdNotRecover() {
        // Given
        var rounds = Rounds(testRule(threshold: 0.9, recover: 0.85, for: .seconds(60)))
        rounds.at(.zero, value: 0.95)

        // When: between recover and threshold while still pending.
        let transitions = rounds.at(.seconds(10), value: 0.88)

        // Then
        #expect(transitions.moves == ["pending→inactive"])
    }

    @Test func test_keepFiringFor_conditionClears_keepsFiringForTheWindowAndRestartsIt() {
        // Given
        var rounds = Rounds(testRule(keepFiringFor: .seconds(60)))
        rounds.at(.zero, value: 0.95)

        // When / Then: the condition clears at 10 s, holds again at 30 s, clears again at 40 s.
        #expect(rounds.at(.seconds(10), value: 0.5).isEmpty)
        #expect(rounds.state.alerts.first?.keepFiringSince == t0 + .seconds(10))
        #expect(rounds.at(.seconds(30), value: 0.95).isEmpty)
        #expect(rounds.state.alerts.first?.keepFiringSince == nil)
        #expect(rounds.at(.seconds(40), value: 0.5).isEmpty)
        #expect(rounds.at(.seconds(99), value: 0.5).isEmpty)
        let resolved = rounds.at(.seconds(100), value: 0.5)
        #expect(resolved.moves == ["firing→resolved"])
        #expect(resolved.first?.alert.keepFiringSince == nil)
    }

    // MARK: - No data

    @Test func test_noDataOK_seriesDisappears_firingAlertResolvesWithoutValue() {
        // Given
        var rounds = Rounds(testRule(noData: .ok, annotations: ["summary": "at {{ $value }}"]))
        rounds.at(.zero, value: 0.95)

        // When
        let transitions = rounds.at(.seconds(1), [])

        // Then
        #expect(transitions.moves == ["firing→resolved"])
        #expect(transitions.first?.alert.value == nil)
        #expect(transitions.first?.alert.annotations == ["summary": "at "])
    }

    @Test func test_noDataOK_neverAnyData_staysQuiet() {
        // Given
        var rounds = Rounds(testRule(noData: .ok))

        // When
        let transitions = (0..<5).flatMap { rounds.at(.seconds($0), []) }

        // Then
        #expect(transitions.isEmpty)
    }

    @Test func test_noDataAlerting_noSeries_pendsFiresAndResolvesWhenDataReturns() {
        // Given
        var rounds = Rounds(testRule(match: ["zone": "a"], for: .seconds(30), noData: .alerting))

        // When / Then
        let pending = rounds.at(.zero, [])
        #expect(pending.moves == ["inactive→pending"])
        #expect(pending.first?.alert.labels == ["alertname": "test", "severity": "warning", "zone": "a"])
        #expect(pending.first?.alert.value == nil)
        #expect(rounds.at(.seconds(30), []).moves == ["pending→firing"])
        #expect(
            rounds.at(.seconds(31), [sample("gossamer_test_value", ["zone": "a"], 0.5)]).moves == ["firing→resolved"])
    }

    @Test func test_noDataKeepLast_gap_keepsPendingAndFiringAsTheyWere() {
        // Given
        var rounds = Rounds(testRule(for: .seconds(60), noData: .keepLast))
        rounds.at(.zero, value: 0.95)

        // When / Then: a pending alert neither fires nor ends during the gap…
        #expect(rounds.at(.seconds(30), []).isEmpty)
        #expect(rounds.at(.seconds(120), []).isEmpty)
        #expect(rounds.statuses == [.pending])
        // …fires as soon as data shows the condition still holds…
        #expect(rounds.at(.seconds(121), value: 0.95).moves == ["pending→firing"])
        // …and a firing alert keeps firing through a gap.
        #expect(rounds.at(.seconds(300), []).isEmpty)
        #expect(rounds.statuses == [.firing])
        #expect(rounds.at(.seconds(301), value: 0.5).moves == ["firing→resolved"])
    }

    @Test func test_noDataNodata_gap_separateAlertFiresAfterNEvaluationsAndEndsWithData() throws {
        // Given
        var rounds = Rounds(testRule(noData: .nodata, noDataAfter: 3))
        rounds.at(.zero, value: 0.95)

        // When / Then: the first evaluation without data resolves the alert and starts the no-data alert.
        let first = rounds.at(.seconds(1), [])
        let noDataPending = try #require(first.first { $0.alert.labels["nodata"] == "true" })
        #expect(noDataPending.from == .inactive && noDataPending.to == .pending)
        #expect(noDataPending.alert.labels == ["alertname": "test", "severity": "warning", "nodata": "true"])
        #expect(first.first { $0.alert.labels["nodata"] == nil }?.to == .resolved)
        #expect(rounds.at(.seconds(2), []).isEmpty)
        let firing = rounds.at(.seconds(3), [])
        #expect(firing.moves == ["pending→firing"])
        #expect(firing.first?.alert.labels["nodata"] == "true")
        let back = rounds.at(.seconds(4), value: 0.5)
        #expect(back.moves == ["firing→resolved"])
        #expect(back.first?.alert.labels["nodata"] == "true")
        #expect(rounds.state.alerts.isEmpty)
    }

    @Test func test_noDataNodata_defaultAfter_firesOnTheThirdEvaluation() {
        // Given
        var rounds = Rounds(testRule(noData: .nodata))

        // When
        let moves = (0..<4).map { rounds.at(.seconds($0), []).moves }

        // Then
        #expect(moves == [["inactive→pending"], [], ["pending→firing"], []])
    }

    @Test func test_nanSample_countsAsNoData() {
        // Given
        var rounds = Rounds(testRule())
        rounds.at(.zero, value: 0.95)

        // When
        let transitions = rounds.at(.seconds(1), value: .nan)

        // Then
        #expect(transitions.moves == ["firing→resolved"])
    }

    // MARK: - Series and aggregation

    @Test func test_aggregateNone_oneAlertPerSeries_eachResolvesOnItsOwn() {
        // Given
        var rounds = Rounds(testRule(metric: "gossamer_disk_used_ratio"))
        func disks(_ values: [String: Double]) -> [Sample] {
            values.map { sample("gossamer_disk_used_ratio", ["mount": $0.key], $0.value) }
        }

        // When / Then
        let fired = rounds.at(.zero, disks(["/": 0.95, "/data": 0.97, "/var": 0.5]))
        #expect(fired.moves == ["inactive→firing", "inactive→firing"])
        #expect(fired.map { $0.alert.labels["mount"] } == ["/", "/data"])
        let first = rounds.at(.seconds(1), disks(["/": 0.5, "/data": 0.97, "/var": 0.5]))
        #expect(first.moves == ["firing→resolved"])
        #expect(first.first?.alert.labels["mount"] == "/")
        #expect(rounds.state.alerts.map { $0.labels["mount"] } == ["/data"])
        let second = rounds.at(.seconds(2), disks(["/": 0.5, "/data": 0.5, "/var": 0.5]))
        #expect(second.map { $0.alert.labels["mount"] } == ["/data"])
        #expect(rounds.state.alerts.isEmpty)
    }

    @Test(arguments: [
        (AlertRule.Aggregate.sum, 9.0), (.avg, 3.0), (.max, 6.0), (.min, 1.0),
    ])
    func test_aggregate_matchingSeries_combineIntoOneAlert(aggregate: AlertRule.Aggregate, expected: Double) {
        // Given
        var rounds = Rounds(
            testRule(match: ["service": "api"], aggregate: aggregate, op: .greaterThanOrEqual, threshold: 0))
        let samples = [
            sample("gossamer_test_value", ["service": "api", "instance": "a"], 1),
            sample("gossamer_test_value", ["service": "api", "instance": "b"], 2),
            sample("gossamer_test_value", ["service": "api", "instance": "c"], 6),
            sample("gossamer_test_value", ["service": "db", "instance": "d"], 100),
            sample("gossamer_other", ["service": "api"], 1000),
        ]

        // When
        let transitions = rounds.at(.zero, samples)

        // Then
        #expect(transitions.count == 1)
        #expect(transitions.first?.alert.value == expected)
        #expect(transitions.first?.alert.labels == ["service": "api", "alertname": "test", "severity": "warning"])
    }

    @Test func test_match_emptyValue_selectsSeriesWithoutTheLabel() {
        // Given
        var rounds = Rounds(testRule(match: ["zone": ""]))

        // When
        let transitions = rounds.at(
            .zero,
            [
                sample("gossamer_test_value", ["zone": "a"], 5),
                sample("gossamer_test_value", ["node": "n1"], 5),
            ])

        // Then
        #expect(transitions.map(\.alert.labels) == [["node": "n1", "alertname": "test", "severity": "warning"]])
    }

    @Test(arguments: [
        (AlertRule.Comparison.greaterThan, 2.0, true), (.greaterThan, 1.0, false),
        (.greaterThanOrEqual, 1.0, true), (.greaterThanOrEqual, 0.5, false),
        (.lessThan, 0.5, true), (.lessThan, 1.0, false),
        (.lessThanOrEqual, 1.0, true), (.lessThanOrEqual, 2.0, false),
        (.equal, 1.0, true), (.equal, 1.5, false),
        (.notEqual, 1.5, true), (.notEqual, 1.0, false),
    ])
    func test_comparison_valueAgainstThresholdOne_firesWhenItHolds(op: AlertRule.Comparison, value: Double, fires: Bool)
    {
        // Given
        var rounds = Rounds(testRule(op: op, threshold: 1))

        // When
        let transitions = rounds.at(.zero, value: value)

        // Then
        #expect(transitions.moves == (fires ? ["inactive→firing"] : []))
    }

    // MARK: - Labels and annotations

    @Test func test_transition_labelsAndAnnotations_combineSeriesRuleAndTemplates() {
        // Given
        var rule = testRule(
            name: "disk-full",
            metric: "gossamer_disk_used_ratio",
            labels: ["team": "ops", "node": "overridden"],
            annotations: [
                "summary": "disk {{ $labels.mount }} at {{ $value }} ({{ $labels.team }}){{ $labels.unknown }}"
            ]
        )
        rule.severity = .critical
        var rounds = Rounds(rule)

        // When
        let fired = rounds.at(.zero, [sample("gossamer_disk_used_ratio", ["mount": "/", "node": "a1"], 0.95)])
        let resolved = rounds.at(.seconds(1), [sample("gossamer_disk_used_ratio", ["mount": "/", "node": "a1"], 0.5)])

        // Then
        let labels = [
            "mount": "/", "node": "overridden", "team": "ops", "alertname": "disk-full", "severity": "critical",
        ]
        #expect(fired.first?.alert.labels == labels)
        #expect(fired.first?.alert.annotations == ["summary": "disk / at 0.95 (ops)"])
        #expect(resolved.first?.alert.labels == labels)
        #expect(resolved.first?.alert.annotations == ["summary": "disk / at 0.5 (ops)"])
        #expect(resolved.first?.alert.rule == "disk-full")
    }

    // MARK: - State, intervals and the rule set

    @Test func test_restart_stateSavedMidPending_firesAtActivePlusForNotLater() throws {
        // Given: pending since t0 when the agent stops.
        var before = Rounds(testRule(for: .seconds(300)))
        before.at(.zero, value: 0.95)
        let saved = try JSONEncoder().encode(before.state)

        // When: a new process loads the state and evaluates again.
        var after = Rounds(testRule(for: .seconds(300)))
        after.state = try JSONDecoder().decode(AlertState.self, from: saved)

        // Then
        #expect(after.state == before.state)
        #expect(after.at(.seconds(299), value: 0.95).isEmpty)
        let fired = after.at(.seconds(300), value: 0.95)
        #expect(fired.moves == ["pending→firing"])
        #expect(fired.first?.alert.activeAt == t0)
    }

    @Test func test_restart_longDowntime_pendingAlertFiresAtTheFirstEvaluation() throws {
        // Given
        var before = Rounds(testRule(for: .seconds(300)))
        before.at(.zero, value: 0.95)
        var after = Rounds(testRule(for: .seconds(300)))
        after.state = try JSONDecoder().decode(AlertState.self, from: JSONEncoder().encode(before.state))

        // When
        let fired = after.at(.seconds(3600), value: 0.95)

        // Then
        #expect(fired.moves == ["pending→firing"])
    }

    @Test func test_state_firingWithInfiniteValue_survivesJSON() throws {
        // Given
        var rounds = Rounds(testRule(keepFiringFor: .seconds(60)))
        rounds.at(.zero, value: .infinity)
        rounds.at(.seconds(1), value: 0.5)

        // When
        let decoded = try JSONDecoder().decode(AlertState.self, from: JSONEncoder().encode(rounds.state))

        // Then
        #expect(decoded == rounds.state)
        #expect(decoded.alerts.first?.keepFiringSince == t0 + .seconds(1))
    }

    @Test func test_state_storedInactiveAlert_isRefusedWhenDecoding() {
        // Given
        let json = #"""
            {"rules": {"r": {"no_data_evaluations": 0, "alerts": [{"series": {}, "alert": {"rule": "r",
             "status": "resolved", "labels": {}, "annotations": {}, "active_at": 0}}]}}}
            """#

        // Then
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(AlertState.self, from: Data(json.utf8)) }
    }

    /// t0 + 40 s is a multiple of 15 s and of 60 s: a tick of both intervals.
    static let tick = Duration.seconds(40)

    @Test func test_interval_ruleNotDue_isNotEvaluated() {
        // Given
        var rule = testRule()
        rule.interval = .seconds(60)
        var rounds = Rounds(rule)
        let tick = Self.tick
        rounds.at(tick, value: 0.5)

        // When / Then
        #expect(rounds.at(tick + .seconds(30), value: 0.95).isEmpty)
        #expect(rounds.state.lastEvaluation(of: "test") == t0 + tick)
        #expect(
            rounds.evaluator.nextEvaluation(rules: [rule], state: rounds.state, now: t0 + tick + .seconds(30)) == t0 + tick
                + .seconds(60))
        #expect(rounds.at(tick + .seconds(60), value: 0.95).moves == ["inactive→firing"])
        #expect(rounds.state.lastEvaluation(of: "test") == t0 + tick + .seconds(60))
    }

    @Test func test_interval_defaultAndNeverEvaluated_nextEvaluationIsNowOrDefault() {
        // Given
        var rule = testRule()
        rule.interval = nil
        var rounds = Rounds(rule)

        // When / Then
        #expect(rounds.evaluator.nextEvaluation(rules: [rule], state: rounds.state, now: t0 + Self.tick) == t0 + Self.tick)
        rounds.at(Self.tick, value: 0.5)
        #expect(
            rounds.evaluator.nextEvaluation(rules: [rule], state: rounds.state, now: t0 + Self.tick) == t0 + Self.tick + .seconds(15))
        #expect(rounds.evaluator.nextEvaluation(rules: [], state: rounds.state, now: t0) == nil)
    }

    /// Rules created at scattered times are evaluated at once when new, then on the same ticks (multiples of their
    /// interval), so one round (one sampling of the metrics) serves them all.
    @Test func test_interval_scatteredRules_alignOnTicks() {
        // Given: three 15 s rules first evaluated 2 s, 7 s and 13 s after a tick
        let rules = ["a", "b", "c"].map { name in
            var rule = testRule(name: name)
            rule.interval = .seconds(15)
            return rule
        }
        let evaluator = AlertEvaluator()
        var state = AlertState()
        for (count, offset) in zip(1...3, [2, 7, 13]) {
            state = evaluator.evaluate(rules: Array(rules.prefix(count)), samples: [], now: t0 + Self.tick + .seconds(offset), state: state).state
        }
        #expect(rules.map { state.lastEvaluation(of: $0.name) } == [2, 7, 13].map { t0 + Self.tick + .seconds($0) })

        // When
        let next = evaluator.nextEvaluation(rules: rules, state: state, now: t0 + Self.tick + .seconds(13))
        let round = evaluator.evaluate(
            rules: rules, samples: [sample("gossamer_test_value", [:], 0.95)], now: t0 + Self.tick + .seconds(15), state: state)

        // Then: all three are due at the next tick, together
        #expect(next == t0 + Self.tick + .seconds(15))
        #expect(round.transitions.map(\.alert.rule) == ["a", "b", "c"])
        #expect(evaluator.nextEvaluation(rules: rules, state: round.state, now: t0 + Self.tick + .seconds(15)) == t0 + Self.tick + .seconds(30))
    }

    @Test func test_interval_wallClockSteppedBack_ruleIsDue() {
        // Given
        var rule = testRule()
        rule.interval = .seconds(60)
        var rounds = Rounds(rule)
        rounds.at(.seconds(600), value: 0.5)

        // When
        let transitions = rounds.at(.seconds(300), value: 0.95)

        // Then
        #expect(transitions.moves == ["inactive→firing"])
    }

    @Test func test_ruleRemoved_itsAlertsEndAndItsStateIsForgotten() {
        // Given
        var rounds = Rounds(testRule(name: "gone", for: .zero), testRule(name: "pending", for: .seconds(60)))
        rounds.at(.zero, value: 0.95)

        // When
        rounds.rules = []
        let transitions = rounds.at(.seconds(1), value: 0.95)

        // Then
        #expect(transitions.moves == ["firing→resolved", "pending→inactive"])
        #expect(transitions.first?.alert.resolvedAt == t0 + .seconds(1))
        #expect(rounds.state == AlertState())
    }

    @Test func test_duplicateRuleNames_onlyTheFirstIsUsed() {
        // Given
        var rounds = Rounds(testRule(threshold: 10), testRule(threshold: 0))

        // When
        let transitions = rounds.at(.zero, value: 5)

        // Then
        #expect(transitions.isEmpty)
    }
}
