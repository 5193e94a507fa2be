import Synchronization

// MARK: - Endpoint snapshot

/// An immutable view of the endpoints to balance over, with everything a strategy needs precomputed.
///
/// Build one whenever membership, health or weights change (off the hot path: building is O(N), and O(N·k) for the
/// ring), then hand it to a `Balancer`, which swaps it in atomically. A snapshot is a class so that the swap and every
/// pick pass one reference, never copies of its arrays.
public final class EndpointSnapshot: Sendable {
    /// Effective weights are kept in hundredths of a weight unit, so slow start can ramp even a weight-1 endpoint.
    public static let weightScale = 100

    private static let generations = Atomic<UInt64>(0)

    /// The endpoints, in the order the snapshot was built with. Strategies return indices into this array.
    public let endpoints: [Endpoint]
    /// Each endpoint's weight after slow start, in hundredths (`weight × 100 × factor`, at least 1).
    public let effectiveWeights: [Int]
    /// The sum of `effectiveWeights`.
    public let totalEffectiveWeight: Int
    /// Each endpoint's in-flight counter (same order as `endpoints`).
    public let inFlight: [InFlightCounter]
    /// The counters of the whole pool, for the total in flight.
    public let counters: InFlightCounters
    /// The consistent-hash ring, when the snapshot was built with one.
    public let ring: HashRing?
    /// A process-wide unique, increasing number: strategies compare it to notice a new snapshot.
    public let generation: UInt64

    /// The number of endpoints.
    @inlinable public var count: Int { self.endpoints.count }
    /// Whether there is nothing to pick.
    @inlinable public var isEmpty: Bool { self.endpoints.isEmpty }

    /// Builds a snapshot.
    ///
    /// - Parameters:
    ///   - endpoints: the endpoints to balance over; ids must be unique.
    ///   - weightFactors: a factor in `0...1` per endpoint (slow start), or `nil` for all 1.
    ///   - counters: the pool's in-flight counters; pass the same object to every snapshot of a pool.
    ///   - virtualNodesPerDefaultWeight: build a hash ring with this many points for an endpoint of weight 100
    ///     (scaled by effective weight), or `nil` for no ring.
    public init(
        endpoints: [Endpoint],
        weightFactors: [Double]? = nil,
        counters: InFlightCounters = InFlightCounters(),
        virtualNodesPerDefaultWeight: Int? = nil
    ) {
        precondition(weightFactors == nil || weightFactors?.count == endpoints.count, "one weight factor per endpoint")
        var weights: [Int] = []
        weights.reserveCapacity(endpoints.count)
        for (index, endpoint) in endpoints.enumerated() {
            let factor = min(max(weightFactors?[index] ?? 1, 0), 1)
            let scaled = Double(endpoint.weight * EndpointSnapshot.weightScale) * factor
            weights.append(max(1, Int(scaled.rounded())))
        }
        self.endpoints = endpoints
        self.effectiveWeights = weights
        self.totalEffectiveWeight = weights.reduce(0, +)
        self.counters = counters
        self.inFlight = counters.counters(retaining: endpoints)
        if let perDefault = virtualNodesPerDefaultWeight {
            precondition(perDefault > 0, "virtual nodes per default weight must be positive")
            let unit = Double(Endpoint.defaultWeight * EndpointSnapshot.weightScale)
            let vnodes = weights.map { max(1, Int((Double(perDefault) * Double($0) / unit).rounded())) }
            self.ring = HashRing(ids: endpoints.map(\.id), virtualNodes: vnodes)
        } else {
            self.ring = nil
        }
        self.generation = EndpointSnapshot.generations.wrappingAdd(1, ordering: .relaxed).newValue
    }

    /// Builds a snapshot with what `settings.strategy` needs (a ring only for consistent hashing).
    public convenience init(
        endpoints: [Endpoint],
        weightFactors: [Double]? = nil,
        counters: InFlightCounters = InFlightCounters(),
        settings: Settings
    ) {
        self.init(
            endpoints: endpoints,
            weightFactors: weightFactors,
            counters: counters,
            virtualNodesPerDefaultWeight: settings.strategy == .consistentHash
                ? settings.consistentHash.virtualNodesPerDefaultWeight : nil
        )
    }

    /// Builds a snapshot from a health plan (the endpoints it keeps, with their slow-start factors).
    public convenience init(plan: HealthPlan, counters: InFlightCounters, settings: Settings) {
        self.init(endpoints: plan.endpoints, weightFactors: plan.weightFactors, counters: counters, settings: settings)
    }

    /// A snapshot with no endpoints.
    public static let empty = EndpointSnapshot(endpoints: [])
}
