// PickerBench: nanoseconds per pick for each load-balancing strategy at N = 3, 100 and 1,000 endpoints, and the
// time to rebuild a consistent-hash ring at N = 1,000. Run with `swift run -c release PickerBench`.
//
// Each cell is the best of 5 rounds of a fixed number of picks (after a warm-up), so the whole run is bounded
// (a few seconds). "strategy" rows call the pure strategy value directly; "Balancer" rows go through
// `Balancer.pick`, the path the proxy uses (mutex + internal RNG).

import LoadBalancer
import TestSupport

// MARK: - Harness

struct Case {
    var name: String
    var settings: Settings
    var weights: (Int) -> Int = { _ in Endpoint.defaultWeight }
}

let sizes = [3, 100, 1_000]
let picksPerRound = 1_000_000
let rounds = 5
// Single-threaded benchmark: the sink that keeps picks from being optimised away is only touched from main.
nonisolated(unsafe) var checksum = 0

func nanoseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1e9 + Double(duration.components.attoseconds) / 1e9
}

func endpoints(_ count: Int, weight: (Int) -> Int) -> [Endpoint] {
    (0..<count).map { index in
        Endpoint(
            id: "instance-\(index)",
            address: .init(host: "10.0.\(index / 250).\(index % 250 + 1)", port: 8080),
            weight: weight(index)
        )
    }
}

/// Gives every endpoint a few requests in flight, as under real load (least request and bounded load read them).
func addLoad(_ snapshot: EndpointSnapshot, rng: inout SplitMix64) {
    for counter in snapshot.inFlight {
        for _ in 0..<Int(rng.next(upperBound: UInt64(8))) { counter.increment() }
    }
}

/// Best-of-`rounds` ns per call of `body`, which performs `picksPerRound` picks.
func measure(_ body: () -> Int) -> Double {
    checksum &+= body()  // warm-up
    var best = Double.infinity
    for _ in 0..<rounds {
        let start = ContinuousClock.now
        checksum &+= body()
        best = min(best, nanoseconds(start.duration(to: .now)) / Double(picksPerRound))
    }
    return best
}

func strategyNanoseconds(_ benchCase: Case, count: Int) -> Double {
    var rng = SplitMix64(seed: 42)
    let snapshot = EndpointSnapshot(endpoints: endpoints(count, weight: benchCase.weights), settings: benchCase.settings)
    addLoad(snapshot, rng: &rng)
    var strategy = ConfiguredStrategy(settings: benchCase.settings)
    strategy.prepare(for: snapshot, using: &rng)
    return measure {
        var sum = 0
        var key: UInt64 = 0
        for _ in 0..<picksPerRound {
            key &+= 0x9e37_79b9_7f4a_7c15
            sum &+= strategy.chooseIndex(from: snapshot, context: PickContext(hashKey: key), using: &rng) ?? 0
        }
        return sum
    }
}

func balancerNanoseconds(_ benchCase: Case, count: Int) -> Double {
    var rng = SplitMix64(seed: 43)
    let balancer = Balancer(settings: benchCase.settings, endpoints: endpoints(count, weight: benchCase.weights))
    addLoad(balancer.snapshot, rng: &rng)
    return measure {
        var sum = 0
        var key: UInt64 = 0
        for _ in 0..<picksPerRound {
            key &+= 0x9e37_79b9_7f4a_7c15
            sum &+= balancer.pick(hashKey: key)?.index ?? 0
        }
        return sum
    }
}

// MARK: - Cases

func settings(_ strategy: Settings.Strategy, _ configure: (inout Settings) -> Void = { _ in }) -> Settings {
    var settings = Settings()
    settings.strategy = strategy
    configure(&settings)
    return settings
}

let cases = [
    Case(name: "round robin", settings: settings(.roundRobin)),
    Case(name: "smooth WRR (equal weights)", settings: settings(.weightedRoundRobin)),
    Case(name: "smooth WRR (4 distinct weights)", settings: settings(.weightedRoundRobin), weights: { [50, 100, 200, 400][$0 % 4] }),
    Case(name: "least request (exact ≤ 8, else P2C)", settings: settings(.leastRequest)),
    Case(name: "consistent hash (ring, 160 vnodes)", settings: settings(.consistentHash)),
    Case(name: "consistent hash, bounded load 1.25", settings: settings(.consistentHash) { $0.consistentHash.boundedLoadFactor = 1.25 }),
]

// MARK: - Run

func cell(_ value: Double) -> String {
    let text = value < 10 ? String(Double(Int(value * 10)) / 10) : String(Int(value.rounded()))
    return String(repeating: " ", count: max(0, 9 - text.count)) + text
}

func header(_ text: String) -> String {
    String(repeating: " ", count: max(0, 9 - text.count)) + text
}

func pad(_ text: String, _ width: Int) -> String {
    text + String(repeating: " ", count: max(0, width - text.count))
}

let nameWidth = 52
print("PickerBench — ns per pick (best of \(rounds) × \(picksPerRound) picks)")
print(pad("strategy", nameWidth) + sizes.map { header("N=\($0)") }.joined())
print(String(repeating: "-", count: nameWidth + 9 * sizes.count))
for benchCase in cases {
    print(pad(benchCase.name, nameWidth) + sizes.map { cell(strategyNanoseconds(benchCase, count: $0)) }.joined())
}
for benchCase in cases {
    print(pad("Balancer.pick: " + benchCase.name, nameWidth) + sizes.map { cell(balancerNanoseconds(benchCase, count: $0)) }.joined())
}

// Ring rebuild: the whole snapshot (weights, counters, 160,000 ring points) at N = 1,000.
let rebuildEndpoints = endpoints(1_000, weight: { _ in Endpoint.defaultWeight })
let counters = InFlightCounters()
var rebuildBest = Double.infinity
for _ in 0..<10 {
    let start = ContinuousClock.now
    let snapshot = EndpointSnapshot(endpoints: rebuildEndpoints, counters: counters, virtualNodesPerDefaultWeight: 160)
    rebuildBest = min(rebuildBest, nanoseconds(start.duration(to: .now)))
    checksum &+= snapshot.ring?.count ?? 0
}
print(String(repeating: "-", count: nameWidth + 9 * sizes.count))
print(pad("ring rebuild, N = 1,000 × 160 vnodes (ms)", nameWidth) + cell(rebuildBest / 1e6))
print("(checksum \(checksum))")
