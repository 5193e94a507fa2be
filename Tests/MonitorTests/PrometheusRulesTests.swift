import Foundation
import Monitor
import Testing

@Suite struct PrometheusRulesTests {
    static func file(_ json: String) throws -> PrometheusRuleFile {
        try JSONDecoder().decode(PrometheusRuleFile.self, from: Data(json.utf8))
    }

    @Test func translatesThresholdExpressions() throws {
        let file = try Self.file(
            """
            {"groups": [{"name": "g", "interval": "30s", "rules": [
              {"alert": "DiskFull", "expr": "gossamer_disk_used_ratio{mount=\\"/\\"} > 0.9", "for": "5m",
               "labels": {"severity": "critical", "team": "ops"}, "annotations": {"summary": "disk {{ $labels.mount }}"}},
              {"alert": "Dead", "expr": "max(gossamer_members{state='dead'}) >= 1"},
              {"record": "job:x:sum", "expr": "sum(x)"},
              {"alert": "Bare", "expr": "gossamer_gossip_local_health!=0"}
            ]}]}
            """)
        let translation = try file.translate()
        #expect(translation.skipped == ["job:x:sum"])
        #expect(translation.rules.count == 3)
        let disk = translation.rules[0]
        #expect(disk.name == "DiskFull")
        #expect(disk.metric == "gossamer_disk_used_ratio")
        #expect(disk.match == ["mount": "/"])
        #expect(disk.op == .greaterThan && disk.threshold == 0.9)
        #expect(disk.forDuration == .seconds(300))
        #expect(disk.interval == .seconds(30))
        #expect(disk.severity == .critical)
        #expect(disk.labels == ["team": "ops"])
        #expect(disk.validate(knownMetrics: []).isValid)
        let dead = translation.rules[1]
        #expect(dead.aggregate == .max && dead.op == .greaterThanOrEqual && dead.threshold == 1 && dead.match == ["state": "dead"])
        #expect(translation.rules[2].op == .notEqual && translation.rules[2].threshold == 0)
    }

    /// Expressions a threshold rule cannot express are refused together, each naming its rule and field.
    @Test func refusesWhatItCannotTranslate() throws {
        let file = try Self.file(
            """
            {"groups": [{"name": "g", "rules": [
              {"alert": "Rate", "expr": "rate(http_requests_total[5m]) > 10"},
              {"alert": "Regex", "expr": "up{job=~\\"api.*\\"} == 0"},
              {"alert": "Math", "expr": "a / b > 1"},
              {"alert": "Fine", "expr": "up == 0"}
            ]}]}
            """)
        #expect {
            try file.translate()
        } throws: { error in
            let errors = (error as? RuleDecodingError)?.errors ?? []
            return errors.map(\.field) == ["groups[0].rules[0].expr", "groups[0].rules[1].expr", "groups[0].rules[2].expr"]
                && errors[0].message.contains("alert Rate")
        }
    }
}
