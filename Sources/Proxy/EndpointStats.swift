import LoadBalancer
import NIOCore
import Synchronization

// MARK: - Endpoint statistics

/// Counters for one endpoint of one pool, updated with relaxed atomics from every event loop.
///
/// An instance lives as long as its endpoint stays in the pool with the same address; it also keys that
/// endpoint's idle upstream connections (`LoopContext`), so a changed address never reuses an old connection.
final class EndpointStats: Sendable {
    /// Upper bounds of the latency histogram buckets, in microseconds (0.001 s … 10 s).
    static let latencyBoundsMicros: [Int] = [
        1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
        10_000_000,
    ]
    /// The same bounds as Prometheus `le` labels.
    static let latencyLabels: [String] = [
        "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
    ]

    /// The endpoint id.
    let id: String
    /// Where its connections go.
    let address: Endpoint.Address
    /// `address` as a socket address when the host is an IP literal (connects then skip name resolution).
    let socketAddress: SocketAddress?

    /// Responses by status class: index 0 is 1xx … index 4 is 5xx (proxy-generated 502 and 504 included).
    private let codes = AtomicCounters(count: 5)
    /// Latency histogram: one slot per bucket plus the overflow slot (not cumulative).
    private let latency = AtomicCounters(count: EndpointStats.latencyBoundsMicros.count + 1)
    private let latencySumMicros = Atomic<Int>(0)
    private let failureCount = Atomic<Int>(0)
    private let ejectionCount = Atomic<Int>(0)
    /// Set by a failure, cleared by the next success: lets successes skip the pool lock when there is nothing to reset.
    let mayHaveFailureStreak = Atomic<Bool>(false)

    init(id: String, address: Endpoint.Address) {
        self.id = id
        self.address = address
        self.socketAddress = try? SocketAddress(ipAddress: address.host, port: address.port)
    }

    // MARK: Recording

    /// Counts a response with this status sent to a client on behalf of the endpoint.
    func recordResponse(status: UInt) {
        let index = min(max(Int(status / 100), 1), 5) - 1
        self.codes.add(index)
    }

    /// Records the time from sending a request to receiving its response head.
    func recordLatency(_ duration: Duration) {
        let micros = max(0, Int(duration.nanoseconds / 1_000))
        var bucket = 0
        let bounds = EndpointStats.latencyBoundsMicros
        while bucket < bounds.count, micros > bounds[bucket] { bucket += 1 }
        self.latency.add(bucket)
        self.latencySumMicros.wrappingAdd(micros, ordering: .relaxed)
    }

    /// Counts a failed attempt (connect error, timeout, connection lost).
    func recordFailure() {
        self.failureCount.wrappingAdd(1, ordering: .relaxed)
    }

    /// Counts an ejection.
    func recordEjection() {
        self.ejectionCount.wrappingAdd(1, ordering: .relaxed)
    }

    // MARK: Reading

    /// Responses by status class (`"1xx"` … `"5xx"`), zero classes left out.
    var responsesByClass: [(label: String, count: Int)] {
        (0..<5).compactMap { index in
            let count = self.codes.load(index)
            return count == 0 ? nil : ("\(index + 1)xx", count)
        }
    }

    /// All responses counted for the endpoint.
    var requests: Int { (0..<5).reduce(0) { $0 + self.codes.load($1) } }
    /// All failed attempts.
    var failures: Int { self.failureCount.load(ordering: .relaxed) }
    /// All ejections.
    var ejections: Int { self.ejectionCount.load(ordering: .relaxed) }

    /// The cumulative histogram: a count per bound (`latencyLabels`), the total count and the sum in seconds.
    var latencyHistogram: (cumulative: [Int], count: Int, sumSeconds: Double) {
        var cumulative: [Int] = []
        cumulative.reserveCapacity(EndpointStats.latencyBoundsMicros.count)
        var running = 0
        for index in 0..<EndpointStats.latencyBoundsMicros.count {
            running += self.latency.load(index)
            cumulative.append(running)
        }
        running += self.latency.load(EndpointStats.latencyBoundsMicros.count)
        return (cumulative, running, Double(self.latencySumMicros.load(ordering: .relaxed)) / 1_000_000)
    }
}

// MARK: - Atomic counter array

/// A fixed number of relaxed atomic counters in one allocation.
///
/// `@unchecked Sendable`: every element is an `Atomic<Int>`, the storage never moves or resizes, and it is freed only
/// in `deinit`, when no other reference exists.
final class AtomicCounters: @unchecked Sendable {
    private let storage: UnsafeMutablePointer<Atomic<Int>>
    private let count: Int

    init(count: Int) {
        self.count = count
        self.storage = .allocate(capacity: count)
        for index in 0..<count {
            (self.storage + index).initialize(to: Atomic(0))
        }
    }

    deinit {
        self.storage.deinitialize(count: self.count)
        self.storage.deallocate()
    }

    /// Adds `amount` to counter `index`.
    func add(_ index: Int, _ amount: Int = 1) {
        precondition(index >= 0 && index < self.count, "counter index out of range")
        self.storage[index].wrappingAdd(amount, ordering: .relaxed)
    }

    /// The value of counter `index`.
    func load(_ index: Int) -> Int {
        precondition(index >= 0 && index < self.count, "counter index out of range")
        return self.storage[index].load(ordering: .relaxed)
    }
}
