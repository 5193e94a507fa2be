import GossipCore
import Testing

@testable import Gossip

@Suite struct KeyringTests {
    let keyA = Keyring.generate()
    let keyB = Keyring.generate()

    @Test func test_sealOpen_sameKeyAndLabel_roundTrips() throws {
        let ring = try Keyring(primary: self.keyA, label: "prod")
        let sealed = ring.seal([1, 2, 3])
        #expect(sealed.starts(with: SWIM.Codec.sealedHeader))
        #expect(try ring.open(sealed) == [1, 2, 3])
    }

    @Test func test_open_otherKeyOrLabel_fails() throws {
        let sealed = try Keyring(primary: self.keyA, label: "prod").seal([9])
        #expect(throws: GossipError.self) { try Keyring(primary: self.keyB, label: "prod").open(sealed) }
        #expect(throws: GossipError.self) { try Keyring(primary: self.keyA, label: "staging").open(sealed) }
    }

    @Test func test_open_tamperedFrame_fails() throws {
        let ring = try Keyring(primary: self.keyA)
        var sealed = ring.seal([1, 2, 3, 4])
        sealed[sealed.count - 1] ^= 0x01
        #expect(throws: GossipError.self) { try ring.open(sealed) }
        #expect(throws: GossipError.self) { try ring.open([1, 2, 3]) }
    }

    @Test func test_rotation_installUseRemove_oldTrafficStillOpensUntilRemoved() throws {
        let old = try Keyring(primary: self.keyA)
        var ring = old
        try ring.install(self.keyB)
        #expect(try ring.open(old.seal([1])) == [1])
        try ring.use(self.keyB)
        #expect(ring.primaryFingerprint == Keyring.fingerprint(try Keyring.parse(self.keyB)))
        #expect(throws: GossipError.self) { try old.open(ring.seal([2])) }
        try ring.remove(self.keyA)
        #expect(throws: GossipError.self) { try ring.open(old.seal([3])) }
        #expect(ring.keys.count == 1)
    }

    @Test func test_remove_primary_refused() throws {
        var ring = try Keyring(primary: self.keyA)
        #expect { try ring.remove(self.keyA) } throws: { ($0 as? GossipError)?.code == .keyInUse }
        #expect { try ring.use(self.keyB) } throws: { ($0 as? GossipError)?.code == .unknownKey }
    }

    @Test(arguments: ["", "not base64!", "AAAA", "QUJDRA=="])
    func test_parse_badKeys_refused(_ key: String) {
        #expect { try Keyring.parse(key) } throws: { ($0 as? GossipError)?.code == .badKey }
    }

    @Test func test_keyringChange_encodesAndDecodes() {
        let change = KeyringChange(operation: .use, key: self.keyA)
        #expect(KeyringChange(decoding: change.encoded) == change)
        #expect(KeyringChange(decoding: [1, 2, 3]) == nil)
    }

    @Test(arguments: [("127.0.0.1:7946", "127.0.0.1", 7946), ("[::1]:80", "::1", 80), (":9", "127.0.0.1", 9)])
    func test_parseAddress_forms(_ text: String, _ host: String, _ port: UInt16) {
        #expect(parseAddress(text) == SWIM.Address(host: host, port: port))
    }

    @Test(arguments: ["nohost", "h:99999", "h:x", "[::1]80"])
    func test_parseAddress_bad(_ text: String) {
        #expect(parseAddress(text) == nil)
    }
}
