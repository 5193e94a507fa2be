import Logging

// The probe cycle: ping → ack timeout → indirect pings (+ TCP fallback) → end of the probe window → suspect.

extension SWIM.Instance {
    // MARK: - Start and timers

    /// Arms the first probe, gossip and push-pull ticks, each at a random offset within its interval
    /// so that members started together do not tick together. Call once.
    public mutating func start(now: SWIM.Instant, using rng: inout some RandomNumberGenerator) -> [SWIM.Directive] {
        precondition(!self.started, "start(now:using:) called twice on \(self.myself)")
        self.started = true
        var directives: [SWIM.Directive] = []
        directives.reserveCapacity(3)
        directives.append(.armTimer(.probeTick, at: now + Self.jitter(self.settings.probeInterval, using: &rng)))
        directives.append(.armTimer(.gossipTick, at: now + Self.jitter(self.settings.gossipInterval, using: &rng)))
        directives.append(.armTimer(.pushPullTick, at: now + Self.jitter(self.pushPullInterval, using: &rng)))
        return directives
    }

    /// A timer armed by an earlier ``SWIM/Directive/armTimer(_:at:)`` fired.
    public mutating func onTimer(
        _ timer: SWIM.Timer,
        now: SWIM.Instant,
        using rng: inout some RandomNumberGenerator
    ) -> [SWIM.Directive] {
        var directives: [SWIM.Directive] = []
        switch timer {
        case .probeTick:
            self.onProbeTick(now: now, using: &rng, into: &directives)
        case .gossipTick:
            self.onGossipTick(now: now, using: &rng, into: &directives)
        case .pushPullTick:
            self.onPushPullTick(now: now, using: &rng, into: &directives)
        case .probeTimeout(let seq):
            self.onProbeTimeout(seq: seq, now: now, using: &rng, into: &directives)
        case .probeDeadline(let seq):
            self.onProbeDeadline(seq: seq, now: now, using: &rng, into: &directives)
        case .relayTimeout(let seq):
            self.onRelayTimeout(seq: seq, into: &directives)
        case .suspicion(let member):
            self.onSuspicionTimer(member: member, now: now, into: &directives)
        }
        return directives
    }

    static func jitter(_ interval: Duration, using rng: inout some RandomNumberGenerator) -> Duration {
        let nanoseconds = interval.nanosecondsSaturated
        guard nanoseconds > 0 else { return .zero }
        return .nanoseconds(Int64.random(in: 0..<nanoseconds, using: &rng))
    }

    // MARK: - Probe tick

    mutating func onProbeTick(now: SWIM.Instant, using rng: inout some RandomNumberGenerator, into directives: inout [SWIM.Directive]) {
        guard !self.hasLeft else { return }
        let interval = self.scaledByHealth(self.settings.probeInterval)
        directives.append(.armTimer(.probeTick, at: now + interval))
        self.concludeAbandonedProbes(now: now, using: &rng, into: &directives)
        guard let slot = self.nextProbeTarget(now: now, using: &rng, into: &directives),
              let target = self.slots[slot]?.member
        else { return }
        self.startProbe(of: target, now: now, into: &directives)
    }

    /// Pings `target` now: arms its ack timeout (then indirect probes) and its window (then suspicion).
    mutating func startProbe(of target: SWIM.Member, now: SWIM.Instant, into directives: inout [SWIM.Directive]) {
        let window = self.scaledByHealth(self.settings.probeWindow)
        let seq = self.allocateSeq()
        self.probes[seq] = Probe(target: target.name, address: target.address, deadline: now + window)
        self.counters.probesSent += 1
        var messages: [SWIM.Message] = []
        if target.status == .suspect {
            // Buddy system: tell the suspect at once so it can refute.
            messages.append(.suspect(.init(incarnation: target.incarnation, name: target.name, from: self.suspicions[target.name]?.accuser ?? self.myself.name)))
        }
        messages.append(.ping(.init(seq: seq, target: target.name)))
        self.send(messages, to: target.address, into: &directives)
        directives.append(.armTimer(.probeTimeout(seq: seq), at: now + self.scaledByHealth(self.settings.probeTimeout)))
        directives.append(.armTimer(.probeDeadline(seq: seq), at: now + window))
    }

    /// The next live member in round-robin order, reshuffling (and reaping) at the end of each pass.
    private mutating func nextProbeTarget(
        now: SWIM.Instant,
        using rng: inout some RandomNumberGenerator,
        into directives: inout [SWIM.Directive]
    ) -> Int? {
        while !self.suspectsToProbe.isEmpty {
            let name = self.suspectsToProbe.removeFirst()
            if let slot = self.slotByName[name], self.slots[slot]?.member.status == .suspect { return slot }
        }
        var examined = 0
        var reset = false
        while true {
            if self.probeIndex >= self.probeOrder.count {
                if reset { return nil }
                reset = true
                self.resetProbeOrder(now: now, using: &rng, into: &directives)
                if self.probeOrder.isEmpty { return nil }
            }
            let slot = self.probeOrder[self.probeIndex]
            self.probeIndex += 1
            examined += 1
            if let record = self.slots[slot], record.member.status.isLive { return slot }
            if examined > self.probeOrder.count + 1 { return nil }
        }
    }

    private mutating func resetProbeOrder(
        now: SWIM.Instant,
        using rng: inout some RandomNumberGenerator,
        into directives: inout [SWIM.Directive]
    ) {
        for member in self.reap(now: now) {
            directives.append(.membership(.reaped(member)))
        }
        self.probeOrder = self.slots.indices.filter { self.slots[$0] != nil }
        self.probeOrder.shuffle(using: &rng)
        self.probeIndex = 0
    }

    /// Concludes probes whose deadline passed long ago without a stream ping result (a shell that
    /// never reported), so they cannot pile up.
    private mutating func concludeAbandonedProbes(
        now: SWIM.Instant,
        using rng: inout some RandomNumberGenerator,
        into directives: inout [SWIM.Directive]
    ) {
        guard !self.probes.isEmpty else { return }
        let grace = self.settings.probeInterval.scaled(by: 2)
        // Sorted: dictionary order differs between processes and directives must not.
        let abandoned = self.probes.filter { $0.value.deadlinePassed && $0.value.deadline + grace < now }.keys.sorted()
        for seq in abandoned {
            self.concludeFailedProbe(seq: seq, now: now, using: &rng, into: &directives)
        }
    }

    // MARK: - Ack timeout: go indirect

    mutating func onProbeTimeout(
        seq: UInt32,
        now: SWIM.Instant,
        using rng: inout some RandomNumberGenerator,
        into directives: inout [SWIM.Directive]
    ) {
        guard var probe = self.probes[seq], !probe.indirect else { return }
        probe.indirect = true
        let target = probe.target
        let helpers = self.randomMembers(self.settings.indirectChecks, using: &rng) { record in
            record.member.status == .alive && record.member.name != target
        }
        let request = SWIM.Message.IndirectPing(seq: seq, target: probe.target, targetAddress: probe.address, wantsNack: true)
        for helper in helpers {
            self.send([.indirectPing(request)], to: helper.member.address, into: &directives)
        }
        probe.expectedNacks = helpers.count
        self.counters.indirectProbesSent += helpers.count
        if self.settings.streamPingFallback {
            probe.streamPending = true
            self.counters.streamPingsStarted += 1
            let request = self.encode([.ping(.init(seq: seq, target: probe.target))])
            directives.append(.startStreamPing(seq: seq, to: probe.address, request: request, deadline: probe.deadline))
        }
        self.probes[seq] = probe
    }

    // MARK: - Probe deadline: suspect

    mutating func onProbeDeadline(
        seq: UInt32,
        now: SWIM.Instant,
        using rng: inout some RandomNumberGenerator,
        into directives: inout [SWIM.Directive]
    ) {
        guard var probe = self.probes[seq] else { return }
        if probe.streamPending {
            // Wait for the TCP fallback's verdict (the shell reports by the same deadline).
            probe.deadlinePassed = true
            self.probes[seq] = probe
            return
        }
        self.concludeFailedProbe(seq: seq, now: now, using: &rng, into: &directives)
    }

    /// The TCP fallback for probe `seq` finished: `reply` is what the target wrote back, or `nil` if
    /// the connection failed or timed out.
    public mutating func onStreamPingResult(
        seq: UInt32,
        reply: [UInt8]?,
        now: SWIM.Instant,
        using rng: inout some RandomNumberGenerator
    ) -> [SWIM.Directive] {
        var directives: [SWIM.Directive] = []
        guard var probe = self.probes[seq], probe.streamPending else { return directives }
        probe.streamPending = false
        if let reply {
            switch self.decodeStream(reply, into: &directives) {
            case .ack(let ack)? where ack.seq == seq:
                probe.streamSucceeded = true
            case .some:
                directives.append(self.ignore(.unexpectedStreamMessage))
            case nil:
                break
            }
        }
        self.probes[seq] = probe
        if probe.deadlinePassed {
            self.concludeFailedProbe(seq: seq, now: now, using: &rng, into: &directives)
        }
        return directives
    }

    /// Ends a probe that got no UDP answer: penalise local health by the missing nacks, then
    /// suspect the target unless the TCP fallback reached it.
    mutating func concludeFailedProbe(
        seq: UInt32,
        now: SWIM.Instant,
        using rng: inout some RandomNumberGenerator,
        into directives: inout [SWIM.Directive]
    ) {
        guard let probe = self.probes.removeValue(forKey: seq) else { return }
        // Lifeguard: helpers that did not even nack suggest that we are the problem.
        self.adjustHealth(by: probe.expectedNacks > 0 ? max(0, probe.expectedNacks - probe.nacks) : 1)
        if probe.streamSucceeded {
            self.counters.probesSucceeded += 1
            self.counters.streamPingRescues += 1
            directives.append(.networkMisconfigured(member: probe.target, address: probe.address))
            return
        }
        self.counters.probesFailed += 1
        guard let slot = self.slotByName[probe.target], let member = self.slots[slot]?.member, member.status.isLive else {
            return
        }
        self.logger.debug("probe failed", metadata: ["gossip.member": "\(member.name)", "gossip.seq": "\(seq)"])
        let suspect = SWIM.Message.Suspect(incarnation: member.incarnation, name: member.name, from: self.myself.name)
        self.applySuspect(suspect, now: now, using: &rng, into: &directives)
    }

    // MARK: - Acks and nacks

    mutating func onAck(_ ack: SWIM.Message.Ack, into directives: inout [SWIM.Directive]) {
        if let probe = self.probes.removeValue(forKey: ack.seq) {
            self.counters.probesSucceeded += 1
            if !probe.indirect { self.adjustHealth(by: -1) }
            return
        }
        if let relay = self.relays.removeValue(forKey: ack.seq) {
            self.send([.ack(.init(seq: relay.requesterSeq))], to: relay.requester, into: &directives)
            return
        }
        directives.append(self.ignore(.unknownSequence(ack.seq)))
    }

    mutating func onNack(_ nack: SWIM.Message.Nack, into directives: inout [SWIM.Directive]) {
        guard self.probes[nack.seq] != nil else {
            directives.append(self.ignore(.unknownSequence(nack.seq)))
            return
        }
        self.probes[nack.seq]?.nacks += 1
        self.counters.nacksReceived += 1
    }

    // MARK: - Serving probes

    mutating func onPing(_ ping: SWIM.Message.Ping, from address: SWIM.Address, into directives: inout [SWIM.Directive]) {
        guard ping.target == self.myself.name else {
            directives.append(self.ignore(.pingForAnotherMember(target: ping.target)))
            return
        }
        self.send([.ack(.init(seq: ping.seq))], to: address, into: &directives)
    }

    mutating func onIndirectPing(
        _ request: SWIM.Message.IndirectPing,
        from requester: SWIM.Address,
        now: SWIM.Instant,
        into directives: inout [SWIM.Directive]
    ) {
        let seq = self.allocateSeq()
        self.relays[seq] = Relay(requester: requester, requesterSeq: request.seq, wantsNack: request.wantsNack)
        self.counters.indirectProbesRelayed += 1
        self.send([.ping(.init(seq: seq, target: request.target))], to: request.targetAddress, into: &directives)
        directives.append(.armTimer(.relayTimeout(seq: seq), at: now + self.settings.probeTimeout))
    }

    mutating func onRelayTimeout(seq: UInt32, into directives: inout [SWIM.Directive]) {
        guard let relay = self.relays.removeValue(forKey: seq), relay.wantsNack else { return }
        self.counters.nacksSent += 1
        self.send([.nack(.init(seq: relay.requesterSeq))], to: relay.requester, into: &directives)
    }
}
