import LoadBalancer
import TestSupport
import Testing

@Suite struct WeightedRoundRobinStrategyTests {
    /// nginx's loop, O(N) per pick: the reference the heap implementation must match.
    struct NginxReference {
        var current: [Int]
        let weights: [Int]
        let total: Int

        init(weights: [Int], initial: [Int]? = nil) {
            self.weights = weights
            self.current = initial ?? [Int](repeating: 0, count: weights.count)
            self.total = weights.reduce(0, +)
        }

        mutating func next() -> Int {
            var best = -1
            for index in self.weights.indices {
                self.current[index] += self.weights[index]
                if best == -1 || self.current[index] > self.current[best] { best = index }
            }
            self.current[best] -= self.total
            return best
        }
    }

    @Test func test_smoothWeighted_weights511_giveNginxSequence() {
        // Given
        let snapshot = EndpointSnapshot(endpoints: makeEndpoints(3, weights: [5, 1, 1]))
        var strategy = WeightedRoundRobinStrategy(randomizesStart: false)
        var rng = SplitMix64(seed: 10)

        // When
        let picks = (0..<14).compactMap { _ in strategy.choose(from: snapshot, using: &rng)?.id }

        // Then: a a b a c a a, twice.
        let cycle = ["endpoint-0", "endpoint-0", "endpoint-1", "endpoint-0", "endpoint-2", "endpoint-0", "endpoint-0"]
        #expect(picks == cycle + cycle)
    }

    @Test(arguments: [UInt64(11), 12, 13, 14])
    func test_smoothWeighted_randomWeights_matchNginxReference(seed: UInt64) {
        // Given: a mix of repeated and distinct weights, so several heaps of several sizes are in play.
        var rng = SplitMix64(seed: seed)
        let palette = [1, 3, 100, 100, 250, 1000]
        let weights = (0..<40).map { _ in palette[Int(rng.next(upperBound: UInt64(palette.count)))] }
        let snapshot = EndpointSnapshot(endpoints: makeEndpoints(40, weights: weights))
        var strategy = WeightedRoundRobinStrategy(randomizesStart: false)
        var reference = NginxReference(weights: snapshot.effectiveWeights)

        // When
        let picks = (0..<5_000).compactMap { _ in strategy.chooseIndex(from: snapshot, context: .init(), using: &rng) }
        let expected = (0..<5_000).map { _ in reference.next() }

        // Then
        #expect(picks == expected)
    }

    @Test(arguments: Array(UInt64(100)..<UInt64(160)))
    func test_smoothWeighted_randomStart_matchesNginxReferenceFromTheSameStart(seed: UInt64) {
        // Given: few endpoints and small weights, so ties at the top and bottom of a weight class are common.
        var rng = SplitMix64(seed: seed)
        let count = 2 + Int(rng.next(upperBound: UInt64(12)))
        let weights = (0..<count).map { _ in [1, 1, 2, 5][Int(rng.next(upperBound: UInt64(4)))] }
        let snapshot = EndpointSnapshot(endpoints: makeEndpoints(count, weights: weights))
        var strategy = WeightedRoundRobinStrategy(randomizesStart: true)
        var strategyRNG = rng
        strategy.prepare(for: snapshot, using: &strategyRNG)
        // The strategy drew one start value per endpoint, in order: draw the same ones for the reference.
        let initial = snapshot.effectiveWeights.map { Int(rng.next(upperBound: UInt64($0))) }
        var reference = NginxReference(weights: snapshot.effectiveWeights, initial: initial)

        // When
        let picks = (0..<3_000).compactMap { _ in strategy.chooseIndex(from: snapshot, context: .init(), using: &strategyRNG) }
        let expected = (0..<3_000).map { _ in reference.next() }

        // Then
        #expect(picks == expected)
    }

    @Test func test_smoothWeighted_equalWeightsZeroStart_isPlainRoundRobinWithTies() {
        // Given: every current weight ties at every step of the first cycle.
        let snapshot = EndpointSnapshot(endpoints: makeEndpoints(5, weights: [3, 3, 3, 3, 3]))
        var strategy = WeightedRoundRobinStrategy(randomizesStart: false)
        var reference = NginxReference(weights: snapshot.effectiveWeights)
        var rng = SplitMix64(seed: 23)

        // When
        let picks = (0..<50).compactMap { _ in strategy.chooseIndex(from: snapshot, context: .init(), using: &rng) }

        // Then
        #expect(picks == (0..<50).map { _ in reference.next() })
        #expect(picks.prefix(5) == [0, 1, 2, 3, 4])
    }

    @Test func test_smoothWeighted_randomStart_keepsExactSharesPerCycle() {
        // Given
        let weights = [5, 1, 1, 3]
        let snapshot = EndpointSnapshot(endpoints: makeEndpoints(4, weights: weights))
        var strategy = WeightedRoundRobinStrategy()
        var rng = SplitMix64(seed: 15)

        // When: ten whole cycles (total effective weight is 10 × 100 = 1,000).
        let counts = histogram(&strategy, snapshot, picks: 10_000, rng: &rng)

        // Then: shares are exact up to the bounded deficit of a random start.
        for (index, weight) in weights.enumerated() {
            #expect(abs(counts[index] - weight * 1_000) <= 2)
        }
    }

    @Test func test_smoothWeighted_randomStart_differentBalancersDoNotHerd() {
        // Given
        let snapshot = EndpointSnapshot(endpoints: makeEndpoints(10))
        var rng = SplitMix64(seed: 16)

        // When
        let firstPicks = (0..<100).compactMap { _ in
            var strategy = WeightedRoundRobinStrategy()
            return strategy.chooseIndex(from: snapshot, context: .init(), using: &rng)
        }

        // Then
        #expect(Set(firstPicks).count >= 8)
    }
}
