import LoadBalancer
import TestSupport
import Testing

@Suite struct LeastRequestStrategyTests {
    /// Sets each endpoint's in-flight count.
    func load(_ snapshot: EndpointSnapshot, _ counts: [Int]) {
        for (index, count) in counts.enumerated() {
            for _ in 0..<count { snapshot.inFlight[index].increment() }
        }
    }

    @Test func test_leastRequest_smallPoolWithOneIdle_alwaysPicksTheIdleEndpoint() {
        // Given
        let snapshot = EndpointSnapshot(endpoints: makeEndpoints(5))
        self.load(snapshot, [3, 2, 0, 4, 1])
        var strategy = LeastRequestStrategy()
        var rng = SplitMix64(seed: 20)

        // When
        let counts = histogram(&strategy, snapshot, picks: 1_000, rng: &rng)

        // Then
        #expect(counts == [0, 0, 1_000, 0, 0])
    }

    @Test func test_leastRequest_equalLoads_breaksTiesAtRandom() {
        // Given
        let snapshot = EndpointSnapshot(endpoints: makeEndpoints(4))
        var strategy = LeastRequestStrategy()
        var rng = SplitMix64(seed: 21)

        // When
        let counts = histogram(&strategy, snapshot, picks: 4_000, rng: &rng)

        // Then
        #expect(counts.allSatisfy { (800...1_200).contains($0) })
    }

    @Test func test_leastRequest_unequalWeights_comparesLoadPerWeight() {
        // Given: 2 in flight on weight 100 (3/100) against 4 in flight on weight 300 (5/300).
        let snapshot = EndpointSnapshot(endpoints: makeEndpoints(2, weights: [100, 300]))
        self.load(snapshot, [2, 4])
        var strategy = LeastRequestStrategy()
        var rng = SplitMix64(seed: 22)

        // When
        let picked = strategy.choose(from: snapshot, using: &rng)

        // Then
        #expect(picked?.id == "endpoint-1")
    }

    @Test func test_leastRequest_largePool_powerOfTwoChoicesPrefersLowerLoad() {
        // Given: 100 endpoints, the first half with 10 requests in flight, the second half idle.
        let snapshot = EndpointSnapshot(endpoints: makeEndpoints(100))
        self.load(snapshot, (0..<100).map { $0 < 50 ? 10 : 0 })
        var strategy = LeastRequestStrategy(exactScanLimit: 8)
        var rng = SplitMix64(seed: 23)

        // When
        let counts = histogram(&strategy, snapshot, picks: 20_000, rng: &rng)

        // Then: a loaded endpoint wins only when both draws are loaded (49/198 ≈ 25%).
        let toIdle = counts[50...].reduce(0, +)
        #expect(Double(toIdle) / 20_000 > 0.70)
        #expect(Double(toIdle) / 20_000 < 0.80)
        #expect(counts.allSatisfy { $0 > 0 })
    }

    @Test func test_leastRequest_largePool_twoDrawsAreDistinct() {
        // Given: two endpoints above the exact limit would never need this, so use three with one busy.
        let snapshot = EndpointSnapshot(endpoints: makeEndpoints(3))
        self.load(snapshot, [0, 5, 5])
        var strategy = LeastRequestStrategy(exactScanLimit: 1)
        var rng = SplitMix64(seed: 24)

        // When
        let counts = histogram(&strategy, snapshot, picks: 3_000, rng: &rng)

        // Then: endpoint 0 wins every draw it is in (2 of 3 pairs); the busy pair splits the rest.
        #expect((1_850...2_150).contains(counts[0]))
    }
}
