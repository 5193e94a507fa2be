// MARK: - Stable 64-bit hashing

/// A fast, stable 64-bit hash: FNV-1a 64 over the bytes, then the MurmurHash3 `fmix64` finaliser.
///
/// Unlike `Hasher`, the result is the same in every process and on every run, which the consistent-hash ring needs
/// (every load balancer must place an endpoint at the same points). FNV-1a alone mixes its high bits poorly;
/// the finaliser fixes that for a few cycles.
public enum StableHash {
    static let fnvOffsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    static let fnvPrime: UInt64 = 0x0000_0100_0000_01b3

    /// The hash of a string's UTF-8 bytes.
    public static func hash(_ string: String) -> UInt64 {
        var string = string
        return string.withUTF8 { Self.hash(UnsafeRawBufferPointer($0)) }
    }

    /// The hash of some bytes.
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var state = Self.fnvOffsetBasis
        for byte in bytes {
            state = (state ^ UInt64(byte)) &* Self.fnvPrime
        }
        return Self.mix(state)
    }

    /// The hash of any sequence of bytes.
    public static func hash(bytes: some Sequence<UInt8>) -> UInt64 {
        var state = Self.fnvOffsetBasis
        for byte in bytes {
            state = (state ^ UInt64(byte)) &* Self.fnvPrime
        }
        return Self.mix(state)
    }

    /// MurmurHash3's `fmix64`: a bijection on `UInt64` that spreads every input bit over every output bit.
    @inlinable
    public static func mix(_ value: UInt64) -> UInt64 {
        var x = value
        x ^= x >> 33
        x &*= 0xff51_afd7_ed55_8ccd
        x ^= x >> 33
        x &*= 0xc4ce_b9fe_1a85_ec53
        x ^= x >> 33
        return x
    }
}
