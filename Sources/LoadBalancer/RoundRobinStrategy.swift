// MARK: - Round robin

/// Each endpoint in turn, ignoring weights. The cursor starts at a random endpoint for every new snapshot, so many
/// balancers that receive the same snapshot at once do not all send their next request to the same instance.
public struct RoundRobinStrategy: LoadBalancingStrategy {
    @usableFromInline var next = 0
    @usableFromInline var generation: UInt64 = 0

    /// Creates the strategy.
    public init() {}

    /// Moves the cursor to a random endpoint of `snapshot`.
    @inlinable
    public mutating func prepare<G: RandomNumberGenerator>(for snapshot: EndpointSnapshot, using rng: inout G) {
        self.generation = snapshot.generation
        self.next = snapshot.isEmpty ? 0 : Int(rng.next(upperBound: UInt64(snapshot.count)))
    }

    /// The endpoint after the previous pick.
    @inlinable
    public mutating func chooseIndex<G: RandomNumberGenerator>(
        from snapshot: EndpointSnapshot,
        context: PickContext,
        using rng: inout G
    ) -> Int? {
        let count = snapshot.count
        guard count > 0 else { return nil }
        if self.generation != snapshot.generation {
            self.prepare(for: snapshot, using: &rng)
        }
        let index = self.next
        self.next = index &+ 1 == count ? 0 : index &+ 1
        return index
    }
}
