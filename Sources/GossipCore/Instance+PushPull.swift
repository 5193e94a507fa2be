import Logging

// Push-pull: periodic full-state exchange over TCP, join through seeds, reconnecting to dead
// members so that partitions heal, and the application payload hook.

extension SWIM.Instance {
    // MARK: - Join

    /// Joins through `seeds`: one push-pull (with `join: true`) to each seed that is not ourselves.
    /// The shell reports each outcome with ``onPushPullResponse(_:from:now:using:)`` or
    /// ``onPushPullFailed(to:join:now:)``; the join succeeded if at least one response arrived.
    public mutating func join(
        seeds: [SWIM.Address],
        now: SWIM.Instant,
        using rng: inout some RandomNumberGenerator
    ) -> [SWIM.Directive] {
        var directives: [SWIM.Directive] = []
        for seed in Set(seeds).sorted() where seed != self.myself.address {
            self.counters.pushPullsStarted += 1
            directives.append(.startPushPull(to: seed, join: true))
        }
        return directives
    }

    // MARK: - Periodic exchange

    /// The push-pull interval, scaled up above 32 members: `interval · (⌈log2 N − log2 32⌉ + 1)`.
    var pushPullInterval: Duration {
        let n = self.clusterSize
        guard n > 32 else { return self.settings.pushPullInterval }
        let multiplier = SWIMMath.ceilLog2(n) - 5 + 1
        return self.settings.pushPullInterval.scaled(by: max(1, multiplier))
    }

    mutating func onPushPullTick(now: SWIM.Instant, using rng: inout some RandomNumberGenerator, into directives: inout [SWIM.Directive]) {
        guard !self.hasLeft else { return }
        directives.append(.armTimer(.pushPullTick, at: now + self.pushPullInterval))
        if let peer = self.randomMembers(1, using: &rng, where: { $0.member.status == .alive }).first {
            self.counters.pushPullsStarted += 1
            directives.append(.startPushPull(to: peer.member.address, join: false))
        }
        // Reconnect (as Serf does): with probability dead / live, also exchange with a random dead
        // member. A member on the far side of a healed partition answers, and both sides refute.
        guard self.deadCount > 0 else { return }
        let draw = Int.random(in: 0..<max(1, self.liveCount), using: &rng)
        guard draw < self.deadCount,
              let dead = self.randomMembers(1, using: &rng, where: { $0.member.status == .dead }).first
        else { return }
        self.counters.pushPullsStarted += 1
        directives.append(.startPushPull(to: dead.member.address, join: false))
    }

    /// The bytes to write for a push-pull this instance initiates: our whole table plus
    /// `appPayload`, the application's state summary.
    public mutating func pushPullRequest(join: Bool, appPayload: [UInt8] = []) -> [UInt8] {
        self.encode([.pushPull(self.localState(join: join, appPayload: appPayload))])
    }

    func localState(join: Bool, appPayload: [UInt8]) -> SWIM.Message.PushPull {
        var members: [SWIM.Member] = []
        members.reserveCapacity(self.slotByName.count + 1)
        members.append(self.myself)
        for record in self.slots {
            if let record { members.append(record.member) }
        }
        return .init(from: self.myself.name, join: join, members: members, appPayload: appPayload)
    }

    // MARK: - Inbound stream requests

    /// An inbound TCP connection from `address` delivered one request (a push-pull state or a
    /// stream ping). Produces exactly one ``SWIM/Directive/replyOnStream(_:)`` to write back, unless
    /// the request is malformed or not for us (then close the connection). For a push-pull,
    /// `appPayload` is our application's state summary to send back.
    public mutating func onStreamRequest(
        _ bytes: [UInt8],
        from address: SWIM.Address,
        appPayload: [UInt8] = [],
        now: SWIM.Instant,
        using rng: inout some RandomNumberGenerator
    ) -> [SWIM.Directive] {
        var directives: [SWIM.Directive] = []
        switch self.decodeStream(bytes, into: &directives) {
        case .pushPull(let remote)?:
            // Reply with the state before merging, as memberlist does.
            directives.append(.replyOnStream(self.pushPullRequest(join: false, appPayload: appPayload)))
            self.merge(remote, now: now, using: &rng, into: &directives)
        case .ping(let ping)?:
            if ping.target == self.myself.name {
                directives.append(.replyOnStream(self.encode([.ack(.init(seq: ping.seq))])))
            } else {
                directives.append(self.ignore(.pingForAnotherMember(target: ping.target)))
            }
        case .some:
            directives.append(self.ignore(.unexpectedStreamMessage))
        case nil:
            break
        }
        return directives
    }

    // MARK: - Outbound results

    /// The reply to a push-pull this instance started (``SWIM/Directive/startPushPull(to:join:)``).
    public mutating func onPushPullResponse(
        _ bytes: [UInt8],
        from address: SWIM.Address,
        now: SWIM.Instant,
        using rng: inout some RandomNumberGenerator
    ) -> [SWIM.Directive] {
        var directives: [SWIM.Directive] = []
        switch self.decodeStream(bytes, into: &directives) {
        case .pushPull(let remote)?:
            self.merge(remote, now: now, using: &rng, into: &directives)
        case .some:
            directives.append(self.ignore(.unexpectedStreamMessage))
        case nil:
            break
        }
        return directives
    }

    /// A push-pull this instance started could not complete (connect, write or read failed).
    public mutating func onPushPullFailed(to address: SWIM.Address, join: Bool, now: SWIM.Instant) -> [SWIM.Directive] {
        self.counters.pushPullsFailed += 1
        self.logger.debug("push-pull failed", metadata: ["gossip.address": "\(address)", "gossip.join": "\(join)"])
        return []
    }

    // MARK: - Merge

    /// Merges a remote table (memberlist `mergeState`): alive claims as alive, left as left, and
    /// remote dead or suspect as a suspicion (so a member we think alive gets a chance to refute).
    mutating func merge(
        _ remote: SWIM.Message.PushPull,
        now: SWIM.Instant,
        using rng: inout some RandomNumberGenerator,
        into directives: inout [SWIM.Directive]
    ) {
        self.counters.pushPullsMerged += 1
        let incarnationBefore = self.myself.incarnation
        for member in remote.members {
            switch member.status {
            case .alive:
                self.applyAlive(
                    .init(incarnation: member.incarnation, name: member.name, address: member.address, metadata: member.metadata),
                    now: now, using: &rng, into: &directives
                )
            case .left:
                self.applyDead(.init(incarnation: member.incarnation, name: member.name, from: member.name), now: now, into: &directives)
            case .dead, .suspect:
                self.applySuspect(.init(incarnation: member.incarnation, name: member.name, from: self.myself.name), now: now, using: &rng, into: &directives)
            }
        }
        // The peer thinks we are down: tell it directly that we refuted, since gossip may not reach
        // it (after a partition we may be dead in its view and it in ours).
        if self.myself.incarnation != incarnationBefore,
           let peer = remote.members.first(where: { $0.name == remote.from }), remote.from != self.myself.name
        {
            self.send([.alive(self.aliveMessage)], to: peer.address, into: &directives)
        }
        if !remote.appPayload.isEmpty {
            directives.append(.deliverAppPayload(from: remote.from, payload: remote.appPayload))
        }
    }

    // MARK: - Simulation support

    /// Adds `members` as alive without gossiping about them, as if the cluster had long converged.
    /// For simulations that start from a formed cluster of thousands; not for production.
    @_spi(Simulation)
    public mutating func _bootstrap(members: [SWIM.Member], now: SWIM.Instant, using rng: inout some RandomNumberGenerator) {
        for member in members where member.name != self.myself.name && self.slotByName[member.name] == nil {
            self.insert(member, now: now, using: &rng)
        }
    }
}
