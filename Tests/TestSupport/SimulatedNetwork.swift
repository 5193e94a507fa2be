import GossipCore

/// The network between simulated members: per-datagram loss, latency with jitter, partitions
/// between groups. TCP (push-pull, stream pings) is modelled as lossless but slower (a handshake
/// plus the transfer) and blocked by partitions.
public struct SimulatedNetwork: Sendable {
    /// Probability that a UDP datagram is lost, `0 ... 1`.
    public var lossProbability: Double
    /// One-way latency of a datagram.
    public var latency: Duration
    /// Extra uniform random delay `0 ..< jitter` added to each datagram.
    public var jitter: Duration
    /// Extra delay of a TCP exchange leg over a datagram (handshake).
    public var streamOverhead: Duration
    /// How long a TCP connect into a partition hangs before failing.
    public var connectTimeout: Duration

    /// Group of each member; members in different groups cannot talk. `nil`: no partition.
    public private(set) var groups: [Int]?

    /// Creates network conditions (defaults: a LAN, 0.5 ms ± 0.5 ms, no loss).
    public init(
        lossProbability: Double = 0,
        latency: Duration = .microseconds(500),
        jitter: Duration = .microseconds(500),
        streamOverhead: Duration = .milliseconds(1),
        connectTimeout: Duration = .seconds(1)
    ) {
        self.lossProbability = lossProbability
        self.latency = latency
        self.jitter = jitter
        self.streamOverhead = streamOverhead
        self.connectTimeout = connectTimeout
    }

    /// Splits the members into groups (`groups[i]` lists member indices); unlisted members form one
    /// more group together.
    public mutating func partition(_ groups: [[Int]], memberCount: Int) {
        var assignment = [Int](repeating: groups.count, count: memberCount)
        for (group, members) in groups.enumerated() {
            for member in members where member < memberCount { assignment[member] = group }
        }
        self.groups = assignment
    }

    /// Removes every partition.
    public mutating func heal() { self.groups = nil }

    /// Whether `a` and `b` are on the same side.
    public func canReach(_ a: Int, _ b: Int) -> Bool {
        guard let groups = self.groups, a < groups.count, b < groups.count else { return true }
        return groups[a] == groups[b]
    }

    /// Delay of one datagram, or `nil` if it is lost.
    func datagramDelay(from a: Int, to b: Int, using rng: inout SeededRandom) -> Duration? {
        guard self.canReach(a, b) else { return nil }
        if self.lossProbability > 0 && rng.nextUnit() < self.lossProbability { return nil }
        return self.latency + self.randomJitter(using: &rng)
    }

    /// Delay of one TCP leg.
    func streamDelay(using rng: inout SeededRandom) -> Duration {
        self.latency + self.streamOverhead + self.randomJitter(using: &rng)
    }

    private func randomJitter(using rng: inout SeededRandom) -> Duration {
        let nanoseconds = self.jitter.components.attoseconds / 1_000_000_000 + self.jitter.components.seconds * 1_000_000_000
        guard nanoseconds > 0 else { return .zero }
        return .nanoseconds(Int64(rng.nextUnit() * Double(nanoseconds)))
    }
}
