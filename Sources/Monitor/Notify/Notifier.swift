import Logging
import Synchronization

// MARK: - Notifier

/// The shell around ``NotificationPlanner``: it owns the planner, takes transitions and silences from the agent,
/// and runs the loop that sends due notifications through a ``NotificationSender`` and reports the results back.
///
/// ``run()`` (call it once, under structured concurrency) loops until cancelled: plan at `now`, start one child task
/// per due notification (so a slow receiver delays nobody else), then sleep until the planner's next wake-up or until
/// ``submit(_:receivers:)``, ``updateSilences(_:)`` or a finished send wakes it. Cancelling `run()` cancels the
/// sends in flight.
///
/// The clock (`now`) and the sender are injected, so tests drive it with a fake sender and short policy durations;
/// sleeping is real (`Task.sleep`). State lives behind a `Mutex`, so the agent's synchronous code can submit.
public final class Notifier: Sendable {
    /// Running totals, for metrics.
    public struct Counters: Hashable, Sendable {
        /// Notifications delivered.
        public var sent = 0
        /// Delivery attempts that failed (each failed attempt counts).
        public var failed = 0
        /// Retries scheduled after a retryable failure.
        public var retries = 0
        /// Notifications abandoned: retries ran out, or the failure was permanent. Their alerts stay in their group
        /// and go out with its next flush.
        public var givenUp = 0
        /// Alerts found newly muted by a silence (``NotificationPlanner/silencedAlerts``).
        public var silenced = 0

        /// All zero.
        public init() {}
    }

    private struct State: Sendable {
        var planner: NotificationPlanner
        var silences: [Silence] = []
        var counters = Counters()
        /// The run loop, parked until something changes.
        var waiter: CheckedContinuation<Void, Never>?
        /// Something changed while the loop was busy: its next wait returns at once.
        var woken = false
    }

    /// The policy the planner applies.
    public let policy: NotificationPolicy
    /// The sender's own address, put in webhook messages as `externalURL`.
    public let externalURL: String
    private let sender: any NotificationSender
    private let generatorURL: @Sendable (Alert) -> String
    private let now: @Sendable () -> WallTime
    private let logger: Logger
    private let state: Mutex<State>

    /// Creates a notifier.
    /// - Parameters:
    ///   - policy: grouping, timing, rate limit and retries.
    ///   - sender: delivers notifications (``WebhookSender`` in production).
    ///   - externalURL: the agent's base URL (`http://host:port`), the webhook message's `externalURL`.
    ///   - generatorURL: the link an alert carries to its rule; by default
    ///     `<externalURL>/v1/alerts/rules/<rule name, percent-encoded>`.
    ///   - logger: failures at `debug`, given-up notifications at `info`.
    ///   - now: the wall clock; by default ``WallTime/now``.
    public init(
        policy: NotificationPolicy = NotificationPolicy(),
        sender: any NotificationSender,
        externalURL: String,
        generatorURL: (@Sendable (Alert) -> String)? = nil,
        logger: Logger,
        now: (@Sendable () -> WallTime)? = nil
    ) {
        self.policy = policy
        self.externalURL = externalURL
        self.sender = sender
        self.generatorURL =
            generatorURL ?? { alert in
                var base = Substring(externalURL)
                while base.hasSuffix("/") { base.removeLast() }
                return "\(base)/v1/alerts/rules/\(Notifier.percentEncoded(alert.rule))"
            }
        self.now = now ?? { WallTime.now }
        self.logger = logger
        self.state = Mutex(State(planner: NotificationPlanner(policy: policy)))
    }

    // MARK: - Input

    /// Hands over an evaluation round's transitions; `receivers` maps each rule name to where its alerts go (rules
    /// missing from it have none, though resolutions still reach the groups that hold their alerts).
    public func submit(_ transitions: [AlertTransition], receivers: [String: [AlertRule.Receiver]]) {
        guard !transitions.isEmpty else { return }
        let now = self.now()
        self.state.withLock { state in
            state.planner.ingest(transitions, receivers: { receivers[$0] ?? [] }, now: now)
        }
        self.wake()
    }

    /// Hands over transitions with the rule set, each rule's alerts going to its own ``AlertRule/receivers``.
    public func submit(_ transitions: [AlertTransition], rules: [AlertRule]) {
        let receivers = Dictionary(rules.map { ($0.name, $0.receivers) }, uniquingKeysWith: { first, _ in first })
        self.submit(transitions, receivers: receivers)
    }

    /// Replaces the silences (all of them; expired ones are harmless).
    public func updateSilences(_ silences: [Silence]) {
        self.state.withLock { $0.silences = silences }
        self.wake()
    }

    /// The running totals.
    public var counters: Counters {
        self.state.withLock { $0.counters }
    }

    // MARK: - Loop

    /// Sends notifications until cancelled.
    public func run() async {
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                let now = self.now()
                let (due, wake) = self.state.withLock { state in
                    let before = state.planner.silencedAlerts
                    let due = state.planner.due(now: now, silences: state.silences)
                    state.counters.silenced += state.planner.silencedAlerts - before
                    return (due, state.planner.nextWake(now: now))
                }
                for notification in due {
                    let payload = NotificationPayload(
                        notification, externalURL: self.externalURL, generatorURL: self.generatorURL, now: now,
                        alertmanagerResendInterval: self.policy.alertmanagerResendInterval)
                    group.addTask {
                        let result = await self.sender.send(notification, payload: payload)
                        self.report(notification, result)
                    }
                }
                await self.sleep(until: wake, now: now)
            }
        }
    }

    /// Feeds a send's result back to the planner, counts and logs it, and wakes the loop.
    private func report(_ notification: AlertNotification, _ result: DeliveryResult) {
        let now = self.now()
        var metadata: Logger.Metadata = [
            "alert.group_key": "\(notification.groupKey)",
            "alert.receiver": "\(notification.receiver)",
            "alert.attempt": "\(notification.attempt)",
        ]
        switch result {
        case .success:
            self.state.withLock { state in
                if state.planner.delivered(notification.id, now: now) { state.counters.sent += 1 }
            }
            self.logger.debug("alert notification delivered", metadata: metadata)
        case .retryable(let reason), .permanent(let reason):
            var permanent = false
            if case .permanent = result { permanent = true }
            metadata["alert.reason"] = "\(reason)"
            let outcome = self.state.withLock { state in
                let outcome = state.planner.failed(notification.id, now: now, permanent: permanent)
                switch outcome {
                case .retry:
                    state.counters.failed += 1
                    state.counters.retries += 1
                case .gaveUp, .dropped:
                    state.counters.failed += 1
                    state.counters.givenUp += 1
                case .unknown:
                    break
                }
                return outcome
            }
            switch outcome {
            case .retry(let at, _):
                metadata["alert.retry_at"] = "\(at)"
                self.logger.debug("alert notification failed; will retry", metadata: metadata)
            case .gaveUp:
                self.logger.info("alert notification given up after retries", metadata: metadata)
            case .dropped:
                self.logger.info("alert notification failed permanently", metadata: metadata)
            case .unknown:
                break
            }
        }
        self.wake()
    }

    // MARK: - Waking

    /// Waits until `wake` (if any) or until ``wake()`` is called, whichever comes first.
    private func sleep(until wake: WallTime?, now: WallTime) async {
        let delay = wake.map { now.duration(to: $0) }
        if let delay, delay <= .zero { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForWake() }
            if let delay {
                group.addTask { try? await Task.sleep(for: delay) }
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// Parks until ``wake()`` or cancellation; returns at once if woken meanwhile.
    private func waitForWake() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = self.state.withLock { state -> Bool in
                    if Task.isCancelled { return true }
                    if state.woken {
                        state.woken = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = self.state.withLock { state in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }

    /// Wakes the loop, or makes its next wait return at once.
    private func wake() {
        let waiter = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.woken = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    // MARK: - Helpers

    /// `text` with everything but unreserved URL characters percent-encoded (RFC 3986).
    static func percentEncoded(_ text: String) -> String {
        var encoded = ""
        for byte in text.utf8 {
            let character = Character(Unicode.Scalar(byte))
            if byte < 0x80, character.isLetter || character.isNumber || "-._~".contains(character) {
                encoded.append(character)
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                encoded += "%" + (hex.count < 2 ? "0" + hex : hex)
            }
        }
        return encoded
    }
}
