// MARK: - Sending

/// Delivers notifications; ``WebhookSender`` is the real one, tests use fakes. The ``Notifier`` calls it
/// concurrently for different groups, never twice at once for the same group.
public protocol NotificationSender: Sendable {
    /// Sends `notification`, already rendered as `payload`, and says how it went. Must not throw or hang past its
    /// own timeout: the group waits for the answer before it sends again.
    func send(_ notification: AlertNotification, payload: NotificationPayload) async -> DeliveryResult
}

/// How one delivery attempt went.
public enum DeliveryResult: Hashable, Sendable {
    /// The receiver accepted it (a 2xx answer).
    case success
    /// It may work later (timeout, connection error, 408, 429, 5xx): retried with backoff.
    case retryable(String)
    /// It will not work as is (another 4xx, an unusable URL): not retried; the group's next flush tries again.
    case permanent(String)
}

/// A notification rendered for its receiver's kind.
public enum NotificationPayload: Hashable, Sendable {
    /// The Alertmanager webhook message: for ``AlertRule/Receiver/webhook(_:)`` and ``AlertRule/Receiver/log``.
    case webhook(AlertmanagerPayload.Webhook)
    /// Alertmanager API v2 alerts: for ``AlertRule/Receiver/alertmanager(_:)``.
    case postableAlerts([AlertmanagerPayload.PostableAlert])

    /// Renders `notification` at `now`: the webhook message for webhook and log receivers; postable alerts valid for
    /// four resend intervals (Prometheus' rule) for Alertmanager receivers.
    public init(
        _ notification: AlertNotification, externalURL: String, generatorURL: (Alert) -> String, now: WallTime,
        alertmanagerResendInterval: Duration
    ) {
        switch notification.receiver {
        case .webhook, .log:
            self = .webhook(
                AlertmanagerPayload.Webhook(
                    notification: notification, externalURL: externalURL, generatorURL: generatorURL))
        case .alertmanager:
            self = .postableAlerts(
                AlertmanagerPayload.PostableAlert.alerts(
                    for: notification, now: now, validFor: alertmanagerResendInterval * 4,
                    generatorURL: generatorURL))
        }
    }
}
