// MARK: - AlertNotification

/// One message to one receiver about one group of alerts, as ``NotificationPlanner/due(now:silences:)`` hands it out.
/// The sender reports back with ``NotificationPlanner/delivered(_:now:)`` or
/// ``NotificationPlanner/failed(_:now:permanent:)`` under the same ``id``.
public struct AlertNotification: Sendable, Hashable, Identifiable {
    /// Identifies a notification (each attempt, including a retry, gets a new one).
    public struct ID: Hashable, Sendable, Comparable, CustomStringConvertible {
        /// The planner's sequence number, from 1.
        public var rawValue: UInt64

        /// Wraps a sequence number.
        public init(rawValue: UInt64) {
            self.rawValue = rawValue
        }

        /// Orders by sequence number.
        public static func < (lhs: ID, rhs: ID) -> Bool { lhs.rawValue < rhs.rawValue }

        /// `#<number>`, for logs.
        public var description: String { "#\(self.rawValue)" }
    }

    /// This attempt's id.
    public var id: ID
    /// Where it goes.
    public var receiver: AlertRule.Receiver
    /// The group's Alertmanager-style key, such as `{}:{alertname="disk-full"}` (unique per receiver).
    public var groupKey: String
    /// The values of the policy's `groupBy` labels shared by the group's alerts (labels an alert lacks are left out).
    public var groupLabels: [String: String]
    /// The group's unsilenced firing alerts and its resolved alerts not yet announced, ordered by labels.
    public var alerts: [Alert]
    /// 1 for the first attempt, 2 for the first retry, and so on.
    public var attempt: Int

    /// Creates a notification.
    public init(
        id: ID, receiver: AlertRule.Receiver, groupKey: String, groupLabels: [String: String], alerts: [Alert],
        attempt: Int
    ) {
        self.id = id
        self.receiver = receiver
        self.groupKey = groupKey
        self.groupLabels = groupLabels
        self.alerts = alerts
        self.attempt = attempt
    }

    /// ``AlertStatus/firing`` when any alert fires, else ``AlertStatus/resolved`` (the webhook message's `status`).
    public var status: AlertStatus {
        self.alerts.contains { $0.status == .firing } ? .firing : .resolved
    }
}

// MARK: - Policy

/// How alerts become notifications: grouping, timing, rate limit and retries, with Alertmanager's names and defaults.
public struct NotificationPolicy: Sendable, Hashable {
    /// Retries of a failed notification: exponential backoff, then giving up.
    public struct Retry: Sendable, Hashable {
        /// The wait after the first failure; each further failure doubles it. Default 1 s.
        public var initialBackoff: Duration = .seconds(1)
        /// The longest wait between attempts. Default 60 s.
        public var maximumBackoff: Duration = .seconds(60)
        /// How long after the first attempt a failing notification is given up. Default 1 h. Giving up loses no
        /// alert: the group still holds them, and its next flush (a group interval later) carries them again.
        public var giveUpAfter: Duration = .seconds(3600)

        /// The defaults.
        public init() {}

        /// The wait after `failures` failed attempts in a row (1 or more): `initialBackoff · 2^(failures-1)`,
        /// at most `maximumBackoff`. Deterministic (no jitter): the planner is pure, and the per-receiver rate limit
        /// already spreads bursts.
        public func backoff(afterFailures failures: Int) -> Duration {
            var wait = max(self.initialBackoff, .zero)
            for _ in 1..<max(1, failures) where wait < self.maximumBackoff {
                wait *= 2
            }
            return min(wait, self.maximumBackoff)
        }
    }

    /// The labels alerts are grouped by (per receiver): alerts with equal values of these labels share
    /// notifications. Default `["alertname"]`: one group per rule. `["..."]` groups by all labels (one alert per
    /// group), as in Alertmanager; `[]` puts all of a receiver's alerts in one group.
    public var groupBy: [String] = ["alertname"]
    /// How long a new group waits before its first notification, to collect the alerts that start together.
    /// Default 30 s. An alert that has already fired for longer than this (such as one re-submitted after a
    /// restart) flushes its new group at once, as Alertmanager does.
    public var groupWait: Duration = .seconds(30)
    /// How long after a group's previous notification it waits before notifying changes (an alert starting to fire,
    /// or resolving). Default 5 min. Shorter tells sooner, longer batches more.
    public var groupInterval: Duration = .seconds(300)
    /// How long after a delivered notification an unchanged firing group is notified again. Default 4 h. Checked at
    /// group-interval ticks, like Alertmanager, so it is effectively rounded up to them.
    public var repeatInterval: Duration = .seconds(4 * 3600)
    /// The most notifications (first attempts and retries) one receiver gets per minute, over a sliding 60 s window.
    /// Notifications beyond it are deferred, never dropped. Default 60; `nil` means no limit.
    public var maxPerMinute: Int? = 60
    /// Retries of failed notifications.
    public var retry = Retry()
    /// For ``AlertRule/Receiver/alertmanager(_:)`` receivers, which group alerts themselves: alerts are forwarded
    /// without group wait or group interval, and firing ones are re-sent this often (Prometheus' `resend-delay`),
    /// each valid for four times as long, so Alertmanager resolves them by itself if the agent goes away.
    /// Default 60 s.
    public var alertmanagerResendInterval: Duration = .seconds(60)

    /// Alertmanager's defaults.
    public init() {}

    /// The group wait, group interval and repeat interval a receiver's groups use.
    struct Timing: Hashable, Sendable {
        var groupWait: Duration
        var groupInterval: Duration
        var repeatInterval: Duration
    }

    /// The timing of `receiver`'s groups; negative durations count as zero.
    func timing(for receiver: AlertRule.Receiver) -> Timing {
        switch receiver {
        case .alertmanager:
            Timing(groupWait: .zero, groupInterval: .zero, repeatInterval: max(self.alertmanagerResendInterval, .zero))
        case .webhook, .log:
            Timing(
                groupWait: max(self.groupWait, .zero), groupInterval: max(self.groupInterval, .zero),
                repeatInterval: max(self.repeatInterval, .zero))
        }
    }

    /// The labels of `labels` that key its group.
    func groupLabels(of labels: [String: String]) -> [String: String] {
        if self.groupBy.contains("...") { return labels }
        var grouped: [String: String] = [:]
        for name in self.groupBy {
            if let value = labels[name], !value.isEmpty {
                grouped[name] = value
            }
        }
        return grouped
    }
}
