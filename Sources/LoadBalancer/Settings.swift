import Logging

// MARK: - Settings

/// How the load balancer picks endpoints and reacts to failing ones. Referred to from other modules as
/// `LoadBalancer.Settings`.
///
/// Defaults suit a pool of a few to a few thousand HTTP instances. `Agent` maps flags and the config file onto these
/// fields and calls `validate()` at startup.
public struct Settings: Sendable {
    /// The picking algorithm.
    public enum Strategy: String, Sendable, Hashable, CaseIterable {
        /// Each endpoint in turn, starting at a random one. Ignores weights. Cheapest and fairest for equal instances.
        case roundRobin = "round_robin"
        /// nginx's smooth weighted round robin: exact weight shares, interleaved (`a a b a c a a` for 5:1:1).
        case weightedRoundRobin = "weighted_round_robin"
        /// Fewest requests in flight relative to weight: exact for small pools, power of two choices for large ones.
        /// Best when request cost varies.
        case leastRequest = "least_request"
        /// A ring keyed by the request's hash key (`PickContext.hashKey`), for cache affinity. Optionally bounded-load.
        case consistentHash = "consistent_hash"
    }

    /// Least-request knobs.
    public struct LeastRequest: Sendable, Hashable {
        /// Pools with at most this many endpoints are scanned for the exact minimum; larger pools use power of two
        /// choices (two random endpoints, the less loaded wins). Default 8. A larger limit finds the true minimum more
        /// often but costs O(N) per pick, and an exact minimum herds every balancer onto the same idle endpoint.
        public var exactScanLimit: Int = 8

        /// Creates the defaults.
        public init() {}
    }

    /// Consistent-hash knobs.
    public struct ConsistentHash: Sendable, Hashable {
        /// Ring points for an endpoint of the default weight (100); an endpoint gets `this × weight / 100` (at least 1).
        /// Default 160 (as in ketama). Each endpoint's share deviates from its weight share by about `1/√points`
        /// (≈ 8% at 160); more points even the load but cost 8 bytes each and a longer rebuild (N = 1,000 at 160 is
        /// 160,000 points, a few ms).
        public var virtualNodesPerDefaultWeight: Int = 160
        /// Bounded-load factor `c`: no endpoint takes a request while it has `⌈c × weight share × (in flight + 1)⌉`
        /// or more in flight; the key walks clockwise to the next endpoint under its bound. `nil` (default) turns this
        /// off. 1.25 is a good start: lower values spread load more evenly but move more keys away from their owner.
        /// Must be at least 1.
        public var boundedLoadFactor: Double? = nil

        /// Creates the defaults.
        public init() {}
    }

    /// Passive outlier detection (ejecting endpoints that fail requests).
    public struct OutlierDetection: Sendable, Hashable {
        /// Consecutive failures (connect errors, 5xx chosen by the proxy) that eject an endpoint. Default 5; 0 turns
        /// ejection off. Lower reacts faster but ejects on flukes.
        public var consecutiveFailures: Int = 5
        /// Ejection time for the first ejection; the n-th ejection in a row lasts `n ×` this. Default 30 s.
        public var baseEjectionTime: Duration = .seconds(30)
        /// The longest an ejection lasts, however often the endpoint failed. Default 300 s. An endpoint that stays
        /// in for this long after returning starts again from `baseEjectionTime`.
        public var maxEjectionTime: Duration = .seconds(300)
        /// The largest share of the pool that may be ejected at once, in `0...1`. Default 0.5 (50%). At least one
        /// endpoint may always be ejected. Higher protects clients from more bad instances but risks overloading the
        /// rest when the failures are really caused by overload.
        public var maxEjectedShare: Double = 0.5

        /// Creates the defaults.
        public init() {}
    }

    /// Slow start: a newly healthy endpoint's weight ramps up instead of taking its full share at once.
    public struct SlowStart: Sendable, Hashable {
        /// How long the ramp from `minimumWeightShare` to full weight takes, linearly. Default `.zero` (off), like
        /// nginx and Envoy; 30–60 s suits JIT-warmed or cache-filling services. Longer is gentler but keeps a fresh
        /// instance under-used for longer.
        public var window: Duration = .zero
        /// The weight share a ramping endpoint starts at, in `0...1`. Default 0.1 (10%), so it gets some traffic at once.
        public var minimumWeightShare: Double = 0.1

        /// Creates the defaults.
        public init() {}
    }

    /// A settings value `validate()` rejected.
    public struct ValidationError: Error, Hashable, Sendable, CustomStringConvertible {
        /// The settings field, as a dotted path (`consistentHash.boundedLoadFactor`).
        public var field: String
        /// What is wrong with it.
        public var message: String

        /// `field: message`.
        public var description: String { "\(self.field): \(self.message)" }
    }

    /// The picking algorithm. Default `.roundRobin`.
    public var strategy: Strategy = .roundRobin
    /// Least-request knobs.
    public var leastRequest = LeastRequest()
    /// Consistent-hash knobs.
    public var consistentHash = ConsistentHash()
    /// Passive ejection of failing endpoints.
    public var outlierDetection = OutlierDetection()
    /// When fewer than this share of the pool (in `0...1`) is healthy and not ejected, balance over the whole pool
    /// instead ("panic mode"), so a few survivors are not flattened by all the traffic. Default 0.5 (50%); 0 turns it off.
    public var panicThreshold: Double = 0.5
    /// Slow start for newly healthy endpoints.
    public var slowStart = SlowStart()
    /// Where the balancer logs (at `debug` and `trace` only). Default label `gossamer.loadbalancer`.
    public var logger = Logger(label: "gossamer.loadbalancer")

    /// Creates the defaults.
    public init() {}

    /// Checks values that come from operators. Throws the first problem found.
    public func validate() throws(ValidationError) {
        func fail(_ field: String, _ message: String) -> ValidationError {
            ValidationError(field: field, message: message)
        }
        guard self.leastRequest.exactScanLimit >= 1 else {
            throw fail("leastRequest.exactScanLimit", "must be at least 1")
        }
        guard (1...100_000).contains(self.consistentHash.virtualNodesPerDefaultWeight) else {
            throw fail("consistentHash.virtualNodesPerDefaultWeight", "must be in 1...100000")
        }
        if let factor = self.consistentHash.boundedLoadFactor, !(factor >= 1 && factor.isFinite) {
            throw fail("consistentHash.boundedLoadFactor", "must be at least 1")
        }
        guard self.outlierDetection.consecutiveFailures >= 0 else {
            throw fail("outlierDetection.consecutiveFailures", "must not be negative")
        }
        guard self.outlierDetection.baseEjectionTime > .zero else {
            throw fail("outlierDetection.baseEjectionTime", "must be positive")
        }
        guard self.outlierDetection.maxEjectionTime >= self.outlierDetection.baseEjectionTime else {
            throw fail("outlierDetection.maxEjectionTime", "must be at least baseEjectionTime")
        }
        guard (0...1).contains(self.outlierDetection.maxEjectedShare) else {
            throw fail("outlierDetection.maxEjectedShare", "must be in 0...1")
        }
        guard (0...1).contains(self.panicThreshold) else {
            throw fail("panicThreshold", "must be in 0...1")
        }
        guard self.slowStart.window >= .zero else {
            throw fail("slowStart.window", "must not be negative")
        }
        guard (0...1).contains(self.slowStart.minimumWeightShare) else {
            throw fail("slowStart.minimumWeightShare", "must be in 0...1")
        }
    }
}
