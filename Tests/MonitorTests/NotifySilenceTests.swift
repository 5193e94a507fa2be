import Foundation
import Monitor
import Testing

@Suite struct NotifySilenceTests {
    typealias Matcher = Silence.Matcher

    func silence(_ matchers: [Matcher], from start: Duration = .zero, to end: Duration = .seconds(3600)) -> Silence {
        Silence(id: "s1", matchers: matchers, startsAt: t0 + start, endsAt: t0 + end, createdBy: "ops", comment: "x")
    }

    /// The silence `json` asks for at `t0`, or the error it throws.
    func request(_ json: String) -> Result<Silence, SilenceError> {
        Result { () throws(SilenceError) in try SilenceRequest.decode(Data(json.utf8), id: "s1", now: t0) }
    }

    // MARK: - Matching

    @Test(arguments: [
        (Matcher(name: "mount", value: "/data"), true),
        (Matcher(name: "mount", value: "/"), false),
        (Matcher(name: "mount", value: "/", op: .notEqual), true),
        (Matcher(name: "mount", value: "/da.*", op: .regexMatch), true),
        (Matcher(name: "mount", value: "da.*", op: .regexMatch), false),  // anchored: must match the whole value
        (Matcher(name: "mount", value: "/|/data", op: .regexMatch), true),
        (Matcher(name: "mount", value: "/tmp|/var", op: .regexNoMatch), true),
        (Matcher(name: "mount", value: "/d.*", op: .regexNoMatch), false),
        (Matcher(name: "team", value: ""), true),  // a missing label is the empty value
        (Matcher(name: "team", value: "ops"), false),
        (Matcher(name: "team", value: ".+", op: .regexMatch), false),
        (Matcher(name: "mount", value: "(", op: .regexMatch), false),  // does not compile: matches nothing
    ])
    func test_matcher_againstLabels_followsAlertmanager(matcher: Matcher, expected: Bool) {
        // Given
        let labels = ["alertname": "disk", "mount": "/data"]

        // When / Then
        #expect(matcher.matches(labels) == expected)
    }

    @Test func test_silence_matches_requiresEveryMatcher() {
        // Given
        let both = self.silence([Matcher(name: "alertname", value: "disk"), Matcher(name: "mount", value: "/")])

        // When / Then
        #expect(both.matches(labels: ["alertname": "disk", "mount": "/"]))
        #expect(!both.matches(labels: ["alertname": "disk", "mount": "/data"]))
        #expect(!self.silence([]).matches(labels: ["alertname": "disk"]))
    }

    @Test func test_silence_isActive_fromStartUntilBeforeEnd() {
        // Given
        let silence = self.silence([Matcher(name: "alertname", value: "disk")], from: .seconds(10), to: .seconds(20))

        // When / Then
        #expect(!silence.isActive(at: t0 + .seconds(9)))
        #expect(silence.isActive(at: t0 + .seconds(10)))
        #expect(silence.isActive(at: t0 + .milliseconds(19_999)))
        #expect(!silence.isActive(at: t0 + .seconds(20)))
        #expect(silence.state(at: t0) == .pending)
        #expect(silence.state(at: t0 + .seconds(15)) == .active)
        #expect(silence.state(at: t0 + .seconds(20)) == .expired)
    }

    // MARK: - Validation

    @Test func test_validate_goodSilence_hasNoErrors() {
        #expect(self.silence([Matcher(name: "alertname", value: "disk.*", op: .regexMatch)]).validate().isEmpty)
    }

    @Test func test_validate_problems_nameTheirFields() {
        // Given
        var broken = self.silence(
            [
                Matcher(name: "team", value: "ops|", op: .regexMatch), Matcher(name: "bad-name", value: "x"),
                Matcher(name: "mount", value: "(", op: .regexNoMatch),
            ], from: .seconds(10), to: .seconds(10))
        broken.id = ""

        // When
        let errors = broken.validate()

        // Then
        #expect(errors.map(\.field) == ["id", "matchers[1].name", "matchers[2].value", "ends_at"])
        #expect(errors.last?.message == "ends_at must be after starts_at")
    }

    @Test(arguments: [
        [Matcher(name: "team", value: ".*", op: .regexMatch)],
        [Matcher(name: "team", value: "")],
        [Matcher(name: "team", value: "ops", op: .notEqual), Matcher(name: "env", value: "prod|", op: .regexMatch)],
    ])
    func test_validate_matchersAllMatchingEmpty_rejected(matchers: [Matcher]) {
        // When
        let errors = self.silence(matchers).validate()

        // Then
        #expect(errors.map(\.field) == ["matchers"])
    }

    @Test func test_validate_noMatchers_rejected() {
        #expect(self.silence([]).validate().map(\.field) == ["matchers"])
    }

    // MARK: - JSON form

    @Test func test_codable_snakeCaseFieldsAndMillisecondTimes() throws {
        // Given
        let silence = self.silence([Matcher(name: "mount", value: "/d.*", op: .regexMatch)])

        // When
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = String(decoding: try encoder.encode(silence), as: UTF8.self)

        // Then
        #expect(
            json
                == #"{"comment":"x","created_by":"ops","ends_at":1700003600000,"id":"s1","#
                + #""matchers":[{"name":"mount","op":"=~","value":"/d.*"}],"starts_at":1700000000000}"#)
        #expect(try JSONDecoder().decode(Silence.self, from: Data(json.utf8)) == silence)
    }

    // MARK: - Requests

    @Test func test_request_matcherListAndDuration_makesSilence() throws {
        // When
        let silence = try self.request(
            #"""
            {"matchers": [{"name": "alertname", "value": "disk"}, {"name": "mount", "op": "=~", "value": "/data.*"}],
             "duration": "2h", "comment": "resizing", "created_by": "ops"}
            """#
        ).get()

        // Then
        #expect(
            silence
                == Silence(
                    id: "s1",
                    matchers: [
                        Matcher(name: "alertname", value: "disk"),
                        Matcher(name: "mount", value: "/data.*", op: .regexMatch),
                    ],
                    startsAt: t0, endsAt: t0 + .seconds(7200), createdBy: "ops", comment: "resizing"))
    }

    @Test func test_request_shorthandObjectAndEndsAt_makesEqualityMatchers() throws {
        // When
        let silence = try self.request(#"{"matchers": {"mount": "/", "alertname": "disk"}, "ends_at": 1700000600000}"#)
            .get()

        // Then
        #expect(silence.matchers == [Matcher(name: "alertname", value: "disk"), Matcher(name: "mount", value: "/")])
        #expect(silence.endsAt == t0 + .seconds(600))
        #expect(silence.startsAt == t0)
        #expect(silence.comment == "")
        #expect(silence.createdBy == "")
    }

    @Test func test_request_startsAt_schedulesLaterSilence() throws {
        // When
        let silence = try self.request(
            #"{"matchers": {"alertname": "disk"}, "starts_at": 1700003600000, "duration": "30m"}"#
        ).get()

        // Then
        #expect(silence.startsAt == t0 + .seconds(3600))
        #expect(silence.endsAt == t0 + .seconds(5400))
    }

    @Test(arguments: [
        (#"{"duration": "1h"}"#, "matchers"),
        (#"{"matchers": "disk", "duration": "1h"}"#, "matchers"),
        (#"{"matchers": {"alertname": "disk"}}"#, "duration"),
        (#"{"matchers": {"alertname": "disk"}, "duration": "soon"}"#, "duration"),
        (#"{"matchers": {"alertname": "disk"}, "duration": "0s"}"#, "duration"),
        (#"{"matchers": {"alertname": "disk"}, "duration": "1h", "ends_at": 1700000600000}"#, "ends_at"),
        (#"{"matchers": {"alertname": "disk"}, "ends_at": 1600000000000}"#, "ends_at"),
        (#"{"matchers": {"alertname": "disk"}, "duration": "1h", "duraton": "2h"}"#, "duraton"),
        (#"{"matchers": {"alertname": "disk"}, "duration": "1h", "id": "mine"}"#, "id"),
        (#"{"matchers": [{"name": "alertname"}], "duration": "1h"}"#, "matchers[0].value"),
        (#"{"matchers": [{"name": "alertname", "value": "x", "op": "=="}], "duration": "1h"}"#, "matchers[0].op"),
        (#"{"matchers": [{"name": "a", "value": "x"}, {"name": "b", "value": "(", "op": "=~"}], "duration": "1h"}"#,
         "matchers[1].value"),
        (#"{"matchers": {"team": ""}, "duration": "1h"}"#, "matchers"),
        (#"{"matchers": {}, "duration": "1h"}"#, "matchers"),
        (#"{"matchers": {"alertname": "disk"}, "duration": "1h", "comment": 7}"#, "comment"),
        (#"[1, 2]"#, "body"),
        (#"{"matchers": "#, "body"),
    ])
    func test_request_problems_nameTheField(json: String, field: String) {
        // When
        let result = self.request(json)

        // Then
        guard case .failure(let error) = result else {
            Issue.record("expected an error about \(field), got \(result)")
            return
        }
        #expect(error.field == field, "\(error.message)")
        #expect(error.message.contains(field == "body" ? "JSON object" : field))
    }
}
