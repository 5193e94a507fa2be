import Foundation
import Monitor
import Testing

@Suite struct NotifyPayloadTests {
    /// A group of two disk alerts: `/` firing since t0, `/data` resolved at t0 + 90.5 s.
    func diskNotification(receiver: AlertRule.Receiver = hook) -> AlertNotification {
        let firing = Alert(
            rule: "disk", status: .firing, labels: ["alertname": "disk", "mount": "/", "severity": "critical"],
            annotations: ["summary": "disk full", "runbook": "http://wiki/disk"], value: 0.95, activeAt: t0,
            firedAt: t0)
        let resolved = Alert(
            rule: "disk", status: .resolved, labels: ["alertname": "disk", "mount": "/data", "severity": "critical"],
            annotations: ["summary": "disk full"], value: 0.5, activeAt: t0, firedAt: t0,
            resolvedAt: t0 + .milliseconds(90_500))
        return AlertNotification(
            id: AlertNotification.ID(rawValue: 1), receiver: receiver, groupKey: #"{}:{alertname="disk"}"#,
            groupLabels: ["alertname": "disk"], alerts: [firing, resolved], attempt: 1)
    }

    func generatorURL(_ alert: Alert) -> String {
        "http://agent:7700/v1/alerts/rules/\(alert.rule)"
    }

    func json(_ payload: NotificationPayload) throws -> String {
        String(decoding: try WebhookSender.jsonBody(payload), as: UTF8.self)
    }

    // MARK: - Webhook message

    @Test func test_webhook_goldenJSON_matchesAlertmanagerVersion4() throws {
        // Given
        let payload = NotificationPayload(
            self.diskNotification(), externalURL: "http://agent:7700", generatorURL: self.generatorURL, now: t0,
            alertmanagerResendInterval: .seconds(60))

        // When
        let json = try self.json(payload)

        // Then
        let expected = """
            {"alerts":[\
            {"annotations":{"runbook":"http://wiki/disk","summary":"disk full"},"endsAt":"0001-01-01T00:00:00Z",\
            "fingerprint":"fb1146e2e47d9cad","generatorURL":"http://agent:7700/v1/alerts/rules/disk",\
            "labels":{"alertname":"disk","mount":"/","severity":"critical"},"startsAt":"2023-11-14T22:13:20Z",\
            "status":"firing"},\
            {"annotations":{"summary":"disk full"},"endsAt":"2023-11-14T22:14:50.5Z",\
            "fingerprint":"91379690ec493cbd","generatorURL":"http://agent:7700/v1/alerts/rules/disk",\
            "labels":{"alertname":"disk","mount":"/data","severity":"critical"},"startsAt":"2023-11-14T22:13:20Z",\
            "status":"resolved"}],\
            "commonAnnotations":{"summary":"disk full"},"commonLabels":{"alertname":"disk","severity":"critical"},\
            "externalURL":"http://agent:7700","groupKey":"{}:{alertname=\\"disk\\"}",\
            "groupLabels":{"alertname":"disk"},"receiver":"webhook","status":"firing","truncatedAlerts":0,\
            "version":"4"}
            """
        #expect(json == expected)
    }

    @Test func test_webhook_allResolved_statusResolved() throws {
        // Given
        var notification = self.diskNotification()
        notification.alerts.removeFirst()

        // When
        let message = AlertmanagerPayload.Webhook(
            notification: notification, externalURL: "", generatorURL: self.generatorURL)

        // Then
        #expect(message.status == "resolved")
        #expect(message.alerts.map(\.endsAt) == ["2023-11-14T22:14:50.5Z"])
        #expect(message.commonLabels == notification.alerts[0].labels)
    }

    @Test func test_webhook_decodesBack() throws {
        // Given
        let message = AlertmanagerPayload.Webhook(
            notification: self.diskNotification(), externalURL: "http://agent:7700", generatorURL: self.generatorURL)

        // When
        let decoded = try JSONDecoder().decode(
            AlertmanagerPayload.Webhook.self, from: Data(try WebhookSender.jsonBody(.webhook(message))))

        // Then
        #expect(decoded == message)
    }

    // MARK: - API v2 alerts

    @Test func test_postableAlerts_firingValidForFourResendIntervals() throws {
        // Given
        let notification = self.diskNotification(receiver: .alertmanager("http://am:9093"))

        // When
        let payload = NotificationPayload(
            notification, externalURL: "http://agent:7700", generatorURL: self.generatorURL, now: t0 + .seconds(100),
            alertmanagerResendInterval: .seconds(60))

        // Then
        let expected = """
            [{"annotations":{"runbook":"http://wiki/disk","summary":"disk full"},"endsAt":"2023-11-14T22:19:00Z",\
            "generatorURL":"http://agent:7700/v1/alerts/rules/disk",\
            "labels":{"alertname":"disk","mount":"/","severity":"critical"},"startsAt":"2023-11-14T22:13:20Z"},\
            {"annotations":{"summary":"disk full"},"endsAt":"2023-11-14T22:14:50.5Z",\
            "generatorURL":"http://agent:7700/v1/alerts/rules/disk",\
            "labels":{"alertname":"disk","mount":"/data","severity":"critical"},"startsAt":"2023-11-14T22:13:20Z"}]
            """
        #expect(try self.json(payload) == expected)
    }

    @Test func test_payload_logReceiver_usesWebhookMessage() {
        // When
        let payload = NotificationPayload(
            self.diskNotification(receiver: .log), externalURL: "", generatorURL: self.generatorURL, now: t0,
            alertmanagerResendInterval: .seconds(60))

        // Then
        guard case .webhook(let message) = payload else {
            Issue.record("expected a webhook message, got \(payload)")
            return
        }
        #expect(message.receiver == "log")
    }

    // MARK: - Helpers

    @Test(arguments: [
        (Int64(1_700_000_000_000), "2023-11-14T22:13:20Z"),
        (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
        (1_700_000_000_120, "2023-11-14T22:13:20.12Z"),
        (0, "1970-01-01T00:00:00Z"),
        (-1000, "1969-12-31T23:59:59Z"),
        (951_782_400_000, "2000-02-29T00:00:00Z"),
    ])
    func test_rfc3339_formatsUTCWithTrimmedMilliseconds(milliseconds: Int64, expected: String) {
        #expect(AlertmanagerPayload.rfc3339(WallTime(millisecondsSinceEpoch: milliseconds)) == expected)
    }

    @Test func test_fingerprint_isPrometheusLabelSetFingerprint() {
        // Then: FNV-1a 64 over sorted name 0xFF value 0xFF, as prometheus/common's labelSetToFingerprint
        #expect(AlertmanagerPayload.fingerprint([:]) == "cbf29ce484222325")
        #expect(
            AlertmanagerPayload.fingerprint(["severity": "critical", "mount": "/", "alertname": "disk"])
                == "fb1146e2e47d9cad")
        #expect(AlertmanagerPayload.fingerprint(["a": "b"]).count == 16)
    }

    @Test func test_groupKey_quotesValuesLikeGo() {
        #expect(AlertmanagerPayload.groupKey([:]) == "{}:{}")
        #expect(
            AlertmanagerPayload.groupKey(["team": "o\"p\\s", "alertname": "disk\n"])
                == #"{}:{alertname="disk\n", team="o\"p\\s"}"#)
    }
}
