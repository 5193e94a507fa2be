// MARK: - Writer

/// Appends wire primitives to a byte array.
struct ByteWriter {
    var bytes: [UInt8]

    init(capacity: Int = 64) {
        self.bytes = []
        self.bytes.reserveCapacity(capacity)
    }

    mutating func write(_ byte: UInt8) { self.bytes.append(byte) }

    mutating func write(_ value: UInt16) {
        self.bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        self.bytes.append(UInt8(truncatingIfNeeded: value))
    }

    mutating func write(_ value: UInt32) {
        self.bytes.append(UInt8(truncatingIfNeeded: value >> 24))
        self.bytes.append(UInt8(truncatingIfNeeded: value >> 16))
        self.bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        self.bytes.append(UInt8(truncatingIfNeeded: value))
    }

    /// Unsigned LEB128.
    mutating func writeVarint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            self.bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        self.bytes.append(UInt8(truncatingIfNeeded: rest))
    }

    mutating func writeVarint(_ value: Int) { self.writeVarint(UInt64(clamping: value)) }

    mutating func write(bytes: some Collection<UInt8>) {
        self.writeVarint(bytes.count)
        self.bytes.append(contentsOf: bytes)
    }

    mutating func write(_ string: String) { self.write(bytes: string.utf8) }

    static func varintSize(_ value: Int) -> Int {
        var size = 1
        var rest = UInt64(clamping: value)
        while rest >= 0x80 {
            rest >>= 7
            size += 1
        }
        return size
    }
}

// MARK: - Reader

/// Reads wire primitives from untrusted bytes; every read checks the remaining length first and
/// reports failures as ``SWIM/Codec/DecodeError`` (it never traps).
struct ByteReader {
    let bytes: [UInt8]
    private(set) var index: Int
    let end: Int

    init(_ bytes: [UInt8], from start: Int, to end: Int) {
        self.bytes = bytes
        self.index = start
        self.end = end
    }

    var remaining: Int { self.end - self.index }
    var isAtEnd: Bool { self.index >= self.end }

    mutating func readByte() throws(SWIM.Codec.DecodeError) -> UInt8 {
        guard self.index < self.end else { throw .truncated }
        defer { self.index += 1 }
        return self.bytes[self.index]
    }

    mutating func readUInt16() throws(SWIM.Codec.DecodeError) -> UInt16 {
        let high = try self.readByte()
        let low = try self.readByte()
        return UInt16(high) << 8 | UInt16(low)
    }

    mutating func readVarint() throws(SWIM.Codec.DecodeError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try self.readByte()
            let payload = UInt64(byte & 0x7F)
            if shift == 63 && payload > 1 { throw .varintOverflow }
            result |= payload << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw .varintOverflow }
        }
    }

    mutating func readUInt32Varint() throws(SWIM.Codec.DecodeError) -> UInt32 {
        let value = try self.readVarint()
        guard value <= UInt64(UInt32.max) else { throw .valueOutOfRange }
        return UInt32(value)
    }

    /// A length prefix, checked against `limit` and the bytes left.
    mutating func readLength(limit: Int) throws(SWIM.Codec.DecodeError) -> Int {
        let value = try self.readVarint()
        guard value <= UInt64(limit) else { throw .valueOutOfRange }
        let length = Int(value)
        guard length <= self.remaining else { throw .truncated }
        return length
    }

    mutating func readBytes(limit: Int) throws(SWIM.Codec.DecodeError) -> [UInt8] {
        let length = try self.readLength(limit: limit)
        defer { self.index += length }
        return Array(self.bytes[self.index..<self.index + length])
    }

    mutating func readString(limit: Int) throws(SWIM.Codec.DecodeError) -> String {
        let length = try self.readLength(limit: limit)
        guard let string = String(validating: self.bytes[self.index..<self.index + length], as: UTF8.self) else {
            throw .invalidUTF8
        }
        self.index += length
        return string
    }

    /// Moves past `count` bytes already checked by `readLength`.
    mutating func skip(_ count: Int) throws(SWIM.Codec.DecodeError) {
        guard count >= 0, count <= self.remaining else { throw .truncated }
        self.index += count
    }
}
