import Logging

// Receiving datagrams, sending compound packets with piggybacked gossip, and the gossip tick.

extension SWIM.Instance {
    /// Largest datagram accepted from peers (their `maxPacketSize` may differ from ours).
    static let maxDatagramSize = 65_535

    // MARK: - Receiving

    /// A UDP datagram arrived from `address`. Malformed bytes are counted, dropped and reported as
    /// ``SWIM/Directive/ignored(_:)``.
    public mutating func onPacket(
        _ bytes: [UInt8],
        from address: SWIM.Address,
        now: SWIM.Instant,
        using rng: inout some RandomNumberGenerator
    ) -> [SWIM.Directive] {
        var directives: [SWIM.Directive] = []
        let packet: SWIM.Packet
        do {
            packet = try SWIM.Codec.decode(bytes, maxSize: Self.maxDatagramSize)
        } catch {
            self.counters.malformedPackets += 1
            self.logger.trace("dropped malformed packet", metadata: ["gossip.error": "\(error)"])
            return [.ignored(.malformed(error))]
        }
        self.counters.packetsDecoded += 1
        self.counters.messagesDecoded += packet.messages.count
        self.counters.bytesDecoded += bytes.count
        for message in packet.messages {
            self.handle(message, from: address, now: now, using: &rng, into: &directives)
        }
        return directives
    }

    mutating func handle(
        _ message: SWIM.Message,
        from address: SWIM.Address,
        now: SWIM.Instant,
        using rng: inout some RandomNumberGenerator,
        into directives: inout [SWIM.Directive]
    ) {
        switch message {
        case .ping(let ping): self.onPing(ping, from: address, into: &directives)
        case .indirectPing(let request): self.onIndirectPing(request, from: address, now: now, into: &directives)
        case .ack(let ack): self.onAck(ack, into: &directives)
        case .nack(let nack): self.onNack(nack, into: &directives)
        case .alive(let alive): self.applyAlive(alive, now: now, using: &rng, into: &directives)
        case .suspect(let suspect): self.applySuspect(suspect, now: now, using: &rng, into: &directives)
        case .dead(let dead): self.applyDead(dead, now: now, into: &directives)
        case .userBroadcast(let broadcast): self.onUserBroadcast(broadcast, into: &directives)
        case .pushPull: directives.append(self.ignore(.unexpectedStreamMessage))
        }
    }

    // MARK: - Sending

    /// Encodes `messages` plus as much queued gossip as fits in `maxPacketSize`, and sends it.
    mutating func send(_ messages: [SWIM.Message], to address: SWIM.Address, into directives: inout [SWIM.Directive]) {
        var framed = messages.map(SWIM.Codec.encodeFramed)
        let used = framed.reduce(SWIM.Codec.overhead(checksum: self.settings.checksum)) { $0 + $1.count }
        framed += self.queue.take(budget: self.settings.maxPacketSize - used, transmitLimit: self.transmitLimit)
        guard !framed.isEmpty else { return }
        directives.append(.send(self.assemble(framed), to: address))
    }

    /// Encodes `messages` as one packet without piggybacking (stream messages).
    mutating func encode(_ messages: [SWIM.Message]) -> [UInt8] {
        self.assemble(messages.map(SWIM.Codec.encodeFramed))
    }

    private mutating func assemble(_ framed: [[UInt8]]) -> [UInt8] {
        let bytes = SWIM.Codec.assemble(framed, checksum: self.settings.checksum)
        self.counters.packetsEncoded += 1
        self.counters.messagesEncoded += framed.count
        self.counters.bytesEncoded += bytes.count
        return bytes
    }

    /// Decodes a stream message, counting it; `nil` (plus an `.ignored` directive) if malformed.
    mutating func decodeStream(_ bytes: [UInt8], into directives: inout [SWIM.Directive]) -> SWIM.Message? {
        do {
            let message = try SWIM.Codec.decodeStream(bytes, maxSize: self.settings.maxStreamMessageSize)
            self.counters.packetsDecoded += 1
            self.counters.messagesDecoded += 1
            self.counters.bytesDecoded += bytes.count
            return message
        } catch {
            self.counters.malformedPackets += 1
            directives.append(.ignored(.malformed(error)))
            return nil
        }
    }

    // MARK: - Gossip tick

    /// Sends queued updates to `gossipNodes` random members (live ones, and dead ones within
    /// `gossipToTheDeadTime` so they can refute). Sends nothing when the queue is empty.
    mutating func onGossipTick(now: SWIM.Instant, using rng: inout some RandomNumberGenerator, into directives: inout [SWIM.Directive]) {
        if self.hasLeft && self.queue.count == 0 { return }  // left and flushed: stop ticking
        directives.append(.armTimer(.gossipTick, at: now + self.settings.gossipInterval))
        guard self.queue.count > 0 else { return }
        let deadline = self.settings.gossipToTheDeadTime
        let targets = self.randomMembers(self.settings.gossipNodes, using: &rng) { record in
            record.member.status.isLive || now - record.stateChange <= deadline
        }
        for target in targets {
            guard self.queue.count > 0 else { break }
            self.send([], to: target.member.address, into: &directives)
        }
    }
}
