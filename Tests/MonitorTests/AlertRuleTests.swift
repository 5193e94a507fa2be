import Foundation
import Monitor
import Testing

@Suite struct AlertRuleTests {
    static let fullExample = #"""
        {"name": "disk-full", "metric": "gossamer_disk_used_ratio", "match": {"mount": "/"}, "aggregate": "max",
         "op": ">", "threshold": 0.9, "recover": 0.85, "for": "5m", "keep_firing_for": "0s", "interval": "15s",
         "no_data": "ok", "severity": "critical", "labels": {"team": "ops"},
         "annotations": {"summary": "disk {{ $labels.mount }} at {{ $value }}"},
         "receivers": [{"webhook": "http://127.0.0.1:9000/hook"}]}
        """#

    func decode(_ json: String) throws -> AlertRule {
        try JSONDecoder().decode(AlertRule.self, from: Data(json.utf8))
    }

    /// The field errors decoding `json` throws, or `[]` if it decodes.
    func decodingErrors(_ json: String) -> [RuleError] {
        do {
            _ = try self.decode(json)
            return []
        } catch let error as RuleDecodingError {
            return error.errors
        } catch {
            Issue.record("unexpected error \(error)")
            return []
        }
    }

    // MARK: - Decoding

    @Test func test_decode_fullExample_readsEveryField() throws {
        // When
        let rule = try self.decode(Self.fullExample)

        // Then
        #expect(
            rule
                == AlertRule(
                    name: "disk-full",
                    metric: "gossamer_disk_used_ratio",
                    match: ["mount": "/"],
                    aggregate: .max,
                    op: .greaterThan,
                    threshold: 0.9,
                    recover: 0.85,
                    for: .seconds(300),
                    keepFiringFor: .zero,
                    interval: .seconds(15),
                    noData: .ok,
                    severity: .critical,
                    labels: ["team": "ops"],
                    annotations: ["summary": "disk {{ $labels.mount }} at {{ $value }}"],
                    receivers: [.webhook("http://127.0.0.1:9000/hook")]
                )
        )
        #expect(rule.validate().isValid)
    }

    @Test func test_decode_requiredFieldsOnly_appliesDefaults() throws {
        // When
        let rule = try self.decode(
            #"{"name": "r", "metric": "gossamer_x", "op": "<=", "threshold": 3, "recover": null}"#)

        // Then
        #expect(rule == AlertRule(name: "r", metric: "gossamer_x", op: .lessThanOrEqual, threshold: 3))
        #expect(rule.aggregate == .none)
        #expect(rule.noData == .ok)
        #expect(rule.severity == .warning)
        #expect(rule.forDuration == .zero)
        #expect(rule.interval == nil)
    }

    @Test func test_encode_decodedAgain_givesTheSameRule() throws {
        // Given
        var rule = try self.decode(Self.fullExample)
        rule.forDuration = .seconds(5430)
        rule.keepFiringFor = .milliseconds(1500)
        rule.noData = .nodata
        rule.noDataAfter = 5

        // When
        let json = try JSONEncoder().encode(rule)
        let decoded = try JSONDecoder().decode(AlertRule.self, from: json)

        // Then
        #expect(decoded == rule)
        let text = String(decoding: json, as: UTF8.self)
        #expect(text.contains(#""for":"1h30m30s""#))
        #expect(text.contains(#""keep_firing_for":"1s500ms""#))
        #expect(text.contains(#""no_data_after":5"#))
    }

    @Test func test_decode_unknownComparison_errorNamesTheField() {
        // When
        let errors = self.decodingErrors(#"{"name": "r", "metric": "gossamer_x", "op": "=>", "threshold": 1}"#)

        // Then
        #expect(errors == [RuleError(field: "op", "op must be one of > >= < <= == !=, not '=>'")])
    }

    @Test func test_decode_manyShapeProblems_reportsEveryFieldAtOnce() {
        // Given
        let json = #"""
            {"name": 7, "op": ">", "threshold": "high", "for": "5 minutes", "aggregate": "mean", "no_data": "maybe",
             "severity": "page", "labels": {"team": 1}, "receivers": [{"email": "ops@example.com"}], "treshold": 1}
            """#

        // When
        let errors = self.decodingErrors(json)

        // Then
        #expect(
            errors.map(\.field) == [
                "name", "metric", "aggregate", "threshold", "for", "no_data", "severity", "labels", "receivers[0]",
                "treshold",
            ]
        )
        #expect(errors.first { $0.field == "metric" }?.message == "metric is required")
        #expect(errors.first { $0.field == "threshold" }?.message == "threshold must be a number")
        #expect(
            errors.first { $0.field == "for" }?.message
                == "for must be a duration such as 30s, 5m or 1h30m, not '5 minutes'")
        #expect(
            errors.first { $0.field == "aggregate" }?.message
                == "aggregate must be one of none sum avg max min, not 'mean'")
        #expect(errors.first { $0.field == "treshold" }?.message == "unknown field 'treshold'")
    }

    @Test(arguments: [
        ("30s", Duration.seconds(30)), ("5m", .seconds(300)), ("1h30m", .seconds(5400)), ("250ms", .milliseconds(250)),
        ("1d", .seconds(86_400)), ("1.5s", .milliseconds(1500)), ("90", .seconds(90)), ("0s", .zero),
    ])
    func test_decode_durationText_parses(text: String, expected: Duration) throws {
        // When
        let rule = try self.decode(
            #"{"name": "r", "metric": "gossamer_x", "op": ">", "threshold": 1, "for": "\#(text)"}"#)

        // Then
        #expect(rule.forDuration == expected)
    }

    @Test(arguments: ["", "5", "-5s", "5x", "m", "5 m", "1.2.3s", "inf", "1e20s"])
    func test_decode_badDurationText_isAnErrorOnTheField(text: String) {
        // When
        let errors = self.decodingErrors(
            #"{"name": "r", "metric": "gossamer_x", "op": ">", "threshold": 1, "interval": "\#(text)"}"#)

        // Then
        if text == "5" {
            #expect(errors.isEmpty, "a bare number is seconds")
        } else {
            #expect(errors.map(\.field) == ["interval"])
        }
    }

    // MARK: - Validation

    @Test func test_validate_unknownMetric_isAWarningNotAnError() {
        // Given
        let rule = AlertRule(name: "r", metric: "gossamer_nothing", op: .greaterThan, threshold: 1)

        // When
        let validation = rule.validate(knownMetrics: ["gossamer_something"])

        // Then
        #expect(validation.isValid)
        #expect(validation.warnings.map(\.field) == ["metric"])
        #expect(rule.validate(knownMetrics: ["gossamer_nothing"]).warnings.isEmpty)
    }

    @Test(arguments: [
        (AlertRule.Comparison.greaterThan, 0.95),
        (.greaterThanOrEqual, 0.95),
        (.lessThan, 0.85),
        (.lessThanOrEqual, 0.85),
        (.equal, 0.9),
        (.notEqual, 0.9),
    ])
    func test_validate_recoverOnTheUnsafeSideOrWithEquality_isAnError(op: AlertRule.Comparison, recover: Double) {
        // Given
        let rule = AlertRule(name: "r", metric: "gossamer_x", op: op, threshold: 0.9, recover: recover)

        // When
        let validation = rule.validate()

        // Then
        #expect(validation.errors.map(\.field) == ["recover"])
    }

    @Test(arguments: [
        (AlertRule.Comparison.greaterThan, 0.85), (.greaterThanOrEqual, 0.9), (.lessThan, 0.95),
        (.lessThanOrEqual, 0.9),
    ])
    func test_validate_recoverOnTheSafeSide_isValid(op: AlertRule.Comparison, recover: Double) {
        #expect(AlertRule(name: "r", metric: "gossamer_x", op: op, threshold: 0.9, recover: recover).validate().isValid)
    }

    @Test func test_validate_recoverErrorMessage_explainsTheSide() {
        // When
        let errors = AlertRule(name: "r", metric: "gossamer_x", op: .greaterThan, threshold: 0.9, recover: 0.95)
            .validate().errors

        // Then
        #expect(
            errors.map(\.message) == [
                "recover must be at most the threshold 0.9 for op '>': a firing alert resolves once the value is no longer > recover"
            ]
        )
    }

    /// Rules each broken in one field, and the field the error must name.
    static let brokenRules: [(String, AlertRule)] = {
        let base = AlertRule(name: "ok", metric: "gossamer_x", op: .greaterThan, threshold: 1)
        func broken(_ change: (inout AlertRule) -> Void) -> AlertRule {
            var rule = base
            change(&rule)
            return rule
        }
        return [
            ("name", broken { $0.name = "" }),
            ("name", broken { $0.name = "has space" }),
            ("name", broken { $0.name = String(repeating: "a", count: 129) }),
            ("metric", broken { $0.metric = "gossamer-x" }),
            ("match.bad-label", broken { $0.match = ["bad-label": "x"] }),
            ("threshold", broken { $0.threshold = .nan }),
            ("threshold", broken { $0.threshold = .infinity }),
            ("for", broken { $0.forDuration = .seconds(-1) }),
            ("keep_firing_for", broken { $0.keepFiringFor = .seconds(-1) }),
            ("interval", broken { $0.interval = .milliseconds(500) }),
            ("no_data_after", broken { $0.noDataAfter = 3 }),
            (
                "no_data_after",
                broken {
                    $0.noData = .nodata
                    $0.noDataAfter = 0
                }
            ),
            ("labels.alertname", broken { $0.labels = ["alertname": "x"] }),
            ("labels.severity", broken { $0.labels = ["severity": "x"] }),
            ("labels.a.b", broken { $0.labels = ["a.b": "x"] }),
            ("annotations.summary", broken { $0.annotations = ["summary": "at {{ $valu }}"] }),
            ("annotations.summary", broken { $0.annotations = ["summary": "at {{ $value "] }),
            ("annotations.bad name", broken { $0.annotations = ["bad name": "x"] }),
            ("receivers[0].webhook", broken { $0.receivers = [.webhook("ftp://host/x")] }),
            ("receivers[1].webhook", broken { $0.receivers = [.webhook("https://ok/x"), .webhook("http:///nohost")] }),
        ]
    }()

    @Test(arguments: brokenRules)
    func test_validate_brokenField_errorNamesTheField(field: String, rule: AlertRule) {
        // When
        let validation = rule.validate()

        // Then
        #expect(validation.errors.map(\.field) == [field])
        #expect(!validation.isValid)
    }

    @Test func test_validate_badTemplate_messageSaysWhatIsAccepted() {
        // When
        let errors = AlertRule(
            name: "r", metric: "gossamer_x", op: .greaterThan, threshold: 1,
            annotations: ["summary": "{{ humanize $value }}"]
        ).validate().errors

        // Then
        #expect(
            errors.map(\.message) == [
                "annotations.summary: unknown template expression '{{ humanize $value }}'; use {{ $value }} or {{ $labels.<name> }}"
            ]
        )
    }
}
