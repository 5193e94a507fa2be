// MARK: - Message kinds

extension SWIM.Message {
    /// The wire tag of each message kind.
    enum Kind: UInt8 {
        case ping = 1
        case indirectPing = 2
        case ack = 3
        case nack = 4
        case alive = 5
        case suspect = 6
        case dead = 7
        case userBroadcast = 8
        case pushPull = 9
    }

    var kind: Kind {
        switch self {
        case .ping: .ping
        case .indirectPing: .indirectPing
        case .ack: .ack
        case .nack: .nack
        case .alive: .alive
        case .suspect: .suspect
        case .dead: .dead
        case .userBroadcast: .userBroadcast
        case .pushPull: .pushPull
        }
    }
}

extension SWIM.Codec {
    typealias MessageKind = SWIM.Message.Kind

    /// Longest member name or host, in UTF-8 bytes.
    public static let maxNameBytes = 255
    /// Most tags one member may carry.
    static let maxMetadataEntries = 1_024
    /// Longest tag key or value.
    static let maxMetadataStringBytes = 16_384

    /// The encoded size of `metadata`, as compared with ``SWIM/Settings/maxMetadataBytes``.
    public static func metadataSize(_ metadata: [String: String]) -> Int {
        var size = ByteWriter.varintSize(metadata.count)
        for (key, value) in metadata {
            size += ByteWriter.varintSize(key.utf8.count) + key.utf8.count
            size += ByteWriter.varintSize(value.utf8.count) + value.utf8.count
        }
        return size
    }

    // MARK: - Bodies

    static func writeBody(of message: SWIM.Message, into writer: inout ByteWriter) {
        switch message {
        case .ping(let ping):
            writer.writeVarint(UInt64(ping.seq))
            writer.write(ping.target)
        case .indirectPing(let request):
            writer.writeVarint(UInt64(request.seq))
            writer.write(request.target)
            self.write(request.targetAddress, into: &writer)
            writer.write(request.wantsNack ? UInt8(1) : 0)
        case .ack(let ack):
            writer.writeVarint(UInt64(ack.seq))
        case .nack(let nack):
            writer.writeVarint(UInt64(nack.seq))
        case .alive(let alive):
            writer.writeVarint(alive.incarnation)
            writer.write(alive.name)
            self.write(alive.address, into: &writer)
            self.write(alive.metadata, into: &writer)
        case .suspect(let suspect):
            writer.writeVarint(suspect.incarnation)
            writer.write(suspect.name)
            writer.write(suspect.from)
        case .dead(let dead):
            writer.writeVarint(dead.incarnation)
            writer.write(dead.name)
            writer.write(dead.from)
        case .userBroadcast(let broadcast):
            writer.write(broadcast.origin)
            writer.writeVarint(broadcast.seq)
            writer.write(bytes: broadcast.payload)
        case .pushPull(let state):
            writer.write(state.from)
            writer.write(state.join ? UInt8(1) : 0)
            writer.writeVarint(state.members.count)
            for member in state.members {
                writer.write(member.name)
                self.write(member.address, into: &writer)
                writer.write(member.status.rawValue)
                writer.writeVarint(member.incarnation)
                self.write(member.metadata, into: &writer)
            }
            writer.write(bytes: state.appPayload)
        }
    }

    static func readBody(kind: MessageKind, from reader: inout ByteReader) throws(DecodeError) -> SWIM.Message {
        switch kind {
        case .ping:
            let seq = try reader.readUInt32Varint()
            return .ping(.init(seq: seq, target: try reader.readString(limit: self.maxNameBytes)))
        case .indirectPing:
            let seq = try reader.readUInt32Varint()
            let target = try reader.readString(limit: self.maxNameBytes)
            let address = try self.readAddress(from: &reader)
            let wantsNack = try self.readBool(from: &reader)
            return .indirectPing(.init(seq: seq, target: target, targetAddress: address, wantsNack: wantsNack))
        case .ack:
            return .ack(.init(seq: try reader.readUInt32Varint()))
        case .nack:
            return .nack(.init(seq: try reader.readUInt32Varint()))
        case .alive:
            let incarnation = try reader.readVarint()
            let name = try reader.readString(limit: self.maxNameBytes)
            let address = try self.readAddress(from: &reader)
            let metadata = try self.readMetadata(from: &reader)
            return .alive(.init(incarnation: incarnation, name: name, address: address, metadata: metadata))
        case .suspect:
            let incarnation = try reader.readVarint()
            let name = try reader.readString(limit: self.maxNameBytes)
            return .suspect(.init(incarnation: incarnation, name: name, from: try reader.readString(limit: self.maxNameBytes)))
        case .dead:
            let incarnation = try reader.readVarint()
            let name = try reader.readString(limit: self.maxNameBytes)
            return .dead(.init(incarnation: incarnation, name: name, from: try reader.readString(limit: self.maxNameBytes)))
        case .userBroadcast:
            let origin = try reader.readString(limit: self.maxNameBytes)
            let seq = try reader.readVarint()
            return .userBroadcast(.init(origin: origin, seq: seq, payload: try reader.readBytes(limit: Int.max)))
        case .pushPull:
            let from = try reader.readString(limit: self.maxNameBytes)
            let join = try self.readBool(from: &reader)
            let count = try reader.readVarint()
            // Each member takes at least 6 bytes; refuse counts the input cannot hold.
            guard count <= UInt64(reader.remaining / 6) else { throw .valueOutOfRange }
            var members: [SWIM.Member] = []
            members.reserveCapacity(Int(count))
            for _ in 0..<Int(count) {
                let name = try reader.readString(limit: self.maxNameBytes)
                let address = try self.readAddress(from: &reader)
                guard let status = SWIM.MemberStatus(rawValue: try reader.readByte()) else { throw .valueOutOfRange }
                let incarnation = try reader.readVarint()
                let metadata = try self.readMetadata(from: &reader)
                members.append(.init(name: name, address: address, status: status, incarnation: incarnation, metadata: metadata))
            }
            let payload = try reader.readBytes(limit: Int.max)
            return .pushPull(.init(from: from, join: join, members: members, appPayload: payload))
        }
    }

    // MARK: - Fields

    static func write(_ address: SWIM.Address, into writer: inout ByteWriter) {
        writer.write(address.host)
        writer.write(address.port)
    }

    static func readAddress(from reader: inout ByteReader) throws(DecodeError) -> SWIM.Address {
        let host = try reader.readString(limit: self.maxNameBytes)
        return SWIM.Address(host: host, port: try reader.readUInt16())
    }

    static func write(_ metadata: [String: String], into writer: inout ByteWriter) {
        writer.writeVarint(metadata.count)
        // Sorted so equal maps encode to equal bytes.
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            writer.write(key)
            writer.write(value)
        }
    }

    static func readMetadata(from reader: inout ByteReader) throws(DecodeError) -> [String: String] {
        let count = try reader.readVarint()
        guard count <= UInt64(self.maxMetadataEntries) else { throw .valueOutOfRange }
        var metadata: [String: String] = [:]
        for _ in 0..<Int(count) {
            let key = try reader.readString(limit: self.maxMetadataStringBytes)
            metadata[key] = try reader.readString(limit: self.maxMetadataStringBytes)
        }
        return metadata
    }

    static func readBool(from reader: inout ByteReader) throws(DecodeError) -> Bool {
        switch try reader.readByte() {
        case 0: false
        case 1: true
        default: throw .valueOutOfRange
        }
    }
}
