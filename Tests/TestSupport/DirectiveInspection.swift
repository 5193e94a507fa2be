import GossipCore

/// Helpers for unit tests that read directives.
extension Array where Element == SWIM.Directive {
    /// Every `.send`, decoded (undecodable packets are skipped).
    public var sentPackets: [(to: SWIM.Address, messages: [SWIM.Message])] {
        self.compactMap { directive in
            guard case .send(let bytes, let address) = directive,
                  let packet = try? SWIM.Codec.decode(bytes)
            else { return nil }
            return (address, packet.messages)
        }
    }

    /// Every message sent, in order, with its destination.
    public var sentMessages: [(to: SWIM.Address, message: SWIM.Message)] {
        self.sentPackets.flatMap { packet in packet.messages.map { (packet.to, $0) } }
    }

    /// Every timer armed.
    public var armedTimers: [SWIM.Timer: SWIM.Instant] {
        var timers: [SWIM.Timer: SWIM.Instant] = [:]
        for case .armTimer(let timer, let deadline) in self { timers[timer] = deadline }
        return timers
    }

    /// Every membership event.
    public var membershipEvents: [SWIM.MembershipEvent] {
        self.compactMap { if case .membership(let event) = $0 { event } else { nil } }
    }
}

extension SWIM.Instance {
    /// Feeds `messages` as one packet from `address` (test convenience).
    public mutating func receive(
        _ messages: [SWIM.Message],
        from address: SWIM.Address,
        now: SWIM.Instant,
        using rng: inout some RandomNumberGenerator
    ) -> [SWIM.Directive] {
        self.onPacket(SWIM.Codec.encode(SWIM.Packet(messages)), from: address, now: now, using: &rng)
    }
}
