import Logging
import Monitor
import Synchronization
import Testing

// MARK: - Fakes

/// A sender that answers from a script (then `success`) and records what it was given.
final class ScriptedSender: NotificationSender {
    private let state: Mutex<(script: [DeliveryResult], sent: [(AlertNotification, NotificationPayload)])>

    init(_ script: [DeliveryResult] = []) {
        self.state = Mutex((script, []))
    }

    var sent: [(notification: AlertNotification, payload: NotificationPayload)] {
        self.state.withLock { $0.sent.map { (notification: $0.0, payload: $0.1) } }
    }

    func send(_ notification: AlertNotification, payload: NotificationPayload) async -> DeliveryResult {
        self.state.withLock { state in
            state.sent.append((notification, payload))
            return state.script.isEmpty ? .success : state.script.removeFirst()
        }
    }
}

/// Lines logged through a logger, shared with the handler.
final class LogCapture: Sendable {
    let lines = Mutex<[(message: String, metadata: Logger.Metadata)]>([])

    var logger: Logger {
        Logger(label: "test") { _ in ForwardingLogHandler(capture: self) }
    }

    var messages: [String] { self.lines.withLock { $0.map(\.message) } }
    var metadata: [Logger.Metadata] { self.lines.withLock { $0.map(\.metadata) } }
}

/// Appends every line to its capture.
struct ForwardingLogHandler: LogHandler {
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        self.capture.lines.withLock { $0.append((event.message.description, event.metadata ?? [:])) }
    }
}

/// Runs `notifier` while `body` runs, then stops it.
func running<T: Sendable>(_ notifier: Notifier, _ body: () async -> T) async -> T {
    await withTaskGroup(of: Void.self) { group in
        group.addTask { await notifier.run() }
        let result = await body()
        group.cancelAll()
        return result
    }
}

/// Polls `condition` every 5 ms for up to 5 s of real time; the notifier uses short policy durations, so this
/// normally returns within tens of milliseconds.
func eventually(_ condition: () -> Bool) async -> Bool {
    for _ in 0..<1000 {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return condition()
}

/// A policy with no waits and millisecond backoff, for notifier tests on the real clock.
func quickPolicy() -> NotificationPolicy {
    var policy = NotificationPolicy()
    policy.groupWait = .zero
    policy.groupInterval = .milliseconds(50)
    policy.retry.initialBackoff = .milliseconds(10)
    policy.retry.maximumBackoff = .milliseconds(40)
    return policy
}

func realFiring(_ rule: String) -> AlertTransition {
    let now = WallTime.now
    let alert = Alert(
        rule: rule, status: .firing, labels: ["alertname": rule], value: 1, activeAt: now, firedAt: now)
    return AlertTransition(from: .pending, to: .firing, at: now, alert: alert)
}

// MARK: - Tests

@Suite struct NotifyNotifierTests {
    @Test func test_notifier_retryableFailures_retriedThenDelivered() async throws {
        // Given: a receiver that fails twice
        let sender = ScriptedSender([.retryable("HTTP 503"), .retryable("connection refused")])
        let notifier = Notifier(
            policy: quickPolicy(), sender: sender, externalURL: "http://agent:7700", logger: LogCapture().logger)

        // When
        let delivered = await running(notifier) {
            notifier.submit([realFiring("disk")], receivers: ["disk": [hook]])
            return await eventually { notifier.counters.sent == 1 }
        }

        // Then
        #expect(delivered)
        #expect(sender.sent.map(\.notification.attempt) == [1, 2, 3])
        var expected = Notifier.Counters()
        expected.sent = 1
        expected.failed = 2
        expected.retries = 2
        #expect(notifier.counters == expected)
        guard case .webhook(let message) = sender.sent.last?.payload else {
            Issue.record("expected a webhook payload")
            return
        }
        #expect(message.externalURL == "http://agent:7700")
        #expect(message.alerts.first?.generatorURL == "http://agent:7700/v1/alerts/rules/disk")
    }

    @Test func test_notifier_permanentFailure_givenUpAndLogged() async throws {
        // Given
        let sender = ScriptedSender([.permanent("HTTP 400: bad payload")])
        let capture = LogCapture()
        var policy = quickPolicy()
        policy.groupInterval = .seconds(3600)
        let notifier = Notifier(policy: policy, sender: sender, externalURL: "", logger: capture.logger)

        // When
        let gaveUp = await running(notifier) {
            notifier.submit([realFiring("disk")], rules: [AlertRule(
                name: "disk", metric: "m", op: .greaterThan, threshold: 1, receivers: [hook])])
            return await eventually { notifier.counters.givenUp == 1 }
        }

        // Then
        #expect(gaveUp)
        #expect(sender.sent.count == 1)
        #expect(notifier.counters.failed == 1)
        #expect(notifier.counters.retries == 0)
        #expect(capture.messages.contains("alert notification failed permanently"))
    }

    @Test func test_notifier_silencedAlert_notSentAndCounted() async throws {
        // Given
        let sender = ScriptedSender()
        let notifier = Notifier(policy: quickPolicy(), sender: sender, externalURL: "", logger: LogCapture().logger)
        let now = WallTime.now
        notifier.updateSilences([
            Silence(
                id: "s1", matchers: [.init(name: "alertname", value: "disk")], startsAt: now - .seconds(1),
                endsAt: now + .seconds(3600))
        ])

        // When
        let counted = await running(notifier) {
            notifier.submit([realFiring("disk"), realFiring("cpu")], receivers: ["disk": [hook], "cpu": [hook]])
            return await eventually { notifier.counters.silenced == 1 && notifier.counters.sent == 1 }
        }

        // Then: only the unsilenced group went out
        #expect(counted)
        #expect(sender.sent.map(\.notification.groupKey) == [#"{}:{alertname="cpu"}"#])
    }

    @Test func test_notifier_logReceiver_logsOneLinePerAlert() async throws {
        // Given: the real sender, which needs no network for `log`
        let capture = LogCapture()
        let notifier = Notifier(
            policy: quickPolicy(), sender: WebhookSender(logger: capture.logger), externalURL: "",
            logger: capture.logger)
        var second = realFiring("cpu")
        second.alert.labels["core"] = "1"

        // When
        let delivered = await running(notifier) {
            notifier.submit([realFiring("cpu"), second], receivers: ["cpu": [.log]])
            return await eventually { notifier.counters.sent == 1 }
        }

        // Then
        #expect(delivered)
        let lines = capture.lines.withLock { $0.filter { $0.message == "alert notification" } }
        #expect(lines.count == 2)
        #expect(lines.map { $0.metadata["alert.status"] } == ["firing", "firing"])
        #expect(lines.first?.metadata["alert.rule"] == "cpu")
    }

    // MARK: - Webhook sender without a receiver

    @Test func test_webhookSender_connectionRefused_isRetryable() async {
        // Given: nothing listens on port 1 (the client retries connecting until the deadline, then fails)
        let sender = WebhookSender(timeout: .milliseconds(300), logger: LogCapture().logger)
        let notification = AlertNotification(
            id: AlertNotification.ID(rawValue: 1), receiver: .webhook("http://127.0.0.1:1/hook"), groupKey: "{}:{}",
            groupLabels: [:], alerts: [realFiring("disk").alert], attempt: 1)
        let payload = NotificationPayload(
            notification, externalURL: "", generatorURL: { _ in "" }, now: .now,
            alertmanagerResendInterval: .seconds(60))

        // When
        let result = await sender.send(notification, payload: payload)

        // Then
        guard case .retryable = result else {
            Issue.record("expected a retryable failure, got \(result)")
            return
        }
    }

    @Test func test_webhookSender_unsupportedScheme_isPermanent() async {
        // Given
        let sender = WebhookSender(timeout: .seconds(5), logger: LogCapture().logger)
        let notification = AlertNotification(
            id: AlertNotification.ID(rawValue: 1), receiver: .alertmanager("ftp://127.0.0.1:1"), groupKey: "{}:{}",
            groupLabels: [:], alerts: [realFiring("disk").alert], attempt: 1)
        let payload = NotificationPayload(
            notification, externalURL: "", generatorURL: { _ in "" }, now: .now,
            alertmanagerResendInterval: .seconds(60))

        // When
        let result = await sender.send(notification, payload: payload)

        // Then
        guard case .permanent = result else {
            Issue.record("expected a permanent failure, got \(result)")
            return
        }
    }
}
