// MARK: - Smooth weighted round robin

/// nginx's smooth weighted round robin: every pick adds each endpoint's weight to its current weight, picks the
/// largest current weight (the lowest index on a tie) and subtracts the total weight from it. Over any
/// `totalWeight` picks each endpoint is chosen in proportion to its weight, interleaved rather than in bursts:
/// weights `{a: 5, b: 1, c: 1}` give `a a b a c a a`.
///
/// Implementation: the textbook loop is O(N) per pick (≈ 1 µs at N = 1,000). Endpoints of equal effective weight
/// rise by the same amount every pick, so their order changes only when one is picked, and the picked one (its
/// class's maximum, minus `totalWeight`) always falls to the back of its class: the spread of a class never exceeds
/// `totalWeight`, and ties at the back are appended in index order. So each weight class is a rotating queue and a
/// pick compares the D queue heads: O(D) for D distinct effective weights (usually 1–3; each ramping slow-start
/// endpoint adds one), with exactly nginx's sequence. Current weights are stored as `base + step × weight`.
///
/// Herding: with `randomizesStart` (the default) each endpoint's initial current weight is drawn from
/// `0..<weight`, so balancers that get the same snapshot start at different points of the cycle; the shares are
/// unchanged. Turn it off to reproduce nginx exactly.
public struct WeightedRoundRobinStrategy: LoadBalancingStrategy {
    @usableFromInline
    struct WeightClass: Sendable {
        /// Where the class's queue starts in `queue`.
        @usableFromInline var start: Int
        @usableFromInline var count: Int
        /// The queue head's offset from `start`.
        @usableFromInline var head: Int
        @usableFromInline var weight: Int

        @inlinable
        init(start: Int, count: Int, weight: Int) {
            self.start = start
            self.count = count
            self.head = 0
            self.weight = weight
        }
    }

    /// Rebase `base` before `step × weight` could overflow.
    @usableFromInline static let rebaseStep = 1 << 40

    /// Whether initial current weights are random (`true`, default) or zero (nginx).
    public var randomizesStart: Bool
    @usableFromInline var generation: UInt64 = 0
    @usableFromInline var step = 0
    @usableFromInline var totalWeight = 0
    /// Per endpoint: current weight minus `step × weight`.
    @usableFromInline var base: [Int] = []
    /// Endpoint indices grouped by weight class; each class range is a circular queue in pick order.
    @usableFromInline var queue: [Int] = []
    @usableFromInline var classes: [WeightClass] = []

    /// Creates the strategy.
    public init(randomizesStart: Bool = true) {
        self.randomizesStart = randomizesStart
    }

    /// Groups `snapshot`'s endpoints by effective weight, in pick order, and resets current weights.
    @inlinable
    public mutating func prepare<G: RandomNumberGenerator>(for snapshot: EndpointSnapshot, using rng: inout G) {
        let weights = snapshot.effectiveWeights
        var base = [Int](repeating: 0, count: weights.count)
        if self.randomizesStart {
            for index in weights.indices { base[index] = Int(rng.next(upperBound: UInt64(weights[index]))) }
        }
        // By weight, then by current weight descending, then by index: each class's queue in pick order.
        self.queue = weights.indices.sorted { a, b in
            (weights[a], -base[a], a) < (weights[b], -base[b], b)
        }
        self.classes = []
        var start = 0
        while start < self.queue.count {
            let weight = weights[self.queue[start]]
            var end = start + 1
            while end < self.queue.count, weights[self.queue[end]] == weight { end += 1 }
            self.classes.append(WeightClass(start: start, count: end - start, weight: weight))
            start = end
        }
        self.base = base
        self.generation = snapshot.generation
        self.step = 0
        self.totalWeight = snapshot.totalEffectiveWeight
    }

    /// The next endpoint of the smooth weighted cycle.
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
        guard count > 1 else { return 0 }
        self.step &+= 1
        let step = self.step
        let (bestClass, best) = self.classes.withUnsafeBufferPointer { classes in
            self.queue.withUnsafeBufferPointer { queue in
                self.base.withUnsafeBufferPointer { base in
                    var bestClass = 0
                    var best = queue[classes[0].start &+ classes[0].head]
                    var bestValue = base[best] &+ step &* classes[0].weight
                    var classIndex = 1
                    while classIndex < classes.count {
                        let weightClass = classes[classIndex]
                        let candidate = queue[weightClass.start &+ weightClass.head]
                        let value = base[candidate] &+ step &* weightClass.weight
                        if value > bestValue || (value == bestValue && candidate < best) {
                            bestClass = classIndex
                            best = candidate
                            bestValue = value
                        }
                        classIndex &+= 1
                    }
                    return (bestClass, best)
                }
            }
        }
        self.base[best] &-= self.totalWeight
        let next = self.classes[bestClass].head &+ 1
        self.classes[bestClass].head = next == self.classes[bestClass].count ? 0 : next
        if step >= Self.rebaseStep {
            self.rebase(weights: snapshot.effectiveWeights)
        }
        return best
    }

    /// Folds `step × weight` into `base` (order within each class is unchanged).
    @usableFromInline
    mutating func rebase(weights: [Int]) {
        for index in self.base.indices {
            self.base[index] &+= self.step &* weights[index]
        }
        self.step = 0
    }
}
