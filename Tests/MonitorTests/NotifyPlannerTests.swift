import Monitor
import Testing

// MARK: - Fixtures

let hook = AlertRule.Receiver.webhook("http://127.0.0.1:9000/hook")
let otherHook = AlertRule.Receiver.webhook("http://127.0.0.1:9001/hook")

/// An alert of rule `rule` with `alertname` set, plus `labels`, in `status`, started at `t0 + at`.
func notifyAlert(
    _ rule: String, _ labels: [String: String] = [:], status: AlertStatus = .firing, at: Duration = .zero,
    resolvedAt: Duration? = nil
) -> Alert {
    Alert(
        rule: rule, status: status, labels: labels.merging(["alertname": rule]) { _, new in new },
        annotations: ["summary": "\(rule) is bad"], value: 1, activeAt: t0 + at, firedAt: t0 + at,
        resolvedAt: resolvedAt.map { t0 + $0 })
}

/// A transition to firing at `t0 + at`.
func firing(_ rule: String, _ labels: [String: String] = [:], at: Duration = .zero) -> AlertTransition {
    AlertTransition(from: .pending, to: .firing, at: t0 + at, alert: notifyAlert(rule, labels, at: at))
}

/// A transition to resolved at `t0 + at` of an alert that fired at `t0 + firedAt`.
func resolved(_ rule: String, _ labels: [String: String] = [:], firedAt: Duration = .zero, at: Duration)
    -> AlertTransition
{
    var alert = notifyAlert(rule, labels, status: .resolved, at: firedAt, resolvedAt: at)
    alert.value = 0
    return AlertTransition(from: .firing, to: .resolved, at: t0 + at, alert: alert)
}

/// A planner with `policy`, whose every rule notifies `receivers`.
struct Plan {
    var planner: NotificationPlanner
    var receivers: [AlertRule.Receiver]

    init(_ policy: NotificationPolicy = NotificationPolicy(), receivers: [AlertRule.Receiver] = [hook]) {
        self.planner = NotificationPlanner(policy: policy)
        self.receivers = receivers
    }

    mutating func ingest(_ offset: Duration, _ transitions: AlertTransition...) {
        let receivers = self.receivers
        self.planner.ingest(transitions, receivers: { _ in receivers }, now: t0 + offset)
    }

    /// The notifications due at `t0 + offset`; checks the planner never asks to be woken in the past afterwards.
    mutating func due(_ offset: Duration, silences: [Silence] = []) -> [AlertNotification] {
        let now = t0 + offset
        let due = self.planner.due(now: now, silences: silences)
        if let wake = self.planner.nextWake(now: now) {
            #expect(wake > now, "nextWake must move past a due() that sent what was due")
        }
        return due
    }

    /// The next wake-up as an offset from `t0`.
    func wake(_ offset: Duration) -> Duration? {
        self.planner.nextWake(now: t0 + offset).map { t0.duration(to: $0) }
    }

    @discardableResult
    mutating func delivered(_ notification: AlertNotification, _ offset: Duration) -> Bool {
        self.planner.delivered(notification.id, now: t0 + offset)
    }

    @discardableResult
    mutating func failed(_ notification: AlertNotification, _ offset: Duration, permanent: Bool = false)
        -> NotificationPlanner.FailureOutcome
    {
        self.planner.failed(notification.id, now: t0 + offset, permanent: permanent)
    }
}

extension AlertNotification {
    /// `alertname status` of each alert, or `alertname:<label value> status` when `label` is given.
    func summary(_ label: String? = nil) -> [String] {
        self.alerts.map { alert in
            let name = [alert.labels["alertname"] ?? "", label.flatMap { alert.labels[$0] }].compactMap(\.self)
            return name.joined(separator: ":") + " " + alert.status.rawValue
        }
    }
}

func minutes(_ value: Int) -> Duration { .seconds(value * 60) }
func hours(_ value: Int) -> Duration { .seconds(value * 3600) }

// MARK: - Tests

@Suite struct NotifyPlannerTests {
    // MARK: Group wait and grouping

    @Test func test_planner_newGroup_waitsGroupWaitThenFlushes() throws {
        // Given
        var plan = Plan()
        plan.ingest(.zero, firing("disk"))

        // When / Then
        #expect(plan.due(.zero).isEmpty)
        #expect(plan.wake(.zero) == .seconds(30))
        #expect(plan.due(.seconds(29)).isEmpty)
        let sent = plan.due(.seconds(30))
        let notification = try #require(sent.first)
        #expect(sent.count == 1)
        #expect(notification.receiver == hook)
        #expect(notification.groupKey == #"{}:{alertname="disk"}"#)
        #expect(notification.groupLabels == ["alertname": "disk"])
        #expect(notification.attempt == 1)
        #expect(notification.status == .firing)
        #expect(notification.summary() == ["disk firing"])
        #expect(plan.wake(.seconds(30)) == nil)  // in flight
    }

    @Test func test_planner_alertsStartingTogether_shareOneNotification() throws {
        // Given
        var plan = Plan()
        plan.ingest(.zero, firing("disk", ["mount": "/"]))
        plan.ingest(.seconds(10), firing("disk", ["mount": "/data"], at: .seconds(10)))

        // When
        let sent = plan.due(.seconds(30))

        // Then: the group's wait started with its first alert
        #expect(sent.count == 1)
        #expect(sent.first?.summary("mount") == ["disk:/ firing", "disk:/data firing"])
    }

    @Test func test_planner_groupByLabels_separatesGroupsAndReceivers() {
        // Given
        var policy = NotificationPolicy()
        policy.groupBy = ["alertname", "team"]
        var plan = Plan(policy, receivers: [hook, otherHook])
        plan.ingest(
            .zero, firing("disk", ["team": "ops", "mount": "/"]), firing("disk", ["team": "ops", "mount": "/data"]),
            firing("disk", ["team": "dev", "mount": "/"]), firing("disk", ["mount": "/tmp"]))

        // When
        let sent = plan.due(.seconds(30))

        // Then: per receiver, one group per team (and one for alerts without a team)
        #expect(sent.count == 6)
        let keys = Set(sent.map(\.groupKey))
        #expect(
            keys == [
                #"{}:{alertname="disk", team="dev"}"#, #"{}:{alertname="disk", team="ops"}"#,
                #"{}:{alertname="disk"}"#,
            ])
        let ops = sent.filter { $0.receiver == hook && $0.groupLabels == ["alertname": "disk", "team": "ops"] }
        #expect(ops.map { $0.alerts.count } == [2])
        #expect(Set(sent.filter { $0.receiver == otherHook }.map(\.groupKey)) == keys)
    }

    @Test func test_planner_groupByEverything_oneGroupPerAlert() {
        // Given
        var policy = NotificationPolicy()
        policy.groupBy = ["..."]
        var plan = Plan(policy)
        plan.ingest(.zero, firing("disk", ["mount": "/"]), firing("disk", ["mount": "/data"]))

        // When
        let sent = plan.due(.seconds(30))

        // Then
        #expect(sent.map(\.groupKey).sorted() == [
            #"{}:{alertname="disk", mount="/"}"#, #"{}:{alertname="disk", mount="/data"}"#,
        ])
    }

    @Test func test_planner_pendingTransitions_areIgnored() {
        // Given
        var plan = Plan()
        let alert = notifyAlert("disk", status: .pending)

        // When
        plan.ingest(.zero, AlertTransition(from: .inactive, to: .pending, at: t0, alert: alert))

        // Then
        #expect(plan.planner.groupCount == 0)
        #expect(plan.due(.seconds(30)).isEmpty)
        #expect(plan.wake(.seconds(30)) == nil)
    }

    @Test func test_planner_alertFiringLongAgo_flushesNewGroupAtOnce() {
        // Given: an alert re-submitted after a restart, firing for an hour already
        var plan = Plan()
        var transition = firing("disk")
        transition.alert.firedAt = t0 - hours(1)
        transition.from = .firing

        // When
        plan.ingest(.zero, transition)

        // Then
        #expect(plan.due(.zero).count == 1)
    }

    // MARK: Group interval and repeat interval

    @Test func test_planner_changesAfterFirstFlush_batchedUntilGroupInterval() throws {
        // Given: the first notification delivered at 30 s
        var plan = Plan()
        plan.ingest(.zero, firing("disk", ["mount": "/"]))
        let first = try #require(plan.due(.seconds(30)).first)
        plan.delivered(first, .seconds(30))

        // When: two more alerts of the group start firing
        plan.ingest(.seconds(40), firing("disk", ["mount": "/data"], at: .seconds(40)))
        plan.ingest(.seconds(100), firing("disk", ["mount": "/tmp"], at: .seconds(100)))

        // Then: nothing until 30 s + 5 min, then one notification with the whole group
        #expect(plan.wake(.seconds(100)) == .seconds(330))
        #expect(plan.due(.seconds(329)).isEmpty)
        let second = try #require(plan.due(.seconds(330)).first)
        #expect(second.summary("mount") == ["disk:/ firing", "disk:/data firing", "disk:/tmp firing"])
    }

    @Test func test_planner_unchangedFiringGroup_repeatsAfterRepeatInterval() throws {
        // Given
        var plan = Plan()
        plan.ingest(.zero, firing("disk"))
        let first = try #require(plan.due(.seconds(30)).first)
        plan.delivered(first, .seconds(30))

        // When / Then: group-interval ticks pass quietly until 4 h after the delivery
        #expect(plan.wake(.seconds(30)) == hours(4) + .seconds(30))
        #expect(plan.due(.seconds(330)).isEmpty)
        #expect(plan.due(hours(4)).isEmpty)
        let repeated = plan.due(hours(4) + .seconds(30))
        #expect(repeated.map { $0.summary() } == [["disk firing"]])
        #expect(repeated.first?.attempt == 1)
    }

    // MARK: Resolution

    @Test func test_planner_resolvedAlert_sentOnceThenGroupForgotten() throws {
        // Given: a firing notification delivered
        var plan = Plan()
        plan.ingest(.zero, firing("disk"))
        let first = try #require(plan.due(.seconds(30)).first)
        plan.delivered(first, .seconds(30))

        // When: it resolves
        plan.ingest(.seconds(60), resolved("disk", at: .seconds(60)))

        // Then: announced at the next group interval, once
        #expect(plan.wake(.seconds(60)) == .seconds(330))
        let resolution = try #require(plan.due(.seconds(330)).first)
        #expect(resolution.status == .resolved)
        #expect(resolution.summary() == ["disk resolved"])
        #expect(resolution.alerts.first?.resolvedAt == t0 + .seconds(60))
        plan.delivered(resolution, .seconds(330))
        #expect(plan.planner.groupCount == 0)
        #expect(plan.wake(.seconds(330)) == nil)
        #expect(plan.due(hours(5)).isEmpty)
    }

    @Test func test_planner_resolutionWithFiringOthers_carriesBothThenKeepsFiring() throws {
        // Given
        var plan = Plan()
        plan.ingest(.zero, firing("disk", ["mount": "/"]), firing("disk", ["mount": "/data"]))
        let first = try #require(plan.due(.seconds(30)).first)
        plan.delivered(first, .seconds(30))

        // When
        plan.ingest(.seconds(60), resolved("disk", ["mount": "/data"], at: .seconds(60)))
        let second = try #require(plan.due(.seconds(330)).first)
        plan.delivered(second, .seconds(330))

        // Then
        #expect(second.status == .firing)
        #expect(second.summary("mount") == ["disk:/ firing", "disk:/data resolved"])
        #expect(plan.planner.groupCount == 1)
        #expect(plan.wake(.seconds(330)) == .seconds(330) + hours(4))
    }

    @Test func test_planner_resolvedWithinGroupWait_sendsNothing() {
        // Given
        var plan = Plan()
        plan.ingest(.zero, firing("disk"))

        // When
        plan.ingest(.seconds(10), resolved("disk", at: .seconds(10)))

        // Then: the receiver never heard of it
        #expect(plan.planner.groupCount == 0)
        #expect(plan.due(.seconds(30)).isEmpty)
    }

    @Test func test_planner_resolutionOfUnknownAlert_isAnnounced() {
        // Given: a planner that never saw the firing (it predates a restart)
        var plan = Plan()

        // When
        plan.ingest(.zero, resolved("disk", firedAt: .zero - hours(1), at: .zero))

        // Then
        #expect(plan.due(.seconds(30)).map { $0.summary() } == [["disk resolved"]])
    }

    @Test func test_planner_resolutionAfterReceiversChanged_reachesOldGroup() throws {
        // Given: the alert fired to `hook`; the rule now notifies nobody (e.g. it was deleted)
        var plan = Plan()
        plan.ingest(.zero, firing("disk"))
        let first = try #require(plan.due(.seconds(30)).first)
        plan.delivered(first, .seconds(30))
        plan.receivers = []

        // When
        plan.ingest(.seconds(60), resolved("disk", at: .seconds(60)))

        // Then
        let resolution = plan.due(.seconds(330))
        #expect(resolution.map(\.receiver) == [hook])
        #expect(resolution.first?.status == .resolved)
    }

    // MARK: Silences

    @Test func test_planner_silencedAlerts_leftOutUntilSilenceEnds() throws {
        // Given: a silence on mount=/data for 10 minutes
        var plan = Plan()
        let silence = Silence(
            id: "s1", matchers: [.init(name: "mount", value: "/data")], startsAt: t0, endsAt: t0 + minutes(10))
        plan.ingest(.zero, firing("disk", ["mount": "/"]), firing("disk", ["mount": "/data"]))

        // When
        let first = try #require(plan.due(.seconds(30), silences: [silence]).first)
        plan.delivered(first, .seconds(30))

        // Then: only the unsilenced alert; the silenced one goes out when the silence ends
        #expect(first.summary("mount") == ["disk:/ firing"])
        #expect(plan.planner.silencedAlerts == 1)
        #expect(plan.wake(.seconds(30)) == minutes(10))
        #expect(plan.due(.seconds(330), silences: [silence]).isEmpty)
        #expect(plan.wake(.seconds(330)) == minutes(10))
        let after = try #require(plan.due(minutes(10), silences: [silence]).first)
        #expect(after.summary("mount") == ["disk:/ firing", "disk:/data firing"])
    }

    @Test func test_planner_groupAllSilenced_sendsNothingAndWakesAtSilenceEnd() {
        // Given
        var plan = Plan()
        let silence = Silence(
            id: "s1", matchers: [.init(name: "alertname", value: "di.*", op: .regexMatch)], startsAt: t0,
            endsAt: t0 + hours(2))
        plan.ingest(.zero, firing("disk"))

        // When
        let sent = plan.due(.seconds(30), silences: [silence])

        // Then
        #expect(sent.isEmpty)
        #expect(plan.wake(.seconds(30)) == hours(2))
        #expect(plan.due(hours(1), silences: [silence]).isEmpty)
        #expect(plan.due(hours(2), silences: [silence]).count == 1)
        #expect(plan.planner.silencedAlerts == 1)
    }

    @Test func test_planner_silencedResolution_isDropped() throws {
        // Given: a delivered firing alert, then a silence, then its resolution
        var plan = Plan()
        plan.ingest(.zero, firing("disk"))
        let first = try #require(plan.due(.seconds(30)).first)
        plan.delivered(first, .seconds(30))
        let silence = Silence(
            id: "s1", matchers: [.init(name: "alertname", value: "disk")], startsAt: t0, endsAt: t0 + hours(1))

        // When
        plan.ingest(.seconds(60), resolved("disk", at: .seconds(60)))

        // Then
        #expect(plan.due(.seconds(330), silences: [silence]).isEmpty)
        #expect(plan.planner.groupCount == 0)
    }

    @Test func test_planner_futureSilence_doesNotMuteYet() {
        // Given
        var plan = Plan()
        let later = Silence(
            id: "s1", matchers: [.init(name: "alertname", value: "disk")], startsAt: t0 + hours(1),
            endsAt: t0 + hours(2))
        plan.ingest(.zero, firing("disk"))

        // When / Then
        #expect(plan.due(.seconds(30), silences: [later]).count == 1)
        #expect(plan.planner.silencedAlerts == 0)
    }

    // MARK: Rate limit

    @Test func test_planner_rateLimit_defersBeyondMaxPerMinute() {
        // Given: three groups for one receiver allowed two per minute
        var policy = NotificationPolicy()
        policy.maxPerMinute = 2
        var plan = Plan(policy)
        plan.ingest(.zero, firing("a"), firing("b"), firing("c"))

        // When
        let first = plan.due(.seconds(30))

        // Then: the third waits for the window, not dropped
        #expect(first.map(\.groupKey) == [#"{}:{alertname="a"}"#, #"{}:{alertname="b"}"#])
        #expect(plan.wake(.seconds(30)) == .seconds(90))
        #expect(plan.due(.seconds(89)).isEmpty)
        #expect(plan.due(.seconds(90)).map(\.groupKey) == [#"{}:{alertname="c"}"#])
    }

    @Test func test_planner_rateLimit_isPerReceiver() {
        // Given
        var policy = NotificationPolicy()
        policy.maxPerMinute = 1
        var plan = Plan(policy, receivers: [hook, otherHook])
        plan.ingest(.zero, firing("a"), firing("b"))

        // When
        let sent = plan.due(.seconds(30))

        // Then: one per receiver now
        #expect(sent.count == 2)
        #expect(Set(sent.map(\.receiver)) == [hook, otherHook])
    }

    // MARK: Retries

    @Test func test_planner_failure_retriesWithBackoffThenDelivers() throws {
        // Given
        var plan = Plan()
        plan.ingest(.zero, firing("disk", ["mount": "/"]))
        let first = try #require(plan.due(.seconds(30)).first)

        // When: two failures, with an alert joining between them
        #expect(plan.failed(first, .seconds(30)) == .retry(at: t0 + .seconds(31), attempt: 2))
        #expect(plan.wake(.seconds(30)) == .seconds(31))
        #expect(plan.due(.milliseconds(30_999)).isEmpty)
        let second = try #require(plan.due(.seconds(31)).first)
        #expect(plan.failed(second, .seconds(31)) == .retry(at: t0 + .seconds(33), attempt: 3))
        plan.ingest(.seconds(32), firing("disk", ["mount": "/data"], at: .seconds(32)))
        let third = try #require(plan.due(.seconds(33)).first)

        // Then: the retry carries the group's current content, and delivery settles it
        #expect(second.attempt == 2)
        #expect(third.attempt == 3)
        #expect(third.id != second.id)
        #expect(third.summary("mount") == ["disk:/ firing", "disk:/data firing"])
        let settled = plan.delivered(third, .seconds(33))
        #expect(settled)
        #expect(plan.wake(.seconds(33)) == .seconds(33) + hours(4))
    }

    @Test func test_planner_backoff_doublesUpToMaximum() {
        // Given
        let retry = NotificationPolicy.Retry()

        // When
        let waits = (1...8).map { retry.backoff(afterFailures: $0) }

        // Then
        #expect(waits == [1, 2, 4, 8, 16, 32, 60, 60].map { Duration.seconds($0) })
    }

    @Test func test_planner_retriesRunOut_givesUpAndNextFlushCarriesAlerts() throws {
        // Given: retries given up 10 s after the first attempt
        var policy = NotificationPolicy()
        policy.retry.giveUpAfter = .seconds(10)
        policy.retry.maximumBackoff = .seconds(4)
        var plan = Plan(policy)
        plan.ingest(.zero, firing("disk"))
        var notification = try #require(plan.due(.seconds(30)).first)

        // When: every attempt fails
        var outcomes: [NotificationPlanner.FailureOutcome] = []
        var now = Duration.seconds(30)
        while true {
            let outcome = plan.failed(notification, now)
            outcomes.append(outcome)
            guard case .retry(let at, _) = outcome else { break }
            now = t0.duration(to: at)
            notification = try #require(plan.due(now).first)
        }

        // Then: 1 + 2 + 4 + 4 s of backoff, then given up; the alert is still there for the next flush
        #expect(outcomes.last == .gaveUp(attempts: 5))
        #expect(now == .seconds(41))
        #expect(plan.planner.groupCount == 1)
        #expect(plan.wake(now) == now + minutes(5))
        let again = try #require(plan.due(now + minutes(5)).first)
        #expect(again.attempt == 1)
        #expect(again.summary() == ["disk firing"])
    }

    @Test func test_planner_permanentFailure_notRetriedButAlertKept() throws {
        // Given
        var plan = Plan()
        plan.ingest(.zero, firing("disk"))
        let first = try #require(plan.due(.seconds(30)).first)

        // When
        let outcome = plan.failed(first, .seconds(30), permanent: true)

        // Then
        #expect(outcome == .dropped(attempts: 1))
        #expect(plan.due(.seconds(31)).isEmpty)
        #expect(plan.wake(.seconds(31)) == .seconds(330))
        #expect(plan.due(.seconds(330)).map { $0.summary() } == [["disk firing"]])
    }

    @Test func test_planner_unknownNotification_reportsAreIgnored() throws {
        // Given
        var plan = Plan()
        plan.ingest(.zero, firing("disk"))
        let first = try #require(plan.due(.seconds(30)).first)
        plan.delivered(first, .seconds(30))

        // When / Then
        let again = plan.delivered(first, .seconds(31))
        let failure = plan.failed(first, .seconds(31))
        #expect(!again)
        #expect(failure == .unknown)
    }

    // MARK: Alertmanager receivers

    @Test func test_planner_alertmanagerReceiver_forwardsAtOnceAndResendsEveryMinute() throws {
        // Given
        let alertmanager = AlertRule.Receiver.alertmanager("http://127.0.0.1:9093")
        var plan = Plan(receivers: [alertmanager])
        plan.ingest(.zero, firing("disk"))

        // When
        let first = try #require(plan.due(.zero).first)
        plan.delivered(first, .zero)

        // Then: no group wait, and re-sent every resend interval
        #expect(plan.wake(.zero) == .seconds(60))
        #expect(plan.due(.seconds(60)).count == 1)
    }

    @Test func test_planner_alertmanagerReceiver_resolutionForwardedAtOnce() throws {
        // Given
        let alertmanager = AlertRule.Receiver.alertmanager("http://127.0.0.1:9093")
        var plan = Plan(receivers: [alertmanager])
        plan.ingest(.zero, firing("disk"))
        let first = try #require(plan.due(.zero).first)
        plan.delivered(first, .seconds(1))

        // When
        plan.ingest(.seconds(5), resolved("disk", at: .seconds(5)))

        // Then
        #expect(plan.due(.seconds(5)).map { $0.summary() } == [["disk resolved"]])
    }
}
