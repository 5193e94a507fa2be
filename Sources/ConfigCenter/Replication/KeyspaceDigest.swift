/// A digest tree of a keyspace for anti-entropy: the current version (live or tombstone) of every key
/// hashes into one of `bucketCount` buckets by key; a bucket is the XOR of `hash(key, stamp)` over its keys,
/// so a change updates it in O(1); the root hashes the buckets. Two stores with the same root hold the same
/// current versions (up to hash collisions); differing buckets say where to look.
public struct KeyspaceDigest: Sendable, Equatable {
    /// Buckets in a digest. 256 × 8 bytes = 2 KiB per exchange; with 10,000 keys a bucket holds ~40.
    public static let bucketCount = 256

    public private(set) var buckets: [UInt64]

    public init() {
        self.buckets = Array(repeating: 0, count: Self.bucketCount)
    }

    public init?(buckets: [UInt64]) {
        guard buckets.count == Self.bucketCount else { return nil }
        self.buckets = buckets
    }

    /// The bucket of `key` (stable across nodes, releases and platforms: FNV-1a, not `Hasher`).
    public static func bucket(of key: String) -> Int {
        Int(FNV1a.hash(key.utf8) % UInt64(self.bucketCount))
    }

    /// The contribution of one current version.
    public static func itemHash(key: String, stamp: Stamp) -> UInt64 {
        var hash = FNV1a()
        hash.combine(key.utf8)
        hash.combine(UInt8(0))
        hash.combine(UInt64(bitPattern: stamp.wall))
        hash.combine(UInt64(stamp.counter))
        hash.combine(stamp.node.utf8)
        // Finalise (splitmix64) so that XOR of many items does not cancel structured patterns.
        var z = hash.value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Replaces the current version of `key`: `old` leaves the digest, `new` enters (either may be nil).
    public mutating func replace(key: String, old: Stamp?, new: Stamp?) {
        let bucket = Self.bucket(of: key)
        if let old { self.buckets[bucket] ^= Self.itemHash(key: key, stamp: old) }
        if let new { self.buckets[bucket] ^= Self.itemHash(key: key, stamp: new) }
    }

    /// One hash over every bucket.
    public var root: UInt64 {
        var hash = FNV1a()
        for bucket in self.buckets { hash.combine(bucket) }
        return hash.value
    }

    /// Indexes of the buckets that differ from `other`.
    public func differingBuckets(from other: KeyspaceDigest) -> [Int] {
        (0..<Self.bucketCount).filter { self.buckets[$0] != other.buckets[$0] }
    }
}

/// 64-bit FNV-1a.
struct FNV1a {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    static func hash(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var hash = FNV1a()
        hash.combine(bytes)
        return hash.value
    }

    mutating func combine(_ bytes: some Sequence<UInt8>) {
        for byte in bytes { self.combine(byte) }
    }

    mutating func combine(_ byte: UInt8) {
        self.value = (self.value ^ UInt64(byte)) &* 0x100_0000_01b3
    }

    mutating func combine(_ word: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { self.combine(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
    }
}
