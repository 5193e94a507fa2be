// MARK: - Strategy protocol

/// What a pick may depend on besides the snapshot and randomness.
public struct PickContext: Sendable, Hashable {
    /// The request's affinity key for consistent hashing (for example `StableHash.hash(userID)`); ignored by other
    /// strategies. Without one, consistent hashing picks uniformly at random.
    public var hashKey: UInt64?

    /// Creates a context.
    @inlinable
    public init(hashKey: UInt64? = nil) {
        self.hashKey = hashKey
    }
}

/// A load-balancing algorithm: a value over an immutable `EndpointSnapshot`, with no I/O and no clock.
///
/// A strategy may keep state between picks (a round-robin cursor, smooth-WRR current weights). The owner (a `Balancer`
/// or an actor) provides isolation. Randomness is injected, so tests run with a seeded generator.
public protocol LoadBalancingStrategy: Sendable {
    /// Rebuilds per-snapshot state for `snapshot` (O(N), may allocate). `Balancer` calls it before it swaps a snapshot
    /// in, outside its lock; `chooseIndex` calls it itself when it meets a snapshot it was not prepared for.
    mutating func prepare<G: RandomNumberGenerator>(for snapshot: EndpointSnapshot, using rng: inout G)

    /// The index in `snapshot.endpoints` of the endpoint to use, or `nil` when the snapshot is empty. Must not
    /// allocate once prepared.
    mutating func chooseIndex<G: RandomNumberGenerator>(
        from snapshot: EndpointSnapshot,
        context: PickContext,
        using rng: inout G
    ) -> Int?
}

extension LoadBalancingStrategy {
    /// The endpoint to use, or `nil` when the snapshot is empty.
    @inlinable
    public mutating func choose<G: RandomNumberGenerator>(
        from snapshot: EndpointSnapshot,
        context: PickContext = PickContext(),
        using rng: inout G
    ) -> Endpoint? {
        guard let index = self.chooseIndex(from: snapshot, context: context, using: &rng) else { return nil }
        return snapshot.endpoints[index]
    }

    /// The endpoint to use for `key` (consistent hashing), or `nil` when the snapshot is empty.
    @inlinable
    public mutating func choose<G: RandomNumberGenerator>(
        from snapshot: EndpointSnapshot,
        key: UInt64?,
        using rng: inout G
    ) -> Endpoint? {
        self.choose(from: snapshot, context: PickContext(hashKey: key), using: &rng)
    }
}

// MARK: - Configured strategy

/// The strategy `Settings.strategy` names, without an existential: every algorithm's state is stored inline and a
/// `switch` dispatches, so picking stays allocation-free and specialisable.
public struct ConfiguredStrategy: LoadBalancingStrategy {
    /// The algorithm in use.
    public let kind: Settings.Strategy
    @usableFromInline var roundRobin = RoundRobinStrategy()
    @usableFromInline var weightedRoundRobin = WeightedRoundRobinStrategy()
    @usableFromInline var leastRequest: LeastRequestStrategy
    @usableFromInline var consistentHash: ConsistentHashStrategy

    /// Creates the strategy `settings.strategy` names, with its knobs from `settings`.
    public init(settings: Settings) {
        self.kind = settings.strategy
        self.leastRequest = LeastRequestStrategy(exactScanLimit: settings.leastRequest.exactScanLimit)
        self.consistentHash = ConsistentHashStrategy(boundedLoadFactor: settings.consistentHash.boundedLoadFactor)
    }

    /// See `LoadBalancingStrategy.prepare(for:using:)`.
    @inlinable
    public mutating func prepare<G: RandomNumberGenerator>(for snapshot: EndpointSnapshot, using rng: inout G) {
        switch self.kind {
        case .roundRobin: self.roundRobin.prepare(for: snapshot, using: &rng)
        case .weightedRoundRobin: self.weightedRoundRobin.prepare(for: snapshot, using: &rng)
        case .leastRequest: self.leastRequest.prepare(for: snapshot, using: &rng)
        case .consistentHash: self.consistentHash.prepare(for: snapshot, using: &rng)
        }
    }

    /// See `LoadBalancingStrategy.chooseIndex(from:context:using:)`.
    @inlinable
    public mutating func chooseIndex<G: RandomNumberGenerator>(
        from snapshot: EndpointSnapshot,
        context: PickContext,
        using rng: inout G
    ) -> Int? {
        switch self.kind {
        case .roundRobin: self.roundRobin.chooseIndex(from: snapshot, context: context, using: &rng)
        case .weightedRoundRobin: self.weightedRoundRobin.chooseIndex(from: snapshot, context: context, using: &rng)
        case .leastRequest: self.leastRequest.chooseIndex(from: snapshot, context: context, using: &rng)
        case .consistentHash: self.consistentHash.chooseIndex(from: snapshot, context: context, using: &rng)
        }
    }
}
