import GossipCore
import TestSupport
import Testing

/// Seeded mutation testing of the decoders (the libFuzzer harness in `Fuzz/GossipCodecFuzz` goes
/// further). A trap anywhere fails the whole test process.
@Suite struct CodecFuzzTests {
    static let seeds: [[UInt8]] = {
        let address = SWIM.Address(host: "host", port: 1)
        let member = SWIM.Member(name: "m", address: address, status: .suspect, incarnation: 300, metadata: ["k": "v"])
        return [
            SWIM.Codec.encode(SWIM.Packet(CodecTests.every)),
            SWIM.Codec.encode(SWIM.Packet(CodecTests.every), checksum: false),
            SWIM.Codec.encode(SWIM.Packet([.pushPull(.init(from: "m", join: false, members: [member, member], appPayload: [7, 7]))]), checksum: false),
            SWIM.Codec.encode(SWIM.Packet([.ping(.init(seq: 1, target: "x"))]), checksum: false),
            SWIM.Codec.encode(SWIM.Packet([.suspect(.init(incarnation: 5, name: "ab", from: "c")), .ack(.init(seq: 9))]), checksum: false),
            SWIM.Codec.encode(SWIM.Packet([.indirectPing(.init(seq: 2, target: "t", targetAddress: address))]), checksum: false),
            SWIM.Codec.encode(SWIM.Packet([.alive(.init(incarnation: 1, name: "n", address: address, metadata: ["a": "b"]))]), checksum: false),
            SWIM.Codec.encode(SWIM.Packet([.userBroadcast(.init(origin: "o", seq: 1, payload: [1]))])),
        ]
    }()

    /// 1,000,000 mutated inputs: each takes a valid packet (mostly without CRC, so the parser is
    /// reached), applies 1–4 random byte edits (overwrite, insert, delete, truncate), and decodes it
    /// as a datagram and as a stream message. Decoding must return or throw, never trap.
    @Test func test_codecDecode_millionMutatedPackets_neverTraps() {
        // Given
        var rng = SeededRandom(seed: 0xF0CC)
        var decoded = 0
        var rejected = 0
        let iterations = 1_000_000
        // When
        for _ in 0..<iterations {
            var bytes = Self.seeds[Int(rng.next() % UInt64(Self.seeds.count))]
            for _ in 0...(rng.next() % 4) {
                Self.mutate(&bytes, using: &rng)
            }
            do {
                _ = try SWIM.Codec.decode(bytes)
                decoded += 1
            } catch {
                rejected += 1
            }
            if rng.next() % 16 == 0 { _ = try? SWIM.Codec.decodeStream(bytes) }
        }
        // Then
        #expect(decoded + rejected == iterations)
        #expect(rejected > 0 && decoded > 0)
    }

    @Test func test_codecDecode_randomBytes_neverTraps() {
        // Given
        var rng = SeededRandom(seed: 42)
        // When / Then
        for _ in 0..<20_000 {
            let count = Int(rng.next() % 64)
            var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if count >= 4 && rng.next() % 2 == 0 { bytes.replaceSubrange(0..<4, with: [0x47, 0x53, 1, 0]) }
            _ = try? SWIM.Codec.decode(bytes)
        }
    }

    static func mutate(_ bytes: inout [UInt8], using rng: inout SeededRandom) {
        guard !bytes.isEmpty else {
            bytes.append(UInt8(truncatingIfNeeded: rng.next()))
            return
        }
        let index = Int(rng.next() % UInt64(bytes.count))
        let interesting: [UInt8] = [0, 1, 0x7F, 0x80, 0xFF]
        switch rng.next() % 6 {
        case 0: bytes[index] = UInt8(truncatingIfNeeded: rng.next())
        case 1: bytes[index] = interesting[Int(rng.next() % 5)]
        case 2: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: index)
        case 3: bytes.remove(at: index)
        case 4: bytes.removeSubrange(index...)
        default: bytes[index] ^= 1 << UInt8(rng.next() % 8)
        }
    }
}
