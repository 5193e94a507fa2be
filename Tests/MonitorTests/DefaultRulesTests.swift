import Monitor
import Testing

@Suite struct DefaultRulesTests {
    /// Each default rule with samples that must make it fire and samples that must keep it quiet.
    static let cases: [(rule: AlertRule, bad: [Sample], good: [Sample])] = [
        (
            DefaultRules.memberDead,
            [sample("gossamer_members", ["state": "dead"], 1), sample("gossamer_members", ["state": "alive"], 4)],
            [sample("gossamer_members", ["state": "dead"], 0), sample("gossamer_members", ["state": "alive"], 5)]
        ),
        (
            DefaultRules.localHealthDegraded,
            [sample("gossamer_gossip_local_health", [:], 2)],
            [sample("gossamer_gossip_local_health", [:], 0)]
        ),
        (
            DefaultRules.diskFull,
            [
                sample("gossamer_disk_used_ratio", ["mount": "/"], 0.95),
                sample("gossamer_disk_used_ratio", ["mount": "/boot"], 0.2),
            ],
            [
                sample("gossamer_disk_used_ratio", ["mount": "/"], 0.5),
                sample("gossamer_disk_used_ratio", ["mount": "/boot"], 0.2),
            ]
        ),
        (
            DefaultRules.replicationLagHigh,
            [
                sample("gossamer_replication_lag_seconds", ["peer": "a"], 5),
                sample("gossamer_replication_lag_seconds", ["peer": "b"], 45),
            ],
            [
                sample("gossamer_replication_lag_seconds", ["peer": "a"], 1),
                sample("gossamer_replication_lag_seconds", ["peer": "b"], 2),
            ]
        ),
        (
            DefaultRules.divergencePersists,
            [sample("gossamer_consistency_divergent_peers", [:], 1)],
            [sample("gossamer_consistency_divergent_peers", [:], 0)]
        ),
        (
            DefaultRules.redisCacheDown,
            [sample("gossamer_redis_cache_up", [:], 0)],
            [sample("gossamer_redis_cache_up", [:], 1)]
        ),
        (
            DefaultRules.serviceNoPassingInstances,
            [
                sample("gossamer_registry_instances", ["service": "api", "status": "passing"], 0),
                sample("gossamer_registry_instances", ["service": "api", "status": "critical"], 3),
                sample("gossamer_registry_instances", ["service": "web", "status": "passing"], 2),
            ],
            [
                sample("gossamer_registry_instances", ["service": "api", "status": "passing"], 2),
                sample("gossamer_registry_instances", ["service": "api", "status": "critical"], 0),
            ]
        ),
    ]

    /// The transitions of `rule` over samples held steady at `t0` and at `t0 + for`.
    func transitions(_ rule: AlertRule, _ samples: [Sample]) -> [AlertTransition] {
        var rounds = Rounds(rule)
        return rounds.at(.zero, samples) + rounds.at(rule.forDuration, samples)
    }

    @Test func test_defaultRules_all_validateWithUniqueNames() {
        // When
        let validations = DefaultRules.all.map { $0.validate() }

        // Then
        let errors = validations.flatMap(\.errors)
        #expect(errors.isEmpty, "\(errors)")
        #expect(Set(DefaultRules.all.map(\.name)).count == DefaultRules.all.count)
        #expect(DefaultRules.all.count == Self.cases.count)
        #expect(Set(Self.cases.map(\.rule.name)) == Set(DefaultRules.all.map(\.name)))
    }

    @Test(arguments: cases)
    func test_defaultRule_badSample_firesAfterFor(rule: AlertRule, bad: [Sample], good: [Sample]) throws {
        // When
        let transitions = self.transitions(rule, bad)

        // Then
        let fired = try #require(transitions.last)
        #expect(transitions.count == 1 || transitions.moves == ["inactive→pending", "pending→firing"])
        #expect(fired.to == .firing)
        #expect(fired.at == t0 + rule.forDuration)
        #expect(fired.alert.labels["alertname"] == rule.name)
        #expect(fired.alert.labels["severity"] == rule.severity.rawValue)
        #expect(fired.alert.annotations["summary"].map { !$0.contains("{{") && !$0.contains("  ") } == true)
    }

    @Test(arguments: cases)
    func test_defaultRule_goodSample_staysQuiet(rule: AlertRule, bad: [Sample], good: [Sample]) {
        #expect(self.transitions(rule, good).isEmpty)
    }

    @Test func test_serviceNoPassingInstances_alertPerService_namesTheService() {
        // Given
        var rounds = Rounds(DefaultRules.serviceNoPassingInstances)
        let samples = [
            sample("gossamer_registry_instances", ["service": "api", "status": "passing"], 0),
            sample("gossamer_registry_instances", ["service": "web", "status": "passing"], 0),
        ]

        // When
        rounds.at(.zero, samples)
        let fired = rounds.at(.seconds(60), samples)

        // Then
        #expect(
            fired.map { $0.alert.annotations["summary"] } == [
                "service api has no passing instance", "service web has no passing instance",
            ])
    }

    @Test func test_diskFull_noisyAroundNinetyPercent_firesOnceAndResolvesBelowEightyFive() {
        // Given
        var rounds = Rounds(DefaultRules.diskFull)
        func disk(_ value: Double) -> [Sample] { [sample("gossamer_disk_used_ratio", ["mount": "/"], value)] }

        // When
        var moves: [String] = []
        for (step, value) in [0.95, 0.95, 0.91, 0.89, 0.92, 0.88, 0.84].enumerated() {
            moves += rounds.at(.seconds(300 * step), disk(value)).moves
        }

        // Then
        #expect(moves == ["inactive→pending", "pending→firing", "firing→resolved"])
    }
}
