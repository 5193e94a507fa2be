import Foundation
import Monitor
import Testing

@Suite struct AlertLogTests {
    /// A pending alert saved to a real SQLite file is there after reopening, and still fires at `activeAt + for`
    /// (pending timers survive a restart); transitions come back newest first and are trimmed to the limit.
    @Test func stateAndHistorySurviveReopening() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("alertlog-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("alerts.sqlite").path
        let rule = testRule(for: .seconds(300))
        let evaluator = AlertEvaluator()
        let high = [sample("gossamer_test_value", [:], 0.95)]

        var settings = AlertLog.Settings()
        settings.keepTransitions = 3
        do {
            let log = try AlertLog(path: path, settings: settings)
            let (state, transitions) = evaluator.evaluate(rules: [rule], samples: high, now: t0, state: AlertState())
            #expect(transitions.map(\.to) == [.pending])
            try await log.save(state, transitions: transitions, at: t0)
        }

        let reopened = try AlertLog(path: path, settings: settings)
        let restored = try #require(try await reopened.loadState())
        #expect(restored.alerts.map(\.status) == [.pending])
        let early = evaluator.evaluate(rules: [rule], samples: high, now: t0 + .seconds(299), state: restored)
        #expect(early.transitions.isEmpty)
        let due = evaluator.evaluate(rules: [rule], samples: high, now: t0 + .seconds(300), state: early.state)
        #expect(due.transitions.map(\.to) == [.firing])
        try await reopened.save(due.state, transitions: due.transitions, at: t0 + .seconds(300))

        var state = due.state
        for step in 1...3 {
            let value = step % 2 == 1 ? 0.1 : 0.95
            let now = t0 + .seconds(300 + step * 15)
            let round = evaluator.evaluate(rules: [rule], samples: [sample("gossamer_test_value", [:], value)], now: now, state: state)
            state = round.state
            try await reopened.save(state, transitions: round.transitions, at: now)
        }
        let history = try await reopened.history(limit: 10)
        #expect(history.count == 3)
        #expect(try await reopened.transitionCount() == 3)
        // Newest first: 0.1 resolved it, 0.95 made it pending again, 0.1 ended the pending alert.
        #expect(history.map(\.to) == [.inactive, .pending, .resolved])
        #expect(history.map(\.at) == history.map(\.at).sorted(by: >))
        #expect(try await reopened.history(rule: "other", limit: 10).isEmpty)
    }

    /// A state file written by something else (not decodable) means a fresh start, not a refusal to start.
    @Test func unreadableStateStartsFresh() async throws {
        let log = try AlertLog(path: nil)
        #expect(try await log.loadState() == nil)
    }
}

@Suite struct AlertJSONTests {
    /// The hand-written JSON decodes (with the `Codable` conformances) to the very state and transitions it was
    /// written from, awkward text and non-finite values included.
    @Test func handWrittenJSON_decodesToTheSameValues() throws {
        var rule = testRule(
            name: "odd \"name\"\n", match: ["path": "/a\\b"], labels: ["team": "ops ✓", "ctl": "\u{01}"],
            annotations: ["summary": "value {{ $value }} on {{ $labels.host }}"])
        rule.noData = .nodata
        rule.noDataAfter = 1
        var aggregate = testRule(name: "sum", aggregate: .sum, threshold: 1, for: .seconds(60))
        aggregate.keepFiringFor = .seconds(30)
        let evaluator = AlertEvaluator()
        var state = AlertState()
        var transitions: [AlertTransition] = []
        let rounds: [[Sample]] = [
            [sample("gossamer_test_value", ["host": "a\"b", "path": "/a\\b"], .infinity), sample("gossamer_test_value", ["host": "c"], 0.95)],
            [sample("gossamer_test_value", ["host": "a\"b", "path": "/a\\b"], 1.5e-7), sample("gossamer_test_value", ["host": "c"], 12345.678)],
            [],
        ]
        for (index, samples) in rounds.enumerated() {
            let round = evaluator.evaluate(rules: [rule, aggregate], samples: samples, now: t0 + .seconds(60 * index), state: state)
            state = round.state
            transitions += round.transitions
            let decoded = try JSONDecoder().decode(AlertState.self, from: Data(state.jsonText().utf8))
            #expect(decoded == state)
        }
        #expect(transitions.count >= 4)
        for transition in transitions {
            let decoded = try JSONDecoder().decode(AlertTransition.self, from: Data(transition.jsonText().utf8))
            #expect(decoded == transition)
        }
    }
}
