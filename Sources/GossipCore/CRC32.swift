extension SWIM.Codec {
    /// CRC-32 (IEEE 802.3, reflected polynomial `0xEDB88320`), table-driven.
    /// `crc32("123456789".utf8) == 0xCBF43926`.
    public static func crc32(_ bytes: some Sequence<UInt8>) -> UInt32 {
        let array = Array(bytes)
        return self.crc32(array, range: 0..<array.count)
    }

    /// CRC-32 of `bytes[range]` without copying.
    static func crc32(_ bytes: [UInt8], range: Range<Int>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        crc32Table.withUnsafeBufferPointer { table in
            bytes.withUnsafeBufferPointer { buffer in
                for index in range {
                    crc = table[Int((crc ^ UInt32(buffer[index])) & 0xFF)] ^ (crc >> 8)
                }
            }
        }
        return crc ^ 0xFFFF_FFFF
    }

    static let crc32Table: [UInt32] = (0..<256).map { index -> UInt32 in
        var value = UInt32(index)
        for _ in 0..<8 {
            value = (value & 1) == 1 ? (0xEDB8_8320 ^ (value >> 1)) : (value >> 1)
        }
        return value
    }
}
