import GossipCore
import Logging

/// Settings of a gossip node: the SWIM protocol's knobs plus what the transport needs.
public struct GossipSettings: Sendable {
    /// The protocol settings; profiles are `SWIM.Settings.lan` (default), `.wan`, `.local`.
    public var swim: SWIM.Settings = .lan
    /// This member's name (unique in the cluster).
    public var name: String = "local"
    /// Address to bind UDP and TCP on (the same port for both, as memberlist). Port 0 picks a free one.
    public var bindHost: String = "127.0.0.1"
    public var bindPort: Int = 7946
    /// Address other members reach this one at (default: the bound address).
    public var advertiseHost: String? = nil
    /// Seeds to join at start (`host:port`). Empty: start a new cluster.
    public var seeds: [SWIM.Address] = []
    /// How long to keep retrying the join when no seed answers. Default 60 s; the agent keeps running either way.
    public var joinRetryFor: Duration = .seconds(60)
    /// The encryption keyring; nil: packets are not encrypted (CRC-32 protects them).
    public var keyring: Keyring? = nil
    /// Member metadata (tags), gossiped with the member. At most `swim.maxMetadataBytes` encoded.
    public var tags: [String: String] = [:]
    /// How long a graceful leave waits for the leave to spread before the node stops. Default 1 s.
    public var leaveFlush: Duration = .seconds(1)
    /// Timeout of one TCP exchange (push-pull, TCP ping). Default 5 s.
    public var streamTimeout: Duration = .seconds(5)
    /// Logger; the protocol core logs through `swim.logger` at trace/debug only.
    public var logger = Logger(label: "gossamer.gossip")

    public init() {}
}

/// Parses `host:port` (IPv6 as `[::1]:7946`).
public func parseAddress(_ text: String) -> SWIM.Address? {
    var host: Substring
    let portText: Substring
    if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
        host = text[text.index(after: text.startIndex)..<close]
        let rest = text[text.index(after: close)...]
        guard rest.hasPrefix(":") else { return nil }
        portText = rest.dropFirst()
    } else {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        host = text[..<colon]
        portText = text[text.index(after: colon)...]
    }
    host = host.isEmpty ? "127.0.0.1" : host
    guard let port = UInt16(portText) else { return nil }
    return SWIM.Address(host: String(host), port: port)
}
