import Foundation

/// The binary messages agents exchange to replicate the store (DESIGN decision 3's rules: a magic and a
/// version byte first, every length checked before use, decoders never trap).
///
/// Every message is `"GR" | version (1) | kind (1) | body`. Integers are little-endian; strings and byte
/// strings are a `UInt32` length then the bytes; optionals are a presence byte then the value.
public enum ReplicationMessage: Sendable, Equatable {
    /// Versions to apply (a push, an anti-entropy repair, or the answer to `fetch`).
    case versions([KVVersion])
    /// What applying a `versions` message did.
    case applied(MergeReport)
    /// A node's keyspace digest. `resyncing`: the node is catching up after a long absence; do not pull from it.
    case digest(node: String, resyncing: Bool, digest: KeyspaceDigest)
    /// Asks for the current stamps of every key in these buckets.
    case keysInBuckets([Int])
    /// The current stamps of keys (answer to `keysInBuckets`).
    case keyStamps([KeyStamp])
    /// Asks for the current versions of these keys.
    case fetch([String])
    /// Asks for the digest.
    case digestRequest

    static let magic: [UInt8] = [0x47, 0x52]  // "GR"
    static let wireVersion: UInt8 = 1

    private var kind: UInt8 {
        switch self {
        case .versions: 1
        case .applied: 2
        case .digest: 3
        case .keysInBuckets: 4
        case .keyStamps: 5
        case .fetch: 6
        case .digestRequest: 7
        }
    }

    /// The encoded message.
    public func encoded() -> Data {
        var writer = WireWriter()
        writer.bytes(Self.magic)
        writer.u8(Self.wireVersion)
        writer.u8(self.kind)
        switch self {
        case .versions(let versions):
            writer.u32(UInt32(versions.count))
            for version in versions { writer.version(version) }
        case .applied(let report):
            writer.u32(UInt32(report.applied))
            writer.u32(UInt32(report.current))
            writer.u32(UInt32(report.duplicates))
            writer.u32(UInt32(report.conflicts))
            writer.u32(UInt32(report.ignored))
        case .digest(let node, let resyncing, let digest):
            writer.string(node)
            writer.u8(resyncing ? 1 : 0)
            for bucket in digest.buckets { writer.u64(bucket) }
        case .keysInBuckets(let buckets):
            writer.u32(UInt32(buckets.count))
            for bucket in buckets { writer.u32(UInt32(bucket)) }
        case .keyStamps(let stamps):
            writer.u32(UInt32(stamps.count))
            for entry in stamps {
                writer.string(entry.key)
                writer.stamp(entry.stamp)
                writer.u8(entry.tombstone ? 1 : 0)
            }
        case .fetch(let keys):
            writer.u32(UInt32(keys.count))
            for key in keys { writer.string(key) }
        case .digestRequest:
            break
        }
        return writer.data
    }

    /// Decodes a message; throws `ReplicationWireError` on anything malformed (never traps).
    public static func decode(_ data: Data) throws(ReplicationWireError) -> ReplicationMessage {
        var reader = WireReader(data)
        guard Array(try reader.bytes(2)) == Self.magic else { throw ReplicationWireError("not a replication message (bad magic)") }
        let version = try reader.u8()
        guard version == Self.wireVersion else { throw ReplicationWireError("unsupported replication wire version \(version)") }
        let kind = try reader.u8()
        let message: ReplicationMessage
        switch kind {
        case 1:
            let count = try reader.count(minimumBytesEach: 30)
            var versions: [KVVersion] = []
            versions.reserveCapacity(count)
            for _ in 0..<count { versions.append(try reader.version()) }
            message = .versions(versions)
        case 2:
            message = .applied(
                MergeReport(
                    applied: Int(try reader.u32()), current: Int(try reader.u32()), duplicates: Int(try reader.u32()),
                    conflicts: Int(try reader.u32()), ignored: Int(try reader.u32())))
        case 3:
            let node = try reader.string()
            let resyncing = try reader.u8() != 0
            var buckets: [UInt64] = []
            buckets.reserveCapacity(KeyspaceDigest.bucketCount)
            for _ in 0..<KeyspaceDigest.bucketCount { buckets.append(try reader.u64()) }
            message = .digest(node: node, resyncing: resyncing, digest: KeyspaceDigest(buckets: buckets)!)
        case 4:
            let count = try reader.count(minimumBytesEach: 4)
            var buckets: [Int] = []
            for _ in 0..<count {
                let bucket = Int(try reader.u32())
                guard bucket < KeyspaceDigest.bucketCount else { throw ReplicationWireError("bucket \(bucket) out of range") }
                buckets.append(bucket)
            }
            message = .keysInBuckets(buckets)
        case 5:
            let count = try reader.count(minimumBytesEach: 22)
            var stamps: [KeyStamp] = []
            stamps.reserveCapacity(count)
            for _ in 0..<count {
                stamps.append(KeyStamp(key: try reader.string(), stamp: try reader.stamp(), tombstone: try reader.u8() != 0))
            }
            message = .keyStamps(stamps)
        case 6:
            let count = try reader.count(minimumBytesEach: 4)
            var keys: [String] = []
            for _ in 0..<count { keys.append(try reader.string()) }
            message = .fetch(keys)
        case 7:
            message = .digestRequest
        default:
            throw ReplicationWireError("unknown replication message kind \(kind)")
        }
        guard reader.isAtEnd else { throw ReplicationWireError("\(reader.remaining) trailing bytes after the message") }
        return message
    }
}

/// The current stamp of a key, as anti-entropy compares them.
public struct KeyStamp: Sendable, Equatable {
    public var key: String
    public var stamp: Stamp
    public var tombstone: Bool

    public init(key: String, stamp: Stamp, tombstone: Bool) {
        self.key = key
        self.stamp = stamp
        self.tombstone = tombstone
    }
}

/// A replication message that could not be decoded.
public struct ReplicationWireError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Builds a message in a byte array (appending to `Data` byte by byte is several times slower).
private struct WireWriter {
    var bytes: [UInt8] = []

    init() { self.bytes.reserveCapacity(1024) }

    var data: Data { Data(self.bytes) }

    mutating func bytes(_ more: some Sequence<UInt8>) { self.bytes.append(contentsOf: more) }
    mutating func u8(_ value: UInt8) { self.bytes.append(value) }

    mutating func u32(_ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { self.bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    mutating func u64(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { self.bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    mutating func blob(_ blob: Data) {
        self.u32(UInt32(blob.count))
        self.bytes.append(contentsOf: blob)
    }

    mutating func string(_ text: String) {
        var text = text
        text.withUTF8 { utf8 in
            self.u32(UInt32(utf8.count))
            self.bytes.append(contentsOf: utf8)
        }
    }

    mutating func optionalString(_ text: String?) {
        if let text {
            self.u8(1)
            self.string(text)
        } else {
            self.u8(0)
        }
    }

    mutating func stamp(_ stamp: Stamp) {
        self.u64(UInt64(bitPattern: stamp.wall))
        self.u32(stamp.counter)
        self.string(stamp.node)
    }

    mutating func version(_ version: KVVersion) {
        self.string(version.key)
        self.blob(version.value)
        self.optionalString(version.contentType)
        self.u64(UInt64(version.version))
        self.stamp(version.stamp)
        if let parent = version.parent {
            self.u8(1)
            self.stamp(parent)
        } else {
            self.u8(0)
        }
        self.optionalString(version.author)
        self.optionalString(version.client)
        self.u8(version.tombstone ? 1 : 0)
        self.u64(UInt64(bitPattern: version.appliedAt))
    }
}

private struct WireReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ data: Data) { self.bytes = [UInt8](data) }

    var isAtEnd: Bool { self.offset == self.bytes.count }
    var remaining: Int { self.bytes.count - self.offset }

    mutating func bytes(_ count: Int) throws(ReplicationWireError) -> ArraySlice<UInt8> {
        guard count >= 0, count <= self.remaining else {
            throw ReplicationWireError("truncated message: needed \(count) bytes at offset \(self.offset), \(self.remaining) left")
        }
        defer { self.offset += count }
        return self.bytes[self.offset..<(self.offset + count)]
    }

    mutating func u8() throws(ReplicationWireError) -> UInt8 { try self.bytes(1).first! }

    mutating func u32() throws(ReplicationWireError) -> UInt32 {
        try self.bytes(4).reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }

    mutating func u64() throws(ReplicationWireError) -> UInt64 {
        try self.bytes(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }

    /// A count of items, refused when the rest of the message cannot possibly hold that many.
    mutating func count(minimumBytesEach: Int) throws(ReplicationWireError) -> Int {
        let count = Int(try self.u32())
        guard count <= self.remaining / max(1, minimumBytesEach) + 1 else {
            throw ReplicationWireError("count \(count) does not fit in the \(self.remaining) bytes left")
        }
        return count
    }

    mutating func blob() throws(ReplicationWireError) -> Data {
        Data(try self.bytes(Int(try self.u32())))
    }

    mutating func string() throws(ReplicationWireError) -> String {
        let raw = try self.bytes(Int(try self.u32()))
        guard let text = String(validating: raw, as: UTF8.self) else { throw ReplicationWireError("a string is not valid UTF-8") }
        return text
    }

    mutating func optionalString() throws(ReplicationWireError) -> String? {
        try self.u8() == 0 ? nil : try self.string()
    }

    mutating func stamp() throws(ReplicationWireError) -> Stamp {
        let wall = Int64(bitPattern: try self.u64())
        let counter = try self.u32()
        let node = try self.string()
        guard wall >= 0, !node.isEmpty else { throw ReplicationWireError("invalid stamp \(wall).\(counter)@\(node)") }
        return Stamp(wall: wall, counter: counter, node: node)
    }

    mutating func version() throws(ReplicationWireError) -> KVVersion {
        let key = try self.string()
        let value = try self.blob()
        let contentType = try self.optionalString()
        let number = try self.u64()
        guard number >= 1, number < UInt64(Int32.max) else { throw ReplicationWireError("invalid version number \(number) of '\(key)'") }
        let stamp = try self.stamp()
        let parent = try self.u8() == 0 ? nil : try self.stamp()
        let author = try self.optionalString()
        let client = try self.optionalString()
        let tombstone = try self.u8() != 0
        let appliedAt = Int64(bitPattern: try self.u64())
        return KVVersion(
            key: key, value: value, contentType: contentType, version: Int(number), revision: 0, stamp: stamp, parent: parent,
            author: author, client: client, tombstone: tombstone, appliedAt: appliedAt)
    }
}
