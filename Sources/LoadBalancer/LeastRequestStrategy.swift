// MARK: - Least request

/// The endpoint with the fewest requests in flight relative to its weight.
///
/// Up to `exactScanLimit` endpoints, every endpoint is compared (starting at a random one, so ties are broken at
/// random). Above it, two distinct endpoints are drawn uniformly and the less loaded one wins ("power of two choices",
/// Mitzenmacher): O(1), and it avoids the herding an exact minimum causes when many balancers see the same counts.
/// Load is compared as `(inFlight + 1) / effectiveWeight`, so idle endpoints still prefer the heavier one.
public struct LeastRequestStrategy: LoadBalancingStrategy {
    /// Pools at most this big are scanned exactly; see `Settings.LeastRequest.exactScanLimit`.
    public var exactScanLimit: Int

    /// Creates the strategy.
    public init(exactScanLimit: Int = Settings.LeastRequest().exactScanLimit) {
        precondition(exactScanLimit >= 1, "exactScanLimit must be at least 1")
        self.exactScanLimit = exactScanLimit
    }

    /// Nothing to prepare: the counts live in the snapshot's counters.
    @inlinable
    public mutating func prepare<G: RandomNumberGenerator>(for snapshot: EndpointSnapshot, using rng: inout G) {}

    /// The less loaded endpoint (exact minimum or best of two).
    @inlinable
    public mutating func chooseIndex<G: RandomNumberGenerator>(
        from snapshot: EndpointSnapshot,
        context: PickContext,
        using rng: inout G
    ) -> Int? {
        let count = snapshot.count
        guard count > 1 else { return count == 1 ? 0 : nil }
        if count <= self.exactScanLimit {
            let start = Int(rng.next(upperBound: UInt64(count)))
            var best = start
            var index = start
            for _ in 1..<count {
                index = index &+ 1 == count ? 0 : index &+ 1
                if Self.isLessLoaded(index, than: best, in: snapshot) { best = index }
            }
            return best
        }
        let first = Int(rng.next(upperBound: UInt64(count)))
        var second = Int(rng.next(upperBound: UInt64(count &- 1)))
        if second >= first { second &+= 1 }
        return Self.isLessLoaded(second, than: first, in: snapshot) ? second : first
    }

    /// `(inFlight[a] + 1) / weight[a] < (inFlight[b] + 1) / weight[b]`, without division.
    @inlinable @inline(__always)
    static func isLessLoaded(_ a: Int, than b: Int, in snapshot: EndpointSnapshot) -> Bool {
        let loadA = snapshot.inFlight[a].current &+ 1
        let loadB = snapshot.inFlight[b].current &+ 1
        return loadA &* snapshot.effectiveWeights[b] < loadB &* snapshot.effectiveWeights[a]
    }
}
