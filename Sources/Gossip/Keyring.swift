import Crypto
import Foundation
import GossipCore

/// AES-GCM keys of a gossip cluster: encrypt with the primary, decrypt with any installed key.
///
/// Keys are 16, 24 or 32 bytes (AES-128/192/256; `gossamer keygen` makes 32), given as base64. The cluster
/// label is bound as additional authenticated data, so two clusters that share a key still never merge.
/// Rotation works as in Serf: install the new key everywhere, make it primary, then remove the old one.
public struct Keyring: Sendable {
    /// Installed keys, the primary first.
    public private(set) var keys: [SymmetricKey]
    /// The cluster label bound into every packet.
    public let label: String

    /// Creates a keyring whose primary is `primary` (base64); `others` are installed too.
    public init(primary: String, others: [String] = [], label: String = "") throws(GossipError) {
        self.keys = [try Self.parse(primary)]
        self.label = label
        for other in others {
            let key = try Self.parse(other)
            if !self.keys.contains(key) { self.keys.append(key) }
        }
    }

    /// Parses a base64 key of 16, 24 or 32 bytes.
    public static func parse(_ base64: String) throws(GossipError) -> SymmetricKey {
        guard let data = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)), [16, 24, 32].contains(data.count) else {
            throw GossipError(code: .badKey, message: "encryption key must be base64 of 16, 24 or 32 bytes (make one with `gossamer keygen`)")
        }
        return SymmetricKey(data: data)
    }

    /// A new random 32-byte key, base64.
    public static func generate() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0).base64EncodedString() }
    }

    /// Short, stable, non-secret name of a key: the first 8 hex digits of its SHA-256.
    public static func fingerprint(_ key: SymmetricKey) -> String {
        let digest = key.withUnsafeBytes { SHA256.hash(data: Data($0)) }
        return digest.prefix(4).map { String(format: "%02x", $0) }.joined()
    }

    /// Fingerprint of the primary key.
    public var primaryFingerprint: String { Self.fingerprint(self.keys[0]) }
    /// Fingerprints of every installed key, the primary first.
    public var fingerprints: [String] { self.keys.map(Self.fingerprint) }

    /// Installs a key (no-op if present).
    public mutating func install(_ base64: String) throws(GossipError) {
        let key = try Self.parse(base64)
        if !self.keys.contains(key) { self.keys.append(key) }
    }

    /// Makes an installed key the primary.
    public mutating func use(_ base64: String) throws(GossipError) {
        let key = try Self.parse(base64)
        guard let index = self.keys.firstIndex(of: key) else {
            throw GossipError(code: .unknownKey, message: "key \(Self.fingerprint(key)) is not installed; install it first")
        }
        self.keys.swapAt(0, index)
    }

    /// Removes a key that is not the primary.
    public mutating func remove(_ base64: String) throws(GossipError) {
        let key = try Self.parse(base64)
        guard let index = self.keys.firstIndex(of: key) else {
            throw GossipError(code: .unknownKey, message: "key \(Self.fingerprint(key)) is not installed")
        }
        guard index != 0 else {
            throw GossipError(code: .keyInUse, message: "key \(Self.fingerprint(key)) is the primary; make another key primary first (keyring use)")
        }
        self.keys.remove(at: index)
    }

    /// `sealedHeader ‖ nonce ‖ ciphertext ‖ tag`, with the header and the label as associated data.
    public func seal(_ plaintext: [UInt8]) -> [UInt8] {
        let header = SWIM.Codec.sealedHeader
        // Sealing with a fresh random nonce cannot fail for these key sizes.
        guard let box = try? AES.GCM.seal(plaintext, using: self.keys[0], authenticating: self.associatedData(header)), let combined = box.combined
        else { preconditionFailure("AES-GCM seal failed") }
        return header + Array(combined)
    }

    /// Opens a sealed frame with whichever installed key fits; throws `decryptFailed` otherwise.
    public func open(_ frame: [UInt8]) throws(GossipError) -> [UInt8] {
        let header = SWIM.Codec.sealedHeader
        guard frame.count > header.count + 12 + 16, frame.starts(with: header) else {
            throw GossipError(code: .decryptFailed, message: "not an encrypted gossip frame")
        }
        let body = Data(frame[header.count...])
        guard let box = try? AES.GCM.SealedBox(combined: body) else {
            throw GossipError(code: .decryptFailed, message: "malformed encrypted frame")
        }
        let aad = self.associatedData(header)
        for key in self.keys {
            if let plain = try? AES.GCM.open(box, using: key, authenticating: aad) { return Array(plain) }
        }
        throw GossipError(code: .decryptFailed, message: "no installed key opens the frame")
    }

    private func associatedData(_ header: [UInt8]) -> Data {
        Data(header + Array(self.label.utf8))
    }
}
