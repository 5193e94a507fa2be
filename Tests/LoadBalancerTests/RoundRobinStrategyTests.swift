import LoadBalancer
import TestSupport
import Testing

@Suite struct RoundRobinStrategyTests {
    @Test func test_roundRobin_manyPicks_everyEndpointGetsAnEqualShare() {
        // Given
        let snapshot = EndpointSnapshot(endpoints: makeEndpoints(7))
        var strategy = RoundRobinStrategy()
        var rng = SplitMix64(seed: 1)

        // When
        let counts = histogram(&strategy, snapshot, picks: 70_000, rng: &rng)

        // Then
        #expect(counts == [Int](repeating: 10_000, count: 7))
    }

    @Test func test_roundRobin_consecutivePicks_visitEveryEndpointOncePerCycle() {
        // Given
        let snapshot = EndpointSnapshot(endpoints: makeEndpoints(5))
        var strategy = RoundRobinStrategy()
        var rng = SplitMix64(seed: 2)

        // When
        let cycle = (0..<5).compactMap { _ in strategy.chooseIndex(from: snapshot, context: .init(), using: &rng) }

        // Then
        #expect(Set(cycle).count == 5)
        #expect(zip(cycle, cycle.dropFirst()).allSatisfy { ($0 + 1) % 5 == $1 })
    }

    @Test func test_roundRobin_manyBalancersOnOneSnapshot_startAtDifferentEndpoints() {
        // Given
        let snapshot = EndpointSnapshot(endpoints: makeEndpoints(10))
        var rng = SplitMix64(seed: 3)

        // When
        let firstPicks = (0..<100).compactMap { _ in
            var strategy = RoundRobinStrategy()
            return strategy.chooseIndex(from: snapshot, context: .init(), using: &rng)
        }

        // Then: 100 balancers spread their first request over (nearly) all ten endpoints.
        #expect(Set(firstPicks).count >= 8)
    }

    @Test func test_roundRobin_newSnapshot_staysInRange() {
        // Given
        var strategy = RoundRobinStrategy()
        var rng = SplitMix64(seed: 4)
        let big = EndpointSnapshot(endpoints: makeEndpoints(100))
        for _ in 0..<99 { _ = strategy.chooseIndex(from: big, context: .init(), using: &rng) }

        // When
        let small = EndpointSnapshot(endpoints: makeEndpoints(2))
        let picks = (0..<10).compactMap { _ in strategy.chooseIndex(from: small, context: .init(), using: &rng) }

        // Then
        #expect(picks.count == 10)
        #expect(picks.allSatisfy { (0..<2).contains($0) })
    }
}

@Suite struct EmptySnapshotTests {
    @Test(arguments: Settings.Strategy.allCases)
    func test_strategy_emptySnapshot_returnsNil(kind: Settings.Strategy) {
        // Given
        var settings = Settings()
        settings.strategy = kind
        settings.consistentHash.boundedLoadFactor = 1.25
        var strategy = ConfiguredStrategy(settings: settings)
        var rng = SplitMix64(seed: 5)
        let snapshot = EndpointSnapshot(endpoints: [], settings: settings)

        // When
        let picked = strategy.choose(from: snapshot, key: 42, using: &rng)

        // Then
        #expect(picked == nil)
    }

    @Test(arguments: Settings.Strategy.allCases)
    func test_strategy_singleEndpoint_alwaysReturnsIt(kind: Settings.Strategy) {
        // Given
        var settings = Settings()
        settings.strategy = kind
        var strategy = ConfiguredStrategy(settings: settings)
        var rng = SplitMix64(seed: 6)
        let snapshot = EndpointSnapshot(endpoints: makeEndpoints(1), settings: settings)

        // When
        let picks = (0..<20).map { strategy.choose(from: snapshot, key: UInt64($0), using: &rng)?.id }

        // Then
        #expect(picks.allSatisfy { $0 == "endpoint-0" })
    }
}
