// MARK: - Consistent hash

/// The owner of the request's hash key on the snapshot's ring (`EndpointSnapshot.ring`), optionally with bounded
/// loads (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with Bounded Loads", 2016).
///
/// With `boundedLoadFactor = c`, endpoint `i` accepts a request only while
/// `inFlight[i] < c × (totalInFlight + 1) × weight[i] / totalWeight`, i.e. it never holds more than
/// `⌈c × its weighted share of the in-flight requests⌉`; otherwise the key walks clockwise to the next point whose
/// endpoint is under its bound. With equal weights this is the paper's `⌈c × average⌉`.
///
/// A pick without a hash key goes to a uniformly random endpoint. A snapshot built without a ring falls back to
/// `hash mod N` (not consistent: build snapshots with `virtualNodesPerDefaultWeight` or `settings:`).
public struct ConsistentHashStrategy: LoadBalancingStrategy {
    /// The bounded-load factor `c` (at least 1, used to a thousandth), or `nil` for plain consistent hashing.
    public var boundedLoadFactor: Double?

    /// Creates the strategy.
    public init(boundedLoadFactor: Double? = nil) {
        precondition(boundedLoadFactor.map { $0 >= 1 } ?? true, "the bounded-load factor must be at least 1")
        self.boundedLoadFactor = boundedLoadFactor
    }

    /// Nothing to prepare: the ring lives in the snapshot.
    @inlinable
    public mutating func prepare<G: RandomNumberGenerator>(for snapshot: EndpointSnapshot, using rng: inout G) {}

    /// The owner of `context.hashKey`, or the next endpoint under its bound.
    @inlinable
    public mutating func chooseIndex<G: RandomNumberGenerator>(
        from snapshot: EndpointSnapshot,
        context: PickContext,
        using rng: inout G
    ) -> Int? {
        let count = snapshot.count
        guard count > 0 else { return nil }
        guard let key = context.hashKey else { return Int(rng.next(upperBound: UInt64(count))) }
        guard count > 1 else { return 0 }
        // Mix the caller's key so sequential keys spread over the ring.
        let hash = StableHash.mix(key)
        guard let ring = snapshot.ring, ring.count > 0 else { return Int(hash % UInt64(count)) }
        var point = ring.firstPoint(atOrAfter: hash)
        let owner = ring.owner(ofPoint: point)
        guard let factor = self.boundedLoadFactor else { return owner }

        // Integer form of `inFlight < c × (total + 1) × weight / totalWeight`, with c in thousandths: exact at the
        // integral bounds where floating point would round either way. Magnitudes stay far below 2^63.
        let capacityPerWeight = Int((factor * 1_000).rounded()) &* (snapshot.counters.total &+ 1)
        let scaledTotalWeight = snapshot.totalEffectiveWeight &* 1_000
        var candidate = owner
        for _ in 0..<ring.count {
            let load = snapshot.inFlight[candidate].current &* scaledTotalWeight
            if load < capacityPerWeight &* snapshot.effectiveWeights[candidate] { return candidate }
            point = point &+ 1 == ring.count ? 0 : point &+ 1
            candidate = ring.owner(ofPoint: point)
        }
        return owner  // Every endpoint is at its bound (counters moved under us): keep affinity.
    }
}
