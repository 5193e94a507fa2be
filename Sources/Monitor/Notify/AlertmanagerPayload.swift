import Common

// MARK: - Alertmanager payloads

/// The two JSON shapes notifications leave in, both exactly as the Prometheus ecosystem writes them so existing
/// tooling works unchanged:
///
/// - ``Webhook``: the message Alertmanager's webhook receiver POSTs (version 4), sent to
///   ``AlertRule/Receiver/webhook(_:)`` receivers (and logged for ``AlertRule/Receiver/log``).
/// - ``PostableAlert``: an element of the array Prometheus POSTs to Alertmanager's `/api/v2/alerts`, sent to
///   ``AlertRule/Receiver/alertmanager(_:)`` receivers.
///
/// Times are RFC 3339 in UTC with the milliseconds Gossamer keeps (`2023-11-14T22:13:20.5Z`; Go trims trailing zeros
/// the same way). Fingerprints are Prometheus' label-set fingerprint (FNV-1a 64 over the labels sorted by name, each
/// name and value followed by the byte 0xFF) as 16 hex digits, so they equal the ones Alertmanager would compute.
public enum AlertmanagerPayload {
    /// Go's zero time, which Alertmanager writes as `endsAt` of firing alerts in webhook messages.
    public static let zeroTime = "0001-01-01T00:00:00Z"

    // MARK: - Webhook message

    /// The webhook message, version 4:
    ///
    /// ```json
    /// {"receiver": "webhook", "status": "firing", "alerts": [{"status": "firing", "labels": {…},
    ///  "annotations": {…}, "startsAt": "2023-11-14T22:13:20Z", "endsAt": "0001-01-01T00:00:00Z",
    ///  "generatorURL": "http://agent:7700/v1/alerts/rules/disk-full", "fingerprint": "6b3e…"}],
    ///  "groupLabels": {"alertname": "disk-full"}, "commonLabels": {…}, "commonAnnotations": {…},
    ///  "externalURL": "http://agent:7700", "version": "4", "groupKey": "{}:{alertname=\"disk-full\"}",
    ///  "truncatedAlerts": 0}
    /// ```
    public struct Webhook: Codable, Hashable, Sendable {
        /// The receiver's kind (``AlertRule/Receiver/kind``); Alertmanager puts the receiver's configured name here.
        public var receiver: String
        /// `firing` when any alert fires, else `resolved`.
        public var status: String
        /// The alerts, firing and resolved.
        public var alerts: [WebhookAlert]
        /// The labels the group is keyed by.
        public var groupLabels: [String: String]
        /// Labels every alert has with the same value.
        public var commonLabels: [String: String]
        /// Annotations every alert has with the same value.
        public var commonAnnotations: [String: String]
        /// Where the sender can be reached (the agent's HTTP address).
        public var externalURL: String
        /// Always `"4"`.
        public var version: String
        /// Identifies the group: `{}:{alertname="disk-full"}` (route `{}`, then the group labels).
        public var groupKey: String
        /// Alerts left out for a receiver's `max_alerts`; always 0 (Gossamer sends them all).
        public var truncatedAlerts: Int

        /// The message for `notification`. `generatorURL` links an alert to its rule.
        public init(
            notification: AlertNotification, externalURL: String, generatorURL: (Alert) -> String
        ) {
            self.receiver = notification.receiver.kind
            self.status = notification.status.rawValue
            self.alerts = notification.alerts.map { alert in
                WebhookAlert(
                    status: alert.status == .firing ? "firing" : "resolved",
                    labels: alert.labels,
                    annotations: alert.annotations,
                    startsAt: AlertmanagerPayload.rfc3339(alert.firedAt ?? alert.activeAt),
                    endsAt: alert.status == .firing
                        ? AlertmanagerPayload.zeroTime
                        : AlertmanagerPayload.rfc3339(alert.resolvedAt ?? alert.firedAt ?? alert.activeAt),
                    generatorURL: generatorURL(alert),
                    fingerprint: AlertmanagerPayload.fingerprint(alert.labels)
                )
            }
            self.groupLabels = notification.groupLabels
            self.commonLabels = AlertmanagerPayload.common(notification.alerts.map(\.labels))
            self.commonAnnotations = AlertmanagerPayload.common(notification.alerts.map(\.annotations))
            self.externalURL = externalURL
            self.version = "4"
            self.groupKey = notification.groupKey
            self.truncatedAlerts = 0
        }
    }

    /// One alert of a ``Webhook`` message.
    public struct WebhookAlert: Codable, Hashable, Sendable {
        /// `firing` or `resolved`.
        public var status: String
        /// The alert's labels.
        public var labels: [String: String]
        /// The alert's annotations, rendered at its latest transition.
        public var annotations: [String: String]
        /// When it started firing.
        public var startsAt: String
        /// When it resolved; ``AlertmanagerPayload/zeroTime`` while firing.
        public var endsAt: String
        /// A link to the rule.
        public var generatorURL: String
        /// ``AlertmanagerPayload/fingerprint(_:)`` of the labels.
        public var fingerprint: String

        /// Creates an alert entry.
        public init(
            status: String, labels: [String: String], annotations: [String: String], startsAt: String,
            endsAt: String, generatorURL: String, fingerprint: String
        ) {
            self.status = status
            self.labels = labels
            self.annotations = annotations
            self.startsAt = startsAt
            self.endsAt = endsAt
            self.generatorURL = generatorURL
            self.fingerprint = fingerprint
        }
    }

    // MARK: - API v2 postable alert

    /// One element of the body of Alertmanager's `POST /api/v2/alerts` (`postableAlert` in its OpenAPI spec):
    ///
    /// ```json
    /// [{"labels": {…}, "annotations": {…}, "startsAt": "2023-11-14T22:13:20Z",
    ///   "endsAt": "2023-11-14T22:17:20Z", "generatorURL": "http://agent:7700/v1/alerts/rules/disk-full"}]
    /// ```
    ///
    /// As Prometheus does, a firing alert carries an `endsAt` a few resend intervals ahead: Alertmanager resolves it
    /// on its own if the sender stops re-sending (an agent that died does not leave alerts firing forever), and the
    /// sender re-sends every resend interval while it fires. A resolved alert carries its resolution time.
    public struct PostableAlert: Codable, Hashable, Sendable {
        /// The alert's labels (Alertmanager identifies alerts by them).
        public var labels: [String: String]
        /// The alert's annotations.
        public var annotations: [String: String]
        /// When it started firing.
        public var startsAt: String
        /// When it resolved, or until when the firing alert stays valid without being re-sent.
        public var endsAt: String
        /// A link to the rule.
        public var generatorURL: String

        /// Creates an alert entry.
        public init(
            labels: [String: String], annotations: [String: String], startsAt: String, endsAt: String,
            generatorURL: String
        ) {
            self.labels = labels
            self.annotations = annotations
            self.startsAt = startsAt
            self.endsAt = endsAt
            self.generatorURL = generatorURL
        }

        /// The postable alerts for `notification` sent at `now`; firing alerts stay valid until `now + validFor`.
        public static func alerts(
            for notification: AlertNotification, now: WallTime, validFor: Duration, generatorURL: (Alert) -> String
        ) -> [PostableAlert] {
            notification.alerts.map { alert in
                PostableAlert(
                    labels: alert.labels,
                    annotations: alert.annotations,
                    startsAt: AlertmanagerPayload.rfc3339(alert.firedAt ?? alert.activeAt),
                    endsAt: AlertmanagerPayload.rfc3339(
                        alert.status == .firing ? now + validFor : alert.resolvedAt ?? now),
                    generatorURL: generatorURL(alert)
                )
            }
        }
    }

    // MARK: - Helpers

    /// `time` in RFC 3339, UTC, with milliseconds only when non-zero and without trailing zeros:
    /// `2023-11-14T22:13:20Z`, `2023-11-14T22:13:20.5Z`, `2023-11-14T22:13:20.123Z`.
    public static func rfc3339(_ time: WallTime) -> String {
        Timestamps.rfc3339(millis: time.millisecondsSinceEpoch)
    }

    /// Prometheus' fingerprint of a label set as 16 lower-case hex digits: FNV-1a 64 over the labels sorted by name
    /// (byte order), each name and value followed by the separator byte 0xFF; the empty set hashes to the FNV offset
    /// basis. Stable across processes and versions, and equal to the `fingerprint` Alertmanager sends.
    public static func fingerprint(_ labels: [String: String]) -> String {
        let prime: UInt64 = 1_099_511_628_211
        var hash: UInt64 = 14_695_981_039_346_656_037
        func add(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash &*= prime
        }
        for name in labels.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            name.utf8.forEach(add)
            add(0xFF)
            (labels[name] ?? "").utf8.forEach(add)
            add(0xFF)
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// Alertmanager's group key for the root route: `{}:` then the group labels as Prometheus prints a label set,
    /// `{alertname="disk-full", team="ops"}` (sorted by name, values quoted as Go's `strconv.Quote` does).
    public static func groupKey(_ groupLabels: [String: String]) -> String {
        let pairs = groupLabels.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).map { name in
            "\(name)=\(Self.quote(groupLabels[name] ?? ""))"
        }
        return "{}:{\(pairs.joined(separator: ", "))}"
    }

    /// The entries every map has with the same value; empty when there are no maps.
    static func common(_ maps: [[String: String]]) -> [String: String] {
        guard var common = maps.first else { return [:] }
        for map in maps.dropFirst() {
            common = common.filter { map[$0.key] == $0.value }
        }
        return common
    }

    /// `text` in double quotes with `"`, `\` and control characters escaped, as Go's `strconv.Quote`.
    static func quote(_ text: String) -> String {
        var quoted = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": quoted += "\\\""
            case "\\": quoted += "\\\\"
            case "\n": quoted += "\\n"
            case "\r": quoted += "\\r"
            case "\t": quoted += "\\t"
            case "\u{07}": quoted += "\\a"
            case "\u{08}": quoted += "\\b"
            case "\u{0C}": quoted += "\\f"
            case "\u{0B}": quoted += "\\v"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                quoted += "\\x" + (hex.count < 2 ? "0" + hex : hex)
            default: quoted.unicodeScalars.append(scalar)
            }
        }
        return quoted + "\""
    }
}
