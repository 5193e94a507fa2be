import LoadBalancer
import TestSupport

// MARK: - Fixtures

/// `count` endpoints `endpoint-0…`, on 10.0.0.x:8080, with the given weights (default weight if none).
func makeEndpoints(_ count: Int, weights: [Int]? = nil, prefix: String = "endpoint") -> [Endpoint] {
    (0..<count).map { index in
        Endpoint(
            id: "\(prefix)-\(index)",
            address: .init(host: "10.0.\(index / 250).\(index % 250 + 1)", port: 8080),
            weight: weights?[index] ?? Endpoint.defaultWeight
        )
    }
}

/// Picks `count` times and returns how often each snapshot index was chosen.
func histogram<S: LoadBalancingStrategy>(
    _ strategy: inout S,
    _ snapshot: EndpointSnapshot,
    picks count: Int,
    rng: inout SplitMix64,
    key: (Int) -> UInt64? = { _ in nil }
) -> [Int] {
    var counts = [Int](repeating: 0, count: snapshot.count)
    for pick in 0..<count {
        if let index = strategy.chooseIndex(from: snapshot, context: PickContext(hashKey: key(pick)), using: &rng) {
            counts[index] += 1
        }
    }
    return counts
}
