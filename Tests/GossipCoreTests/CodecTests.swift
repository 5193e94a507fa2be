import GossipCore
import Testing

@Suite struct CodecTests {
    static let address = SWIM.Address(host: "10.1.2.3", port: 7946)
    static let every: [SWIM.Message] = [
        .ping(.init(seq: 7, target: "a")),
        .indirectPing(.init(seq: 8, target: "b", targetAddress: address, wantsNack: true)),
        .ack(.init(seq: UInt32.max)),
        .nack(.init(seq: 0)),
        .alive(.init(incarnation: 1 << 40, name: "c", address: address, metadata: ["role": "db", "zone": "é"])),
        .suspect(.init(incarnation: 3, name: "d", from: "e")),
        .dead(.init(incarnation: 4, name: "f", from: "f")),
        .userBroadcast(.init(origin: "g", seq: UInt64.max, payload: [0, 1, 2, 255])),
    ]

    @Test func test_codec_everyMessageKind_roundTrips() throws {
        // Given
        let packet = SWIM.Packet(Self.every)
        for checksum in [true, false] {
            // When
            let bytes = SWIM.Codec.encode(packet, checksum: checksum)
            // Then
            #expect(Array(bytes.prefix(3)) == [0x47, 0x53, 1])
            #expect(try SWIM.Codec.decode(bytes) == packet)
        }
    }

    @Test func test_codec_pushPull_roundTripsOnStreamButNotInDatagram() throws {
        // Given
        let state = SWIM.Message.PushPull(
            from: "a", join: true,
            members: [SWIM.Member(name: "a", address: Self.address, status: .left, incarnation: 9, metadata: ["k": "v"])],
            appPayload: [1, 2, 3]
        )
        // When
        let bytes = SWIM.Codec.encode(SWIM.Packet([.pushPull(state)]))
        // Then
        #expect(try SWIM.Codec.decodeStream(bytes) == .pushPull(state))
        #expect(throws: SWIM.Codec.DecodeError.unexpectedMessage) { try SWIM.Codec.decode(bytes) }
    }

    @Test func test_crc32_standardCheckValue_matches() {
        // Given / When / Then
        #expect(SWIM.Codec.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(SWIM.Codec.crc32([UInt8]()) == 0)
    }

    @Test func test_codec_flippedBit_failsChecksum() {
        // Given
        var bytes = SWIM.Codec.encode(SWIM.Packet([.ping(.init(seq: 1, target: "abc"))]))
        // When
        bytes[6] ^= 0x01
        // Then
        #expect(throws: SWIM.Codec.DecodeError.checksumMismatch) { try SWIM.Codec.decode(bytes) }
    }

    @Test(arguments: [
        ([UInt8]([]), SWIM.Codec.DecodeError.truncated),
        ([0x47, 0x54, 1, 0, 3, 1, 0], .badMagic),
        ([0x47, 0x53, 2, 0, 3, 1, 0], .unsupportedVersion(2)),
        ([0x47, 0x53, 1, 0x80, 3, 1, 0], .unsupportedFlags(0x80)),
        ([0x47, 0x53, 1, 2, 9, 9, 9], .encryptedEnvelope),
        ([0x47, 0x53, 1, 0], .empty),
        ([0x47, 0x53, 1, 0, 3, 5, 0], .truncated),
        ([0x47, 0x53, 1, 0, 3, 2, 0, 0], .trailingBytes),
        ([0x47, 0x53, 1, 0, 3, 6, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], .valueOutOfRange),
        ([0x47, 0x53, 1, 0, 1, 3, 1, 1, 0xFF], .invalidUTF8),
        ([0x47, 0x53, 1, 0, 3, 11] + [UInt8](repeating: 0xFF, count: 10) + [0x01], .varintOverflow),
    ])
    func test_codec_malformedInput_throwsTypedError(bytes: [UInt8], expected: SWIM.Codec.DecodeError) {
        // Given / When / Then
        #expect(throws: expected) { try SWIM.Codec.decode(bytes) }
    }

    @Test func test_codec_unknownMessageKind_isSkipped() throws {
        // Given: kind 200 with a 2-byte body, then an ack
        let bytes: [UInt8] = [0x47, 0x53, 1, 0, 200, 2, 9, 9, 3, 1, 5]
        // When
        let packet = try SWIM.Codec.decode(bytes)
        // Then
        #expect(packet.messages == [.ack(.init(seq: 5))])
    }

    @Test func test_codec_oversizedInput_isRejectedBeforeParsing() {
        // Given
        let bytes = SWIM.Codec.encode(SWIM.Packet([.ack(.init(seq: 1))]))
        // When / Then
        #expect(throws: SWIM.Codec.DecodeError.tooLarge) { try SWIM.Codec.decode(bytes, maxSize: bytes.count - 1) }
    }

    @Test func test_codec_encryptedEnvelope_isRecognised() {
        // Given
        let sealed = SWIM.Codec.sealedHeader + [1, 2, 3]
        // When / Then
        #expect(SWIM.Codec.isEncryptedEnvelope(sealed))
        #expect(!SWIM.Codec.isEncryptedEnvelope(SWIM.Codec.encode(SWIM.Packet([.ack(.init(seq: 1))]))))
    }

    @Test func test_codec_metadataSize_matchesEncoding() {
        // Given
        let metadata = ["a": "1", "bb": "22"]
        // When
        let withTags = SWIM.Codec.encodeFramed(.alive(.init(incarnation: 0, name: "x", address: Self.address, metadata: metadata)))
        let withoutTags = SWIM.Codec.encodeFramed(.alive(.init(incarnation: 0, name: "x", address: Self.address)))
        // Then
        #expect(withTags.count - withoutTags.count == SWIM.Codec.metadataSize(metadata) - SWIM.Codec.metadataSize([:]))
    }
}
