/// A small, fast, seedable generator (xoshiro256**, seeded through SplitMix64) for tests and
/// the simulator: the same seed always yields the same sequence, on every platform.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    /// Creates a generator from a 64-bit seed.
    public init(seed: UInt64) {
        var splitMix = SplitMix64(seed: seed)
        self.state = (splitMix.next(), splitMix.next(), splitMix.next(), splitMix.next())
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        let result = rotateLeft(self.state.1 &* 5, 7) &* 9
        let t = self.state.1 << 17
        self.state.2 ^= self.state.0
        self.state.3 ^= self.state.1
        self.state.1 ^= self.state.2
        self.state.0 ^= self.state.3
        self.state.2 ^= t
        self.state.3 = rotateLeft(self.state.3, 45)
        return result
    }

    /// A uniform `Double` in `0 ..< 1`.
    public mutating func nextUnit() -> Double {
        Double(self.next() >> 11) * 0x1.0p-53
    }

    /// An independent generator derived from this one's seed and `stream` (e.g. a node index).
    public static func derived(seed: UInt64, stream: UInt64) -> SeededRandom {
        var mixer = SplitMix64(seed: seed ^ (stream &* 0x9E37_79B9_7F4A_7C15))
        return SeededRandom(seed: mixer.next())
    }
}

/// SplitMix64, used to expand one seed into generator state.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator from a seed.
    public init(seed: UInt64) { self.state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private func rotateLeft(_ value: UInt64, _ count: UInt64) -> UInt64 {
    (value << count) | (value >> (64 - count))
}
