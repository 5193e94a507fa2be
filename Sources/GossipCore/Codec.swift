extension SWIM {
    /// The binary wire format.
    ///
    /// ```
    /// packet  = magic(0x47 0x53) version(1) flags(u8) message* [crc32(u32 BE)]
    /// message = kind(u8) length(varint) body(length bytes)
    /// ```
    /// Integers in bodies are unsigned LEB128 varints, strings and byte blobs are varint-length
    /// prefixed (strings must be UTF-8), ports are big-endian `u16`. `flags` bit 0 says a CRC-32
    /// (IEEE) of every preceding byte closes the packet. Unknown message kinds are skipped (their
    /// length is known), so a newer minor revision can add kinds without a version bump.
    ///
    /// **Encryption seam.** The codec never encrypts. A shell with a keyring seals a whole codec
    /// packet, produced with `checksum: false`, with AES-256-GCM and frames it as
    /// `magic version flags(bit 1 = encrypted) ‖ sealed box`, using the four header bytes as
    /// associated data (``sealedHeader``). ``decode(_:maxSize:)`` rejects such a frame with
    /// ``DecodeError/encryptedEnvelope`` so the shell knows to open it first; ``isEncryptedEnvelope(_:)``
    /// tells it cheaply.
    ///
    /// Decoders check every length before use, never force-unwrap and never trap on any input
    /// (fuzzed by `Fuzz/GossipCodecFuzz` and a million-input mutation test).
    public enum Codec {
        /// The two magic bytes, `"GS"`.
        public static let magic: [UInt8] = [0x47, 0x53]
        /// The wire version this codec speaks.
        public static let version: UInt8 = 1
        /// Bytes before the first message.
        public static let headerSize = 4
        /// Bytes of the CRC-32 trailer when present.
        public static let checksumSize = 4

        /// Header flag bits.
        public struct Flags: OptionSet, Hashable, Sendable {
            public var rawValue: UInt8
            public init(rawValue: UInt8) { self.rawValue = rawValue }
            /// A CRC-32 trailer closes the packet.
            public static let checksum = Flags(rawValue: 1 << 0)
            /// The rest of the datagram is a sealed box opened by the shell.
            public static let encrypted = Flags(rawValue: 1 << 1)
            /// Every bit this version understands.
            public static let known: Flags = [.checksum, .encrypted]
        }

        /// Why bytes could not be decoded. The shell counts and drops.
        public enum DecodeError: Error, Hashable, Sendable {
            /// Input ended before a field was complete.
            case truncated
            /// The first two bytes are not ``Codec/magic``.
            case badMagic
            /// A version this codec does not speak.
            case unsupportedVersion(UInt8)
            /// Flag bits this version does not know.
            case unsupportedFlags(UInt8)
            /// The packet is an encrypted envelope; the shell must open it first.
            case encryptedEnvelope
            /// The CRC-32 trailer does not match.
            case checksumMismatch
            /// The input is larger than allowed.
            case tooLarge
            /// A message body has bytes its fields did not use.
            case trailingBytes
            /// A string is not valid UTF-8.
            case invalidUTF8
            /// A number or length is outside its allowed range.
            case valueOutOfRange
            /// A varint is longer than 64 bits.
            case varintOverflow
            /// A packet without any message.
            case empty
            /// A push-pull message in a datagram, or a datagram-only message on a stream.
            case unexpectedMessage
        }

        /// The header to authenticate as associated data of an encrypted envelope.
        public static var sealedHeader: [UInt8] { magic + [version, Flags.encrypted.rawValue] }

        /// Whether `bytes` is an encrypted envelope (valid magic and version, encrypted flag set).
        public static func isEncryptedEnvelope(_ bytes: some Collection<UInt8>) -> Bool {
            var iterator = bytes.makeIterator()
            guard iterator.next() == magic[0], iterator.next() == magic[1], iterator.next() == version,
                  let flags = iterator.next()
            else { return false }
            return Flags(rawValue: flags).contains(.encrypted)
        }

        // MARK: - Encoding

        /// Encodes `packet` (no size limit is applied; ``Instance`` packs within the budget itself).
        public static func encode(_ packet: Packet, checksum: Bool = true) -> [UInt8] {
            self.assemble(packet.messages.map(self.encodeFramed), checksum: checksum)
        }

        /// Encodes one message with its kind and length prefix, ready for ``assemble(_:checksum:)``.
        public static func encodeFramed(_ message: Message) -> [UInt8] {
            var body = ByteWriter()
            self.writeBody(of: message, into: &body)
            var framed = ByteWriter(capacity: body.bytes.count + 4)
            framed.write(message.kind.rawValue)
            framed.writeVarint(body.bytes.count)
            framed.bytes.append(contentsOf: body.bytes)
            return framed.bytes
        }

        /// Builds a packet from framed messages.
        public static func assemble(_ framedMessages: [[UInt8]], checksum: Bool = true) -> [UInt8] {
            let total = framedMessages.reduce(self.overhead(checksum: checksum)) { $0 + $1.count }
            var bytes: [UInt8] = []
            bytes.reserveCapacity(total)
            bytes.append(contentsOf: self.magic)
            bytes.append(self.version)
            bytes.append(checksum ? Flags.checksum.rawValue : 0)
            for framed in framedMessages { bytes.append(contentsOf: framed) }
            if checksum {
                var writer = ByteWriter(capacity: 4)
                writer.write(self.crc32(bytes, range: 0..<bytes.count))
                bytes.append(contentsOf: writer.bytes)
            }
            return bytes
        }

        /// Header plus trailer bytes of a packet.
        public static func overhead(checksum: Bool) -> Int {
            self.headerSize + (checksum ? self.checksumSize : 0)
        }

        // MARK: - Decoding

        /// Decodes a datagram of at most `maxSize` bytes. Never traps.
        public static func decode(
            _ bytes: some Collection<UInt8>,
            maxSize: Int = Int.max
        ) throws(DecodeError) -> Packet {
            guard bytes.count <= maxSize else { throw .tooLarge }
            return try self.decode(Array(bytes), maxSize: maxSize)
        }

        /// Decodes a datagram of at most `maxSize` bytes. Never traps.
        public static func decode(_ bytes: [UInt8], maxSize: Int = Int.max) throws(DecodeError) -> Packet {
            let packet = try self.decodeAny(bytes, maxSize: maxSize)
            for message in packet.messages {
                if case .pushPull = message { throw .unexpectedMessage }
            }
            return packet
        }

        /// Decodes a stream (TCP) message: exactly one ``Message/pushPull(_:)``, ``Message/ping(_:)``
        /// or ``Message/ack(_:)``. Never traps.
        public static func decodeStream(
            _ bytes: some Collection<UInt8>,
            maxSize: Int = Int.max
        ) throws(DecodeError) -> Message {
            guard bytes.count <= maxSize else { throw .tooLarge }
            return try self.decodeStream(Array(bytes), maxSize: maxSize)
        }

        /// Decodes a stream message (see the generic overload). Never traps.
        public static func decodeStream(_ bytes: [UInt8], maxSize: Int = Int.max) throws(DecodeError) -> Message {
            let packet = try self.decodeAny(bytes, maxSize: maxSize)
            guard packet.messages.count == 1, let message = packet.messages.first else { throw .unexpectedMessage }
            switch message {
            case .pushPull, .ping, .ack: return message
            default: throw .unexpectedMessage
            }
        }

        static func decodeAny(_ bytes: [UInt8], maxSize: Int) throws(DecodeError) -> Packet {
            guard bytes.count <= maxSize else { throw .tooLarge }
            guard bytes.count >= self.headerSize else { throw .truncated }
            guard bytes[0] == self.magic[0], bytes[1] == self.magic[1] else { throw .badMagic }
            guard bytes[2] == self.version else { throw .unsupportedVersion(bytes[2]) }
            let flags = Flags(rawValue: bytes[3])
            guard Flags.known.contains(flags) else { throw .unsupportedFlags(bytes[3]) }
            if flags.contains(.encrypted) { throw .encryptedEnvelope }
            var end = bytes.count
            if flags.contains(.checksum) {
                guard bytes.count >= self.headerSize + self.checksumSize else { throw .truncated }
                end -= self.checksumSize
                var trailer = ByteReader(bytes, from: end, to: bytes.count)
                let expected = try UInt32(trailer.readUInt16()) << 16 | UInt32(trailer.readUInt16())
                guard self.crc32(bytes, range: 0..<end) == expected else { throw .checksumMismatch }
            }
            var reader = ByteReader(bytes, from: self.headerSize, to: end)
            var messages: [Message] = []
            while !reader.isAtEnd {
                let rawKind = try reader.readByte()
                let length = try reader.readLength(limit: Int.max)
                guard let kind = MessageKind(rawValue: rawKind) else {
                    try reader.skip(length)  // a newer kind: skip it
                    continue
                }
                var body = ByteReader(bytes, from: reader.index, to: reader.index + length)
                messages.append(try self.readBody(kind: kind, from: &body))
                guard body.isAtEnd else { throw .trailingBytes }
                try reader.skip(length)
            }
            guard !messages.isEmpty else { throw .empty }
            return Packet(messages)
        }
    }
}
