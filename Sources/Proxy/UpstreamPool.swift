import LoadBalancer
import Logging
import Synchronization

// MARK: - Upstream pool

/// One upstream service: its endpoints, the `Balancer` that picks among them and the `HealthTracker` that ejects
/// failing ones. Shared by every event loop of the proxy; create one per service and feed it membership changes.
///
/// Picking takes the balancer's lock only. Health bookkeeping (failures, ejections, membership, re-planning) takes
/// this pool's own lock, off the common path: a success takes it only after a failure. A plan's `nextReview`
/// (an ejection ending, a slow-start step) is applied lazily by the first pick or `status()` after that instant.
public final class UpstreamPool: Sendable {
    /// Everything behind the pool's lock.
    struct State: Sendable {
        var tracker: HealthTracker
        /// The members, in membership order.
        var members: [Endpoint] = []
        /// Statistics per member id.
        var stats: [String: EndpointStats] = [:]
        /// When each currently ejected endpoint returns.
        var ejectedUntil: [String: ContinuousClock.Instant] = [:]
        /// The plan the balancer's snapshot was built from.
        var plan: HealthPlan?
        /// The statistics of the current snapshot's endpoints, in snapshot order.
        var snapshotStats: SnapshotStats
    }

    /// The pool's name, used in metrics and the admin API.
    public let name: String
    /// The load-balancing settings the pool was created with.
    public let settings: LoadBalancer.Settings
    /// The balancer requests pick from.
    let balancer: Balancer
    private let state: Mutex<State>
    /// The next plan review, in nanoseconds since `epoch` (`Int64.max` when none is due).
    private let reviewAtNanos = Atomic<Int64>(.max)
    private let epoch = ContinuousClock.now
    /// Requests answered 503 because the pool had nothing to pick.
    private let noUpstreamCount = Atomic<Int>(0)
    /// Sampled keys whose ring owner changed, summed over snapshot changes.
    private let ringKeysMovedCount = Atomic<Int>(0)

    /// How many fixed keys are looked up before and after each snapshot change to estimate moved keys.
    static let ringSampleCount = 10_000

    /// Creates an empty pool; requests to it get 503 `no_upstream` until the first `update`.
    public init(name: String, settings: LoadBalancer.Settings) {
        self.name = name
        self.settings = settings
        self.balancer = Balancer(settings: settings)
        let snapshot = self.balancer.snapshot
        self.state = Mutex(
            State(tracker: HealthTracker(settings: settings), snapshotStats: SnapshotStats(generation: snapshot.generation, stats: []))
        )
    }

    // MARK: - Membership

    /// Replaces the pool's members (the healthy instances the registry reports). Feeds
    /// `HealthTracker.onMembershipChange`, then installs the resulting plan as a new snapshot atomically; requests in
    /// flight finish on the snapshot they started with. Members that stay keep their ejection state and statistics.
    public func update(_ endpoints: [Endpoint]) {
        let now = ContinuousClock.now
        self.state.withLock { state in
            state.tracker.onMembershipChange(endpoints, now: now)
            state.members = endpoints
            var stats: [String: EndpointStats] = [:]
            stats.reserveCapacity(endpoints.count)
            for endpoint in endpoints {
                if let existing = state.stats[endpoint.id], existing.address == endpoint.address {
                    stats[endpoint.id] = existing
                } else {
                    stats[endpoint.id] = EndpointStats(id: endpoint.id, address: endpoint.address)
                }
            }
            state.stats = stats
            self.replan(&state, now: now)
        }
    }

    // MARK: - Status

    /// Whether the pool is in panic mode (too few healthy endpoints, so it balances over all of them).
    public var isPanicking: Bool {
        self.state.withLock { $0.plan?.isPanicking ?? false }
    }

    /// Every member's health and counters, in membership order. Applies a plan review that is due first.
    public func status() -> [UpstreamStatus] {
        let now = ContinuousClock.now
        return self.state.withLock { state in
            self.replan(&state, now: now)
            let snapshot = self.balancer.snapshot
            return state.members.map { endpoint in
                let stats = state.stats[endpoint.id]
                let index = snapshot.endpoints.firstIndex { $0.id == endpoint.id }
                let until = state.ejectedUntil[endpoint.id]
                return UpstreamStatus(
                    id: endpoint.id,
                    address: endpoint.address,
                    weight: endpoint.weight,
                    isHealthy: until == nil,
                    ejectedUntil: until,
                    inFlight: index.map { snapshot.inFlight[$0].current } ?? 0,
                    requests: stats?.requests ?? 0,
                    failures: stats?.failures ?? 0
                )
            }
        }
    }

    /// The statistics objects of the members, in membership order (for metrics).
    var memberStats: [EndpointStats] {
        self.state.withLock { state in state.members.compactMap { state.stats[$0.id] } }
    }

    /// Requests answered 503 `no_upstream`.
    var noUpstreamResponses: Int { self.noUpstreamCount.load(ordering: .relaxed) }
    /// Sampled ring keys that moved owner, summed over snapshot changes.
    var ringKeysMoved: Int { self.ringKeysMovedCount.load(ordering: .relaxed) }

    // MARK: - Request path

    /// Applies a due plan review, then picks an endpoint; `nil` when the pool has nothing to pick.
    func pick(hashKey: UInt64?, now: ContinuousClock.Instant) -> Pick? {
        if self.nanos(now) >= self.reviewAtNanos.load(ordering: .relaxed) {
            self.state.withLock { self.replan(&$0, now: now) }
        }
        return self.balancer.pick(hashKey: hashKey)
    }

    /// The statistics of `snapshot`'s endpoints in snapshot order: the cached array for the current snapshot, or one
    /// built by id for an older one (endpoints that left the pool get fresh, unlisted objects).
    func stats(for snapshot: EndpointSnapshot) -> SnapshotStats {
        self.state.withLock { state in
            if state.snapshotStats.generation == snapshot.generation { return state.snapshotStats }
            return SnapshotStats(
                generation: snapshot.generation,
                stats: snapshot.endpoints.map { state.stats[$0.id] ?? EndpointStats(id: $0.id, address: $0.address) }
            )
        }
    }

    /// Counts a 503 `no_upstream` answer.
    func recordNoUpstream() {
        self.noUpstreamCount.wrappingAdd(1, ordering: .relaxed)
    }

    /// A request to the endpoint got a response: resets its failure streak (taking the lock only after a failure).
    func recordSuccess(_ stats: EndpointStats, now: ContinuousClock.Instant) {
        guard stats.mayHaveFailureStreak.load(ordering: .relaxed) else { return }
        stats.mayHaveFailureStreak.store(false, ordering: .relaxed)
        self.state.withLock { $0.tracker.onSuccess(stats.id, now: now) }
    }

    /// A request to the endpoint failed (connect error, timeout, connection lost): feeds passive ejection and, when
    /// the endpoint is ejected, re-plans the snapshot at once.
    func recordFailure(_ stats: EndpointStats, now: ContinuousClock.Instant) {
        stats.recordFailure()
        stats.mayHaveFailureStreak.store(true, ordering: .relaxed)
        self.state.withLock { state in
            guard case .ejected(let until) = state.tracker.onFailure(stats.id, now: now) else { return }
            stats.recordEjection()
            state.ejectedUntil[stats.id] = until
            self.settings.logger.info(
                "upstream ejected",
                metadata: [
                    "lb.pool": "\(self.name)", "lb.endpoint": "\(stats.id)",
                    "lb.ejected_for_ms": "\(now.duration(to: until).nanoseconds / 1_000_000)",
                ]
            )
            self.replan(&state, now: now)
        }
    }

    // MARK: - Planning

    /// Asks the tracker for a plan and, when it differs from the installed one, installs it in the balancer.
    private func replan(_ state: inout State, now: ContinuousClock.Instant) {
        let plan = state.tracker.plan(now: now)
        if !state.ejectedUntil.isEmpty {
            state.ejectedUntil = state.ejectedUntil.filter { plan.ejected.contains($0.key) }
        }
        if plan != state.plan {
            let previous = self.balancer.snapshot
            self.balancer.update(plan: plan)
            let current = self.balancer.snapshot
            if self.settings.strategy == .consistentHash {
                self.ringKeysMovedCount.wrappingAdd(Self.movedKeys(from: previous, to: current), ordering: .relaxed)
            }
            state.plan = plan
            state.snapshotStats = SnapshotStats(
                generation: current.generation,
                stats: current.endpoints.map { state.stats[$0.id] ?? EndpointStats(id: $0.id, address: $0.address) }
            )
        }
        self.reviewAtNanos.store(plan.nextReview.map { self.nanos($0) } ?? .max, ordering: .relaxed)
    }

    /// How many of `ringSampleCount` fixed keys change owner between two snapshots' rings (keys without an owner
    /// on either side do not count). `HashRing` does not report moved keys, so this estimates them.
    static func movedKeys(from previous: EndpointSnapshot, to current: EndpointSnapshot) -> Int {
        guard let before = previous.ring, let after = current.ring, before.count > 0, after.count > 0 else { return 0 }
        var moved = 0
        for sample in 0..<UInt64(Self.ringSampleCount) {
            // The same transformation `ConsistentHashStrategy` applies to a caller's key.
            let hash = StableHash.mix(StableHash.mix(sample))
            guard let old = before.owner(of: hash), let new = after.owner(of: hash) else { continue }
            if previous.endpoints[old].id != current.endpoints[new].id { moved += 1 }
        }
        return moved
    }

    private func nanos(_ instant: ContinuousClock.Instant) -> Int64 {
        self.epoch.duration(to: instant).nanoseconds
    }
}

/// The statistics objects of one snapshot's endpoints, in snapshot order.
struct SnapshotStats: Sendable {
    /// The snapshot's generation.
    var generation: UInt64
    /// One entry per endpoint of the snapshot.
    var stats: [EndpointStats]
}

// MARK: - Upstream status

/// One endpoint's health and counters, as `UpstreamPool.status()` reports them.
public struct UpstreamStatus: Sendable, Hashable {
    /// The endpoint id.
    public var id: String
    /// Where it is.
    public var address: Endpoint.Address
    /// Its configured weight.
    public var weight: Int
    /// `false` while passive ejection keeps it out of the pool.
    public var isHealthy: Bool
    /// When its current ejection ends; `nil` when it is not ejected.
    public var ejectedUntil: ContinuousClock.Instant?
    /// Requests in flight to it now (0 while it is ejected).
    public var inFlight: Int
    /// Responses sent to clients on its behalf, proxy-generated 502 and 504 included.
    public var requests: Int
    /// Failed attempts (connect errors, timeouts, connections lost before the response ended).
    public var failures: Int
}
