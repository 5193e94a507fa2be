// MARK: - Notification planner

/// Turns alert transitions into notifications the way Alertmanager does, as a pure value: transitions, silences and
/// `now` in; notifications to send and the next instant worth waking up out. It reads no clock and does no I/O; the
/// ``Notifier`` drives it and sends.
///
/// **Groups.** Each firing or resolved alert joins, for each receiver of its rule, the group keyed by the receiver
/// and the values of ``NotificationPolicy/groupBy`` labels. A group remembers its alerts (by labels) and which firing
/// alerts its last *delivered* notification announced (Alertmanager's notification log). Pending and inactive
/// transitions are ignored; a `firing` transition from any status counts, so the caller can re-submit firing alerts
/// after a restart.
///
/// **When a group notifies** (checked by ``due(now:silences:)``; unsilenced alerts only):
/// - a new group first after ``NotificationPolicy/groupWait``;
/// - then, when something changed — a firing alert not announced yet, or an announced alert that resolved — one
///   ``NotificationPolicy/groupInterval`` after its previous notification;
/// - an unchanged firing group ``NotificationPolicy/repeatInterval`` after its last delivery (at the earliest one
///   group interval after its previous notification).
///
/// A notification carries the group's unsilenced firing alerts and its unsilenced resolved alerts that were
/// announced firing. Resolved alerts leave the group once a notification carrying them is delivered; a resolution of
/// an alert the receiver never heard of (it fired and resolved within the group wait, or resolved while silenced) is
/// dropped without a notification. An alert that fires again before its resolution went out just stays firing
/// (flapping is not announced). A group without alerts is forgotten. A resolution for an alert the planner does not
/// know at all (its firing predates a restart) is announced, since the receiver probably heard of the firing.
///
/// ``AlertRule/Receiver/alertmanager(_:)`` receivers group alerts themselves, so their groups use no group wait or
/// interval and repeat every ``NotificationPolicy/alertmanagerResendInterval`` (see ``NotificationPolicy``).
///
/// **Silences.** An alert matched by an active silence is left out of notifications; a group whose alerts are all
/// silenced sends nothing. When the silence ends the alert is visible again: announced at the next group interval if
/// the last delivered notification did not carry it, else at the next repeat.
///
/// **Rate limit.** A receiver gets at most ``NotificationPolicy/maxPerMinute`` notifications in any 60 s; the rest
/// wait (oldest due first) and go out as the window frees, with the group's content at that time.
///
/// **Failures.** Each notification is in flight until ``delivered(_:now:)`` or ``failed(_:now:permanent:)``; a group
/// in flight sends nothing else. A retryable failure schedules a retry after exponential backoff, which re-sends the
/// group's *current* content; once ``NotificationPolicy/Retry/giveUpAfter`` has passed since the first attempt, or on
/// a permanent failure, the planner gives up. Giving up loses nothing: the group keeps its alerts and its last
/// delivered state, so its next flush (at least a group interval and the maximum backoff later) carries them again.
///
/// **Rules changing.** A rule's receivers are read when its alerts fire; a resolution also goes to every group that
/// holds the alert, so alerts of deleted rules (which the evaluator resolves) still resolve at their receivers.
public struct NotificationPlanner: Sendable {
    /// What became of a failed notification.
    public enum FailureOutcome: Hashable, Sendable {
        /// A retry is scheduled at that instant; it will be attempt `attempt`.
        case retry(at: WallTime, attempt: Int)
        /// Retries ran out (``NotificationPolicy/Retry/giveUpAfter``) after `attempts` attempts; the group's next
        /// flush carries the alerts again.
        case gaveUp(attempts: Int)
        /// The failure was permanent; not retried. The group's next flush carries the alerts again.
        case dropped(attempts: Int)
        /// The id is not in flight (already reported, or its group is gone).
        case unknown
    }

    /// The policy applied.
    public let policy: NotificationPolicy

    private var groups: [GroupID: Group] = [:]
    private var inFlight: [AlertNotification.ID: GroupID] = [:]
    /// Per receiver, the instants of its notifications within the last minute, oldest first.
    private var recentSends: [AlertRule.Receiver: [WallTime]] = [:]
    private var nextID: UInt64 = 1

    /// How many times an alert was found newly muted by a silence (per receiver group; an alert muted, unmuted and
    /// muted again counts twice). Only grows.
    public private(set) var silencedAlerts = 0

    /// Creates a planner with no groups.
    public init(policy: NotificationPolicy = NotificationPolicy()) {
        self.policy = policy
    }

    /// How many groups exist (including ones in flight).
    public var groupCount: Int { self.groups.count }

    /// How many notifications are in flight.
    public var inFlightCount: Int { self.inFlight.count }

    // MARK: - Input

    /// Records `transitions` at `now`. Firing alerts join the groups of `receivers(rule name)`; resolved alerts
    /// update the groups that hold them (and those receivers' groups). Pending and inactive transitions are ignored.
    public mutating func ingest(
        _ transitions: [AlertTransition], receivers: (String) -> [AlertRule.Receiver], now: WallTime
    ) {
        for transition in transitions {
            var alert = transition.alert
            alert.status = transition.to
            switch transition.to {
            case .firing:
                for receiver in Self.unique(receivers(alert.rule)) {
                    self.addFiring(alert, to: receiver, now: now)
                }
            case .resolved:
                self.addResolved(alert, receivers: Self.unique(receivers(alert.rule)), now: now)
            case .pending, .inactive:
                continue
            }
        }
    }

    private mutating func addFiring(_ alert: Alert, to receiver: AlertRule.Receiver, now: WallTime) {
        let id = self.groupID(receiver, alert.labels)
        var group = self.groups[id] ?? self.newGroup(receiver, alert.labels, now: now)
        if group.lastFlushAt == nil, (alert.firedAt ?? now) + group.timing.groupWait <= now {
            group.firstFlushAt = min(group.firstFlushAt, now)
        }
        group.alerts[alert.labels, default: Entry(alert: alert)].alert = alert
        self.groups[id] = group
    }

    private mutating func addResolved(_ alert: Alert, receivers: [AlertRule.Receiver], now: WallTime) {
        var targets = Set(receivers.map { self.groupID($0, alert.labels) })
        for (id, group) in self.groups where group.alerts[alert.labels] != nil {
            targets.insert(id)
        }
        for id in targets {
            var group = self.groups[id] ?? self.newGroup(id.receiver, alert.labels, now: now)
            if group.alerts[alert.labels] == nil {
                // Its firing predates what the planner knows (a restart): assume the receiver heard of it.
                group.notified.insert(alert.labels)
            }
            group.alerts[alert.labels, default: Entry(alert: alert)].alert = alert
            if group.isIdle { group.dropUnannounced() }
            self.groups[id] = group.alerts.isEmpty && group.isIdle ? nil : group
        }
    }

    // MARK: - Output

    /// The notifications to send at `now`, given the current `silences` (only those active at `now` count). Each is
    /// in flight until reported with ``delivered(_:now:)`` or ``failed(_:now:permanent:)``. Also forgets what no
    /// longer needs a notification (resolutions nobody heard the firing of, silenced resolutions, empty groups).
    public mutating func due(now: WallTime, silences: [Silence]) -> [AlertNotification] {
        let compiled = CompiledSilences(silences, activeAt: now)
        for receiver in Array(self.recentSends.keys) {
            self.pruneSends(of: receiver, now: now)
        }

        var candidates: [(ready: WallTime, id: GroupID)] = []
        for id in Array(self.groups.keys) {
            guard var group = self.groups[id] else { continue }
            self.silencedAlerts += group.refreshMutes(compiled, now: now)
            if group.isIdle {
                group.dropUnannounced()
                group.dropMutedResolutions(now: now)
                if group.alerts.isEmpty {
                    self.groups[id] = nil
                    continue
                }
            }
            self.groups[id] = group
            if let ready = group.readyAt(now: now), ready <= now {
                candidates.append((ready, id))
            }
        }
        candidates.sort {
            ($0.ready, $0.id.key, $0.id.receiver.description) < ($1.ready, $1.id.key, $1.id.receiver.description)
        }

        var notifications: [AlertNotification] = []
        for (_, id) in candidates {
            guard var group = self.groups[id], self.freeAt(id.receiver, now: now) == nil else { continue }
            let content = group.content(now: now)
            guard !content.isEmpty else {
                group.mode = .idle  // a retry with nothing left to say
                self.groups[id] = group
                continue
            }
            let (attempt, since) =
                switch group.mode {
                case .retrying(_, let failures, let since): (failures + 1, since)
                case .idle, .inFlight: (1, now)
                }
            let notificationID = AlertNotification.ID(rawValue: self.nextID)
            self.nextID += 1
            group.mode = .inFlight(
                notificationID, attempt: attempt, since: since,
                firing: Set(content.filter { $0.status == .firing }.map(\.labels)),
                resolved: Set(content.filter { $0.status == .resolved }.map(\.labels)))
            group.lastFlushAt = now
            self.groups[id] = group
            self.inFlight[notificationID] = id
            self.recentSends[id.receiver, default: []].append(now)
            notifications.append(
                AlertNotification(
                    id: notificationID, receiver: id.receiver, groupKey: id.key, groupLabels: group.labels,
                    alerts: content, attempt: attempt))
        }
        return notifications
    }

    /// Records that notification `id` was delivered at `now`: its firing alerts count as announced (for changes
    /// and the repeat interval), its resolved alerts leave the group. Returns `false` when `id` is not in flight.
    @discardableResult
    public mutating func delivered(_ id: AlertNotification.ID, now: WallTime) -> Bool {
        guard let groupID = self.inFlight.removeValue(forKey: id), var group = self.groups[groupID],
            case .inFlight(id, _, _, let firing, let resolved) = group.mode
        else { return false }
        group.mode = .idle
        group.holdUntil = nil
        group.lastDeliveredAt = now
        group.notified = firing
        for labels in resolved where group.alerts[labels]?.alert.status == .resolved {
            group.alerts[labels] = nil
        }
        group.dropUnannounced()
        self.groups[groupID] = group.alerts.isEmpty ? nil : group
        return true
    }

    /// Records that notification `id` failed at `now`. A retryable failure (`permanent` false) schedules a retry
    /// with backoff unless ``NotificationPolicy/Retry/giveUpAfter`` has passed since the first attempt; a permanent
    /// one is not retried. Either way, when the planner gives up, the group waits at least a group interval and the
    /// maximum backoff before its next flush carries the alerts again.
    @discardableResult
    public mutating func failed(_ id: AlertNotification.ID, now: WallTime, permanent: Bool) -> FailureOutcome {
        guard let groupID = self.inFlight.removeValue(forKey: id), var group = self.groups[groupID],
            case .inFlight(id, let attempt, let since, _, _) = group.mode
        else { return .unknown }
        defer { self.groups[groupID] = group }
        let giveUp = permanent || since + self.policy.retry.giveUpAfter <= now
        guard giveUp else {
            let at = now + self.policy.retry.backoff(afterFailures: attempt)
            group.mode = .retrying(at: at, failures: attempt, since: since)
            return .retry(at: at, attempt: attempt + 1)
        }
        group.mode = .idle
        group.lastFlushAt = now
        group.holdUntil = now + max(group.timing.groupInterval, self.policy.retry.maximumBackoff)
        return permanent ? .dropped(attempts: attempt) : .gaveUp(attempts: attempt)
    }

    /// The earliest instant at which ``due(now:silences:)`` may have something to send (or a silence muting an
    /// alert ends), never before `now`; `nil` when nothing is scheduled (no groups, or all in flight). Based on the
    /// silences of the last `due` call; call `due` again when silences change.
    public func nextWake(now: WallTime) -> WallTime? {
        var earliest: WallTime?
        for (id, group) in self.groups {
            guard var ready = group.readyAt(now: now) else { continue }
            if let free = self.freeAt(id.receiver, now: now) {
                ready = max(ready, free)
            }
            earliest = min(earliest ?? ready, ready)
        }
        return earliest.map { max($0, now) }
    }

    // MARK: - Rate limit

    /// When `receiver` may get its next notification, or `nil` if it may now.
    private func freeAt(_ receiver: AlertRule.Receiver, now: WallTime) -> WallTime? {
        guard let limit = self.policy.maxPerMinute, let sends = self.recentSends[receiver] else { return nil }
        let window = Duration.seconds(60)
        let recent = sends.drop(while: { $0 + window <= now })
        guard recent.count >= max(limit, 1) else { return nil }
        return recent[recent.index(recent.endIndex, offsetBy: -max(limit, 1))] + window
    }

    private mutating func pruneSends(of receiver: AlertRule.Receiver, now: WallTime) {
        guard var sends = self.recentSends[receiver] else { return }
        sends.removeAll { $0 + .seconds(60) <= now }
        self.recentSends[receiver] = sends.isEmpty ? nil : sends
    }

    // MARK: - Groups

    private func groupID(_ receiver: AlertRule.Receiver, _ labels: [String: String]) -> GroupID {
        GroupID(receiver: receiver, key: AlertmanagerPayload.groupKey(self.policy.groupLabels(of: labels)))
    }

    private func newGroup(_ receiver: AlertRule.Receiver, _ labels: [String: String], now: WallTime) -> Group {
        Group(labels: self.policy.groupLabels(of: labels), timing: self.policy.timing(for: receiver), now: now)
    }

    private static func unique(_ receivers: [AlertRule.Receiver]) -> [AlertRule.Receiver] {
        var seen: Set<AlertRule.Receiver> = []
        return receivers.filter { seen.insert($0).inserted }
    }
}

// MARK: - Group state

/// A group's identity: its receiver and its group key.
private struct GroupID: Hashable, Sendable {
    var receiver: AlertRule.Receiver
    var key: String
}

/// An alert in a group, with what the last planning pass learnt about silences.
private struct Entry: Hashable, Sendable {
    var alert: Alert
    /// When the silences muting the alert end (as of the last `due`), `nil` when none does.
    var mutedUntil: WallTime?
    /// Whether this stretch of muting was counted in ``NotificationPlanner/silencedAlerts``.
    var countedMute = false

    init(alert: Alert) {
        self.alert = alert
    }

    func isMuted(at now: WallTime) -> Bool {
        self.mutedUntil.map { $0 > now } ?? false
    }
}

/// Where a group is in its send cycle.
private enum Mode: Hashable, Sendable {
    /// Waiting for its next flush.
    case idle
    /// Notification `id` is out; `firing` and `resolved` are the labels of the alerts it carries.
    case inFlight(
        AlertNotification.ID, attempt: Int, since: WallTime, firing: Set<[String: String]>,
        resolved: Set<[String: String]>)
    /// Attempt `failures` failed; the next goes out at `at`. `since` is the first attempt's instant.
    case retrying(at: WallTime, failures: Int, since: WallTime)
}

private struct Group: Sendable {
    var labels: [String: String]
    var timing: NotificationPolicy.Timing
    /// Alerts by labels.
    var alerts: [[String: String]: Entry] = [:]
    /// When the first flush is due.
    var firstFlushAt: WallTime
    /// When the group last sent (any attempt) or gave up.
    var lastFlushAt: WallTime?
    /// When a notification of the group was last delivered.
    var lastDeliveredAt: WallTime?
    /// After giving up: no flush before this.
    var holdUntil: WallTime?
    /// The firing alerts the last delivered notification carried.
    var notified: Set<[String: String]> = []
    var mode = Mode.idle

    init(labels: [String: String], timing: NotificationPolicy.Timing, now: WallTime) {
        self.labels = labels
        self.timing = timing
        self.firstFlushAt = now + timing.groupWait
    }

    var isIdle: Bool { self.mode == .idle }

    /// Updates each alert's mute from `silences`; returns how many alerts became muted.
    mutating func refreshMutes(_ silences: CompiledSilences, now: WallTime) -> Int {
        var newlyMuted = 0
        for labels in Array(self.alerts.keys) {
            guard var entry = self.alerts[labels] else { continue }
            entry.mutedUntil = silences.isEmpty ? nil : silences.mutedUntil(labels)
            if entry.isMuted(at: now) {
                if !entry.countedMute { newlyMuted += 1 }
                entry.countedMute = true
            } else {
                entry.countedMute = false
            }
            self.alerts[labels] = entry
        }
        return newlyMuted
    }

    /// Drops resolved alerts whose firing the receiver never heard of.
    mutating func dropUnannounced() {
        for (labels, entry) in self.alerts where entry.alert.status == .resolved && !self.notified.contains(labels) {
            self.alerts[labels] = nil
        }
    }

    /// Drops resolved alerts that are silenced: their resolution is not announced.
    mutating func dropMutedResolutions(now: WallTime) {
        for (labels, entry) in self.alerts where entry.alert.status == .resolved && entry.isMuted(at: now) {
            self.alerts[labels] = nil
            self.notified.remove(labels)
        }
    }

    /// What a notification at `now` carries: unmuted firing alerts and unmuted announced resolutions, by labels.
    func content(now: WallTime) -> [Alert] {
        self.alerts
            .filter { labels, entry in
                !entry.isMuted(at: now)
                    && (entry.alert.status == .firing
                        || (entry.alert.status == .resolved && self.notified.contains(labels)))
            }
            .map { (key: LabelPair.sorted($0.key), alert: $0.value.alert) }
            .sorted { $0.key.lexicographicallyPrecedes($1.key) }
            .map(\.alert)
    }

    /// When the group next has something to send (or a mute to re-check), given its state at `now`; `nil` when in
    /// flight or when nothing is pending.
    func readyAt(now: WallTime) -> WallTime? {
        switch self.mode {
        case .inFlight:
            return nil
        case .retrying(let at, _, _):
            return at
        case .idle:
            break
        }
        var changed = false
        var firing = false
        var unmuteAt: WallTime?
        for (labels, entry) in self.alerts {
            if entry.isMuted(at: now), let until = entry.mutedUntil {
                unmuteAt = min(unmuteAt ?? until, until)
                continue
            }
            switch entry.alert.status {
            case .firing:
                firing = true
                if !self.notified.contains(labels) { changed = true }
            case .resolved:
                if self.notified.contains(labels) { changed = true }
            case .pending, .inactive:
                break
            }
        }
        var gate = self.lastFlushAt.map { $0 + self.timing.groupInterval } ?? self.firstFlushAt
        if let hold = self.holdUntil { gate = max(gate, hold) }
        var ready: WallTime?
        if changed {
            ready = gate
        } else if firing, let delivered = self.lastDeliveredAt {
            ready = max(gate, delivered + self.timing.repeatInterval)
        }
        switch (ready, unmuteAt) {
        case (let ready?, let unmute?): return min(ready, unmute)
        case (let ready?, nil): return ready
        case (nil, let unmute?): return unmute
        case (nil, nil): return nil
        }
    }
}
