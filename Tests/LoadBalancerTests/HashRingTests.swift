import TestSupport

@testable import LoadBalancer
import Testing

@Suite struct HashRingTests {
    /// The first point at or after `hash` by linear scan: the reference for the bucketed binary search.
    func referenceFirstPoint(_ ring: HashRing, _ hash: UInt64) -> Int {
        let target = hash & ~HashRing.ownerMask
        return ring.points.firstIndex { $0 >= target } ?? 0
    }

    @Test(arguments: [1, 3, 17, 50])
    func test_firstPoint_anyHash_matchesLinearScan(endpoints: Int) {
        // Given
        let ring = HashRing(ids: makeEndpoints(endpoints).map(\.id), virtualNodes: [Int](repeating: 20, count: endpoints))
        var rng = SplitMix64(seed: 40)
        // Random hashes, every point exactly, and the values just beside each point and the ring's ends.
        var hashes = (0..<2_000).map { _ in rng.next() }
        hashes += ring.points.flatMap { [$0, $0 &- 1, ($0 | HashRing.ownerMask) &+ 1] }
        hashes += [0, .max, UInt64.max - HashRing.ownerMask]

        // When
        let mismatches = hashes.filter { ring.firstPoint(atOrAfter: $0) != self.referenceFirstPoint(ring, $0) }

        // Then
        #expect(mismatches.isEmpty)
        #expect(ring.points == ring.points.sorted())
    }

    @Test func test_radixSort_randomValues_sortsLikeTheStandardLibrary() {
        // Given
        var rng = SplitMix64(seed: 41)
        var values = (0..<5_000).map { _ in rng.next() >> (rng.next() % 64) }

        // When
        let expected = values.sorted()
        HashRing.radixSort(&values)

        // Then
        #expect(values == expected)
    }
}
