import Logging
import Synchronization

// MARK: - Balancer

/// One endpoint pool's current snapshot plus its strategy: what the proxy calls on every request.
///
/// Writers (`update`) build the new snapshot and prepare a fresh strategy *outside* the lock, then swap both in under
/// it, so a pick waits at most for a pointer swap. A pick holds the lock only for the strategy's O(1)–O(log N) step
/// and allocates nothing. For many event loops at high rates, give each loop its own `Balancer` and feed them the
/// same endpoints: picks never contend across loops and in-flight counters can still be shared (`counters:`).
public final class Balancer: Sendable {
    struct State: Sendable {
        var snapshot: EndpointSnapshot
        var strategy: ConfiguredStrategy
        var random: Xoshiro256StarStar
    }

    /// The settings this balancer was created with.
    public let settings: Settings
    /// The pool's in-flight counters (shared by all its snapshots).
    public let counters: InFlightCounters
    private let state: Mutex<State>

    /// Creates a balancer over `endpoints` (often empty until the first membership update).
    public init(settings: Settings, endpoints: [Endpoint] = [], counters: InFlightCounters = InFlightCounters()) {
        self.settings = settings
        self.counters = counters
        var system = SystemRandomNumberGenerator()
        var random = Xoshiro256StarStar(seed: system.next())
        let snapshot = EndpointSnapshot(endpoints: endpoints, counters: counters, settings: settings)
        var strategy = ConfiguredStrategy(settings: settings)
        strategy.prepare(for: snapshot, using: &random)
        self.state = Mutex(State(snapshot: snapshot, strategy: strategy, random: random))
    }

    /// The snapshot picks currently use.
    public var snapshot: EndpointSnapshot {
        self.state.withLock { $0.snapshot }
    }

    /// Replaces the endpoints (after a membership, health or weight change).
    ///
    /// - Parameter weightFactors: slow-start factors in `0...1`, one per endpoint, or `nil` for full weights.
    public func update(endpoints: [Endpoint], weightFactors: [Double]? = nil) {
        self.install(
            EndpointSnapshot(endpoints: endpoints, weightFactors: weightFactors, counters: self.counters, settings: self.settings)
        )
    }

    /// Replaces the endpoints with those a `HealthTracker` plan keeps.
    public func update(plan: HealthPlan) {
        self.update(endpoints: plan.endpoints, weightFactors: plan.weightFactors)
    }

    /// Swaps in a snapshot built elsewhere. It should share this balancer's `counters`.
    public func install(_ snapshot: EndpointSnapshot) {
        var system = SystemRandomNumberGenerator()
        var strategy = ConfiguredStrategy(settings: self.settings)
        strategy.prepare(for: snapshot, using: &system)
        let previous = self.state.withLock { state in
            let previous = state.snapshot
            state.snapshot = snapshot
            state.strategy = strategy
            return previous.count
        }
        self.settings.logger.debug(
            "load balancer snapshot installed",
            metadata: [
                "lb.endpoints": "\(snapshot.count)",
                "lb.previous_endpoints": "\(previous)",
                "lb.strategy": "\(self.settings.strategy.rawValue)",
            ]
        )
    }

    /// Picks an endpoint, or returns `nil` when the pool is empty. Call `pick.counter.increment()` when the request is
    /// sent and `decrement()` when it ends, so least-request and bounded-load hashing see it.
    ///
    /// - Parameter hashKey: the affinity key for consistent hashing (`StableHash.hash(_:)` of a header, say).
    public func pick(hashKey: UInt64? = nil) -> Pick? {
        self.state.withLock { state in
            let snapshot = state.snapshot
            guard let index = state.strategy.chooseIndex(
                from: snapshot, context: PickContext(hashKey: hashKey), using: &state.random
            ) else { return nil }
            return Pick(snapshot: snapshot, index: index)
        }
    }

    /// The endpoint after `previous` in its snapshot (skipping it), for retrying a connect failure elsewhere;
    /// `nil` when the snapshot had only that endpoint.
    public func retryPick(after previous: Pick) -> Pick? {
        let count = previous.snapshot.count
        guard count > 1 else { return nil }
        return Pick(snapshot: previous.snapshot, index: previous.index + 1 == count ? 0 : previous.index + 1)
    }
}

/// The result of `Balancer.pick`: the endpoint, its position and the snapshot it came from.
public struct Pick: Sendable {
    /// The snapshot the pick was made on.
    public let snapshot: EndpointSnapshot
    /// The endpoint's index in `snapshot.endpoints`.
    public let index: Int

    /// The picked endpoint.
    @inlinable public var endpoint: Endpoint { self.snapshot.endpoints[self.index] }
    /// The picked endpoint's in-flight counter.
    @inlinable public var counter: InFlightCounter { self.snapshot.inFlight[self.index] }
}

// MARK: - Internal randomness

/// xoshiro256** (Blackman & Vigna): a fast, small generator for the pick path. `SystemRandomNumberGenerator` costs a
/// system call per number on Linux; this is a few cycles. Not for secrets.
struct Xoshiro256StarStar: RandomNumberGenerator, Sendable {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    /// Seeds the state with SplitMix64, as the authors recommend.
    init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9e37_79b9_7f4a_7c15
            var z = x
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
        self.s0 = splitMix()
        self.s1 = splitMix()
        self.s2 = splitMix()
        self.s3 = splitMix()
    }

    mutating func next() -> UInt64 {
        let result = ((self.s1 &* 5) << 7 | (self.s1 &* 5) >> 57) &* 9
        let t = self.s1 << 17
        self.s2 ^= self.s0
        self.s3 ^= self.s1
        self.s1 ^= self.s2
        self.s0 ^= self.s3
        self.s2 ^= t
        self.s3 = self.s3 << 45 | self.s3 >> 19
        return result
    }
}
