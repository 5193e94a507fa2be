import Synchronization

// MARK: - In-flight counters

/// The number of requests in flight to one endpoint, shared by every snapshot that contains the endpoint.
///
/// The proxy calls `increment()` when it sends a request to a picked endpoint and `decrement()` exactly once when the
/// exchange ends (response complete, error or cancel). Least-request and bounded-load consistent hashing read it.
/// Because the counter is an object found by endpoint id, a request that started on an old snapshot finishes on the
/// same counter that the new snapshot reads: counts never drift across snapshot swaps.
public final class InFlightCounter: Sendable {
    @usableFromInline let value = Atomic<Int>(0)
    private let pool: InFlightCounters.Total

    init(pool: InFlightCounters.Total) {
        self.pool = pool
    }

    /// The requests in flight now (a relaxed read: a hint for balancing, not a synchronisation point).
    @inlinable
    public var current: Int { self.load() }

    @inlinable
    func load() -> Int {
        self.value.load(ordering: .relaxed)
    }

    /// Records a request sent to this endpoint.
    public func increment() {
        self.value.wrappingAdd(1, ordering: .relaxed)
        self.pool.value.wrappingAdd(1, ordering: .relaxed)
    }

    /// Records the end of a request sent to this endpoint. Call it once per `increment()`.
    public func decrement() {
        self.value.wrappingSubtract(1, ordering: .relaxed)
        self.pool.value.wrappingSubtract(1, ordering: .relaxed)
    }
}

/// The in-flight counters of one endpoint pool (one upstream service), keyed by endpoint id, plus their total.
///
/// Create one per pool and pass it to every snapshot of that pool (`Balancer` does this for you). Building a snapshot
/// looks counters up under a lock; picking only reads the counters the snapshot already holds.
public final class InFlightCounters: Sendable {
    @usableFromInline
    final class Total: Sendable {
        @usableFromInline let value = Atomic<Int>(0)

        init() {}
    }

    @usableFromInline let totalStorage = Total()
    private let byID = Mutex<[String: InFlightCounter]>([:])

    /// Creates an empty set of counters.
    public init() {}

    /// The requests in flight to the whole pool, including endpoints that have since left it.
    @inlinable
    public var total: Int {
        self.totalStorage.value.load(ordering: .relaxed)
    }

    /// The counter of the endpoint with this id, created at zero if the pool has not seen it.
    public func counter(for id: String) -> InFlightCounter {
        self.byID.withLock { byID in
            if let counter = byID[id] { return counter }
            let counter = InFlightCounter(pool: self.totalStorage)
            byID[id] = counter
            return counter
        }
    }

    /// The counters for `endpoints`, in order. Counters of endpoints not listed are forgotten (a request still in
    /// flight to one keeps its counter alive and still updates `total`).
    func counters(retaining endpoints: [Endpoint]) -> [InFlightCounter] {
        self.byID.withLock { byID in
            var next: [String: InFlightCounter] = [:]
            next.reserveCapacity(endpoints.count)
            var result: [InFlightCounter] = []
            result.reserveCapacity(endpoints.count)
            for endpoint in endpoints {
                let counter = next[endpoint.id] ?? byID[endpoint.id] ?? InFlightCounter(pool: self.totalStorage)
                next[endpoint.id] = counter
                result.append(counter)
            }
            byID = next
            return result
        }
    }
}
