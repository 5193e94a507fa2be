import Foundation
import Monitor
import Testing

@Suite struct NotifyReceiverTests {
    func rule(receivers json: String) throws -> AlertRule {
        let text = #"{"name": "disk", "metric": "gossamer_disk_used_ratio", "op": ">", "threshold": 0.9, "receivers": "#
        return try JSONDecoder().decode(AlertRule.self, from: Data((text + json + "}").utf8))
    }

    func errors(receivers json: String) -> [RuleError] {
        do {
            _ = try self.rule(receivers: json)
            return []
        } catch let error as RuleDecodingError {
            return error.errors
        } catch {
            Issue.record("unexpected error \(error)")
            return []
        }
    }

    @Test func test_decode_everyReceiverKind() throws {
        // When
        let rule = try self.rule(
            receivers: #"[{"webhook": "http://h/hook"}, {"alertmanager": "http://am:9093"}, {"log": true}]"#)

        // Then
        #expect(rule.receivers == [.webhook("http://h/hook"), .alertmanager("http://am:9093"), .log])
        #expect(rule.validate().isValid)
        #expect(rule.receivers.map(\.kind) == ["webhook", "alertmanager", "log"])
        #expect(rule.receivers.map(\.description) == ["webhook http://h/hook", "alertmanager http://am:9093", "log"])
    }

    @Test func test_encode_receivers_roundTrip() throws {
        // Given
        let rule = try self.rule(receivers: #"[{"alertmanager": "http://am:9093"}, {"log": true}]"#)

        // When
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = String(decoding: try encoder.encode(rule), as: UTF8.self)

        // Then
        #expect(json.contains(#""receivers":[{"alertmanager":"http://am:9093"},{"log":true}]"#))
        #expect(try JSONDecoder().decode(AlertRule.self, from: Data(json.utf8)) == rule)
    }

    @Test(arguments: [
        (#"[{"log": false}]"#, "receivers[0].log"),
        (#"[{"log": "yes"}]"#, "receivers[0].log"),
        (#"[{"alertmanager": 9093}]"#, "receivers[0].alertmanager"),
        (#"[{"webhook": true}]"#, "receivers[0].webhook"),
        (#"[{"log": true}, {"email": "ops@example.com"}]"#, "receivers[1]"),
        (#"[{"log": true, "webhook": "http://h/x"}]"#, "receivers[0]"),
        (#"{"log": true}"#, "receivers"),
    ])
    func test_decode_badReceiver_namesField(json: String, field: String) {
        #expect(self.errors(receivers: json).map(\.field) == [field])
    }

    @Test func test_validate_alertmanagerURL_mustBeHTTP() {
        // Given
        var rule = AlertRule(name: "disk", metric: "gossamer_disk_used_ratio", op: .greaterThan, threshold: 0.9)
        rule.receivers = [.log, .alertmanager("am:9093")]

        // When
        let errors = rule.validate().errors

        // Then
        #expect(errors.map(\.field) == ["receivers[1].alertmanager"])
        #expect(errors.first?.message == "receivers[1].alertmanager must be an http:// or https:// URL, not 'am:9093'")
    }
}
