import CoreMetrics
import Synchronization

// MARK: - Series storage

/// What every stored series knows about itself, so `destroy…` can find it without a scan.
protocol RegisteredSeries: AnyObject, Sendable {
    /// The metric name (the swift-metrics label).
    var name: String { get }
    /// The series labels (the swift-metrics dimensions).
    var labels: [String: String] { get }
}

/// A counter series. Whole-number increments (`Counter`) add to one atomic integer and fractional ones
/// (`FloatingPointCounter`) to one atomic double, so an increment is a single lock-free atomic operation.
final class CounterSeries: RegisteredSeries, CounterHandler, FloatingPointCounterHandler {
    let name: String
    let labels: [String: String]
    private let whole = Atomic<Int64>(0)
    private let fraction = AtomicDouble()

    init(name: String, labels: [String: String]) {
        self.name = name
        self.labels = labels
    }

    /// Adds a positive amount; zero and negative amounts are ignored (a counter never goes down).
    func increment(by amount: Int64) {
        guard amount > 0 else { return }
        self.whole.wrappingAdd(amount, ordering: .relaxed)
    }

    /// Adds a positive finite amount; zero, negative, NaN and infinite amounts are ignored.
    func increment(by amount: Double) {
        guard amount.isFinite, amount > 0 else { return }
        self.fraction.add(amount)
    }

    func reset() {
        self.whole.store(0, ordering: .relaxed)
        self.fraction.store(0)
    }

    /// The total so far.
    var value: Double {
        Double(self.whole.load(ordering: .relaxed)) + self.fraction.load()
    }
}

/// A gauge series (`Gauge`, non-aggregating `Recorder`, `Meter`): one atomic double.
final class GaugeSeries: RegisteredSeries, RecorderHandler, MeterHandler {
    let name: String
    let labels: [String: String]
    private let current = AtomicDouble()

    init(name: String, labels: [String: String]) {
        self.name = name
        self.labels = labels
    }

    func record(_ value: Int64) { self.current.store(Double(value)) }
    func record(_ value: Double) { self.current.store(value) }
    func set(_ value: Int64) { self.current.store(Double(value)) }
    func set(_ value: Double) { self.current.store(value) }

    /// Adds a positive finite amount (swift-metrics `Meter` semantics: other amounts are ignored).
    func increment(by amount: Double) {
        guard amount.isFinite, amount > 0 else { return }
        self.current.add(amount)
    }

    /// Subtracts a positive finite amount (other amounts are ignored).
    func decrement(by amount: Double) {
        guard amount.isFinite, amount > 0 else { return }
        self.current.add(-amount)
    }

    /// The last value set.
    var value: Double { self.current.load() }
}

/// A histogram series (aggregating `Recorder`, `Timer`) with fixed bucket bounds.
///
/// One observation takes this series' own lock (never a registry-wide one) for a few nanoseconds, so a reader always
/// sees buckets, sum and count from the same moment: `count` equals the `+Inf` bucket in every exposition.
final class HistogramSeries: RegisteredSeries, RecorderHandler, TimerHandler {
    struct State {
        /// Per-bucket (not cumulative) counts: one per bound, then the `+Inf` bucket.
        var counts: [Int]
        var sum: Double = 0
    }

    let name: String
    let labels: [String: String]
    let bounds: [Double]
    private let state: Mutex<State>

    /// `bounds` must be finite and strictly increasing.
    init(name: String, labels: [String: String], bounds: [Double]) {
        self.name = name
        self.labels = labels
        self.bounds = bounds
        self.state = Mutex(State(counts: [Int](repeating: 0, count: bounds.count + 1)))
    }

    func record(_ value: Int64) { self.observe(Double(value)) }
    func record(_ value: Double) { self.observe(value) }

    /// Records a duration in seconds, the Prometheus base unit (negative durations count as zero).
    func recordNanoseconds(_ duration: Int64) {
        self.observe(Double(max(duration, 0)) / 1_000_000_000)
    }

    /// Counts `value` into the first bucket whose bound is at least `value`. NaN is ignored.
    func observe(_ value: Double) {
        guard !value.isNaN else { return }
        var low = 0
        var high = self.bounds.count
        while low < high {
            let middle = (low + high) / 2
            if self.bounds[middle] < value { low = middle + 1 } else { high = middle }
        }
        self.state.withLock { state in
            state.counts[low] += 1
            state.sum += value
        }
    }

    /// Buckets, sum and count at this moment (read under the lock, so they agree with each other).
    var value: HistogramValue {
        self.state.withLock { state in
            var cumulative: [Int] = []
            cumulative.reserveCapacity(self.bounds.count)
            var running = 0
            for index in self.bounds.indices {
                running += state.counts[index]
                cumulative.append(running)
            }
            return HistogramValue(
                bounds: self.bounds,
                cumulativeCounts: cumulative,
                sum: state.sum,
                count: running + state.counts[self.bounds.count]
            )
        }
    }
}

/// The handler given out for a series the registry refused (over the per-name cap, a name already used by another
/// kind, or a repeated dimension name): it accepts every call and keeps nothing.
final class DroppedSeries: CounterHandler, FloatingPointCounterHandler, RecorderHandler, MeterHandler, TimerHandler,
    Sendable
{
    static let shared = DroppedSeries()

    private init() {}

    func increment(by amount: Int64) {}
    func increment(by amount: Double) {}
    func decrement(by amount: Double) {}
    func reset() {}
    func record(_ value: Int64) {}
    func record(_ value: Double) {}
    func set(_ value: Int64) {}
    func set(_ value: Double) {}
    func recordNanoseconds(_ duration: Int64) {}
}

// MARK: - Atomic double

/// A `Double` stored as its bit pattern in an `Atomic<UInt64>`; additions use a compare-and-exchange loop.
/// Non-copyable, like `Atomic` itself, so it lives inline in the series object that owns it.
struct AtomicDouble: ~Copyable, Sendable {
    private let bits = Atomic<UInt64>(Double(0).bitPattern)

    init() {}

    func load() -> Double {
        Double(bitPattern: self.bits.load(ordering: .relaxed))
    }

    func store(_ value: Double) {
        self.bits.store(value.bitPattern, ordering: .relaxed)
    }

    func add(_ amount: Double) {
        var expected = self.bits.load(ordering: .relaxed)
        while true {
            let desired = (Double(bitPattern: expected) + amount).bitPattern
            let (exchanged, original) = self.bits.weakCompareExchange(
                expected: expected,
                desired: desired,
                ordering: .relaxed
            )
            if exchanged { return }
            expected = original
        }
    }
}
