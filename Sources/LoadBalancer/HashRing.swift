// MARK: - Hash ring

/// A consistent-hash ring with virtual nodes, built once per snapshot and searched by binary search inside a
/// top-bits bucket.
///
/// Each endpoint gets `vnodes ≈ virtualNodesPerDefaultWeight × effectiveWeight / 100` points (at least one), so an
/// endpoint of weight 200 owns about twice the keys of one of weight 100. Point `j` of an endpoint sits at
/// `fmix64(StableHash(id) ^ j·φ)`: it depends only on the endpoint's own id, so adding or removing one endpoint moves
/// only the keys that endpoint gains or loses (about 1/N), and a weight change (slow start) adds or removes only the
/// tail of the endpoint's own points.
///
/// Layout: one sorted `[UInt64]`. The high 48 bits of a point are its ring position and the low 16 bits the index of
/// its endpoint in the snapshot, so the ring holds at most 65,536 endpoints. A bucket table indexed by the top
/// ~log2(points) bits narrows each lookup to one or two points before the binary search (4 bytes a bucket).
///
/// Balance: with `k` points per endpoint an endpoint's share of the ring has a relative standard deviation of about
/// `1/√k` (7.9% at the default 160, 2.5% at 1,600). More points buy evenness at the cost of memory (8 bytes each)
/// and rebuild time (a sort of `N × k` values).
public struct HashRing: Sendable {
    @usableFromInline static let ownerBits: UInt64 = 16
    @usableFromInline static let ownerMask: UInt64 = (1 << 16) - 1
    /// The most endpoints one ring can hold.
    public static let maximumEndpoints = 1 << 16
    static let golden: UInt64 = 0x9e37_79b9_7f4a_7c15

    /// The sorted points: position in the high 48 bits, endpoint index in the low 16.
    @usableFromInline let points: [UInt64]
    /// `buckets[b]` is the index of the first point whose top `bucketBits` bits are at least `b` (with a final
    /// entry of `points.count`), so a lookup binary-searches only the few points sharing the key's top bits.
    @usableFromInline let buckets: [UInt32]
    /// How many top bits select a bucket: about log2 of the point count (one or two points a bucket), at most 20.
    @usableFromInline let bucketShift: UInt64

    /// The number of points (virtual nodes) on the ring.
    public var count: Int { self.points.count }

    /// Builds a ring for endpoints with the given ids and virtual-node counts (one entry per endpoint, in snapshot order).
    public init(ids: [String], virtualNodes: [Int]) {
        precondition(ids.count == virtualNodes.count, "one virtual-node count per endpoint")
        precondition(ids.count <= HashRing.maximumEndpoints, "a ring holds at most 65,536 endpoints")
        var points: [UInt64] = []
        points.reserveCapacity(virtualNodes.reduce(0) { $0 + max(1, $1) })
        for (index, id) in ids.enumerated() {
            let base = StableHash.hash(id)
            let owner = UInt64(index)
            for replica in 0..<max(1, virtualNodes[index]) {
                let position = StableHash.mix(base ^ (UInt64(replica) &* HashRing.golden))
                points.append((position & ~HashRing.ownerMask) | owner)
            }
        }
        precondition(points.count < Int(UInt32.max), "too many ring points")
        HashRing.radixSort(&points)
        let bits = min(20, max(1, Int.bitWidth - points.count.leadingZeroBitCount))
        let shift = UInt64(64 - bits)
        var buckets = [UInt32](repeating: 0, count: (1 << bits) + 1)
        var point = 0
        for bucket in 0...(1 << bits) {
            while point < points.count, Int(truncatingIfNeeded: points[point] >> shift) < bucket { point += 1 }
            buckets[bucket] = UInt32(point)
        }
        self.points = points
        self.buckets = buckets
        self.bucketShift = shift
    }

    /// The index of the first point at or clockwise after `hash` (wrapping to the start).
    @inlinable
    public func firstPoint(atOrAfter hash: UInt64) -> Int {
        let target = hash & ~HashRing.ownerMask
        let bucket = Int(truncatingIfNeeded: target >> self.bucketShift)
        return self.points.withUnsafeBufferPointer { points in
            self.buckets.withUnsafeBufferPointer { buckets in
                // Every point in [lower, upper) shares the target's top bits; everything from `upper` on is larger.
                var base = Int(truncatingIfNeeded: buckets[bucket])
                let upper = Int(truncatingIfNeeded: buckets[bucket &+ 1])
                var length = upper &- base
                while length > 0 {
                    let half = length >> 1
                    if points[base &+ half] < target {
                        base = base &+ half &+ 1
                        length = length &- half &- 1
                    } else {
                        length = half
                    }
                }
                return base == points.count ? 0 : base
            }
        }
    }

    /// The snapshot index of the endpoint that owns the point at `pointIndex`.
    @inlinable
    public func owner(ofPoint pointIndex: Int) -> Int {
        Int(truncatingIfNeeded: self.points[pointIndex] & HashRing.ownerMask)
    }

    /// The snapshot index of the endpoint that owns `hash`; `nil` when the ring is empty.
    @inlinable
    public func owner(of hash: UInt64) -> Int? {
        self.points.isEmpty ? nil : self.owner(ofPoint: self.firstPoint(atOrAfter: hash))
    }

    // MARK: - Sorting

    /// LSD radix sort, 16 bits a pass: four linear passes instead of a comparison sort's N log N.
    static func radixSort(_ values: inout [UInt64]) {
        let count = values.count
        guard count > 64 else {
            values.sort()
            return
        }
        var scratch = [UInt64](repeating: 0, count: count)
        var histogram = [Int](repeating: 0, count: 1 << 16)
        values.withUnsafeMutableBufferPointer { source in
            scratch.withUnsafeMutableBufferPointer { target in
                histogram.withUnsafeMutableBufferPointer { histogram in
                    var from = source
                    var to = target
                    for pass in 0..<4 {
                        let shift = UInt64(pass * 16)
                        for i in 0..<histogram.count { histogram[i] = 0 }
                        for value in from { histogram[Int(truncatingIfNeeded: (value >> shift) & 0xffff)] &+= 1 }
                        var sum = 0
                        for i in 0..<histogram.count {
                            let bucket = histogram[i]
                            histogram[i] = sum
                            sum &+= bucket
                        }
                        for value in from {
                            let bucket = Int(truncatingIfNeeded: (value >> shift) & 0xffff)
                            to[histogram[bucket]] = value
                            histogram[bucket] &+= 1
                        }
                        swap(&from, &to)
                    }
                }
            }
        }
        // Four passes (an even number): the sorted data ends in `values`.
    }
}
