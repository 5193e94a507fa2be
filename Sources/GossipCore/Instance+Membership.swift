import Logging

// The merge rules for alive / suspect / dead claims (memberlist `aliveNode`, `suspectNode`,
// `deadNode`) and refutation by incarnation.

extension SWIM.Instance {
    // MARK: - Alive

    mutating func applyAlive(
        _ alive: SWIM.Message.Alive,
        now: SWIM.Instant,
        using rng: inout some RandomNumberGenerator,
        into directives: inout [SWIM.Directive]
    ) {
        if alive.name == self.myself.name {
            // Someone states our own record: refute if it is newer than ours or differs at the
            // same incarnation (e.g. our previous life before a restart).
            guard !self.hasLeft, alive.incarnation >= self.myself.incarnation else { return }
            if alive.incarnation == self.myself.incarnation && alive.address == self.myself.address
                && alive.metadata == self.myself.metadata
            {
                return
            }
            self.refute(atLeast: alive.incarnation, healthPenalty: false)
            return
        }
        let size = SWIM.Codec.metadataSize(alive.metadata)
        guard size <= self.settings.maxMetadataBytes else {
            directives.append(self.ignore(.metadataTooLarge(name: alive.name, size: size)))
            return
        }
        guard let slot = self.slotByName[alive.name], let record = self.slots[slot] else {
            let member = SWIM.Member(
                name: alive.name, address: alive.address, status: .alive,
                incarnation: alive.incarnation, metadata: alive.metadata
            )
            self.insert(member, now: now, using: &rng)
            self.counters.joins += 1
            directives.append(.membership(.joined(member)))
            self.enqueue(.alive(alive), key: alive.name)
            self.logger.debug("member joined", metadata: ["gossip.member": "\(alive.name)"])
            return
        }
        let old = record.member
        if alive.address != old.address && old.status.isLive {
            directives.append(self.ignore(.addressConflict(name: alive.name, address: alive.address)))
            return
        }
        guard alive.incarnation > old.incarnation else { return }
        self.slots[slot]?.member.incarnation = alive.incarnation
        self.slots[slot]?.member.address = alive.address
        self.slots[slot]?.member.metadata = alive.metadata
        self.setStatus(.alive, slot: slot, now: now)
        self.suspicions.removeValue(forKey: alive.name)
        guard let member = self.slots[slot]?.member else { return }
        switch old.status {
        case .dead, .left:
            self.counters.joins += 1
            directives.append(.membership(.joined(member)))
        case .suspect:
            self.counters.suspicionsRefuted += 1
            directives.append(.membership(.recovered(member)))
        case .alive:
            if old.metadata != member.metadata || old.address != member.address {
                directives.append(.membership(.updated(member)))
            }
        }
        self.enqueue(.alive(alive), key: alive.name)
    }

    // MARK: - Suspect

    /// Most suspects waiting to be probed ahead of the round-robin order.
    static let maxSuspectsToProbe = 4

    mutating func applySuspect(
        _ suspect: SWIM.Message.Suspect,
        now: SWIM.Instant,
        using rng: inout some RandomNumberGenerator,
        into directives: inout [SWIM.Directive]
    ) {
        if suspect.name == self.myself.name {
            self.refuteClaim(about: suspect.incarnation)
            return
        }
        guard let slot = self.slotByName[suspect.name], let record = self.slots[slot],
              suspect.incarnation >= record.member.incarnation
        else { return }
        switch record.member.status {
        case .dead, .left:
            return
        case .suspect:
            // Lifeguard: an independent accuser shortens the timeout.
            guard var suspicion = self.suspicions[suspect.name],
                  suspicion.confirm(suspect.from, at: now, settings: self.settings)
            else { return }
            self.suspicions[suspect.name] = suspicion
            self.enqueue(.suspect(suspect), key: suspect.name)
            if suspicion.deadline <= now {
                self.declareDead(slot: slot, now: now, into: &directives)
            } else {
                directives.append(.armTimer(.suspicion(member: suspect.name), at: suspicion.deadline))
            }
        case .alive:
            self.slots[slot]?.member.incarnation = suspect.incarnation
            self.setStatus(.suspect, slot: slot, now: now)
            let suspicion = Suspicion(
                accuser: suspect.from, start: now,
                clusterSize: self.clusterSize, settings: self.settings
            )
            self.suspicions[suspect.name] = suspicion
            if suspect.from != self.myself.name {
                // Check for ourselves: the buddy ping lets a live suspect refute to us directly, and a
                // failed probe of a dead one confirms the suspicion. A few members (in expectation
                // `suspicionProbers`) do it at once, so confirmations arrive within one probe window;
                // the others at their next probe tick.
                if self.probesSuspectAtOnce(using: &rng), let member = self.slots[slot]?.member {
                    self.counters.suspicionProbes += 1
                    self.startProbe(of: member, now: now, into: &directives)
                } else if self.suspectsToProbe.count < Self.maxSuspectsToProbe {
                    self.suspectsToProbe.append(suspect.name)
                }
            }
            self.counters.suspicionsRaised += 1
            self.enqueue(.suspect(suspect), key: suspect.name)
            if let member = self.slots[slot]?.member { directives.append(.membership(.suspected(member))) }
            directives.append(.armTimer(.suspicion(member: suspect.name), at: suspicion.deadline))
            self.logger.debug("member suspected", metadata: ["gossip.member": "\(suspect.name)"])
        }
    }

    /// Whether this member probes a suspect it just heard of at once: with probability
    /// `suspicionProbers / (N − 2)` (everyone but the suspect and its accuser may).
    private func probesSuspectAtOnce(using rng: inout some RandomNumberGenerator) -> Bool {
        let probers = self.settings.suspicionProbers
        guard probers > 0 else { return false }
        let candidates = self.clusterSize - 2
        guard candidates > probers else { return true }
        return Int.random(in: 0..<candidates, using: &rng) < probers
    }

    /// The suspicion timer fired: declare the member dead if its (possibly shortened) deadline passed.
    mutating func onSuspicionTimer(member name: String, now: SWIM.Instant, into directives: inout [SWIM.Directive]) {
        guard let suspicion = self.suspicions[name], suspicion.deadline <= now,
              let slot = self.slotByName[name], self.slots[slot]?.member.status == .suspect
        else { return }
        self.declareDead(slot: slot, now: now, into: &directives)
    }

    private mutating func declareDead(slot: Int, now: SWIM.Instant, into directives: inout [SWIM.Directive]) {
        guard let member = self.slots[slot]?.member else { return }
        let dead = SWIM.Message.Dead(incarnation: member.incarnation, name: member.name, from: self.myself.name)
        self.applyDead(dead, now: now, into: &directives)
    }

    // MARK: - Dead and left

    mutating func applyDead(_ dead: SWIM.Message.Dead, now: SWIM.Instant, into directives: inout [SWIM.Directive]) {
        if dead.name == self.myself.name {
            self.refuteClaim(about: dead.incarnation)
            return
        }
        guard let slot = self.slotByName[dead.name], let record = self.slots[slot],
              dead.incarnation >= record.member.incarnation, record.member.status.isLive
        else { return }
        self.slots[slot]?.member.incarnation = dead.incarnation
        self.setStatus(dead.isLeave ? .left : .dead, slot: slot, now: now)
        self.suspicions.removeValue(forKey: dead.name)
        self.enqueue(.dead(dead), key: dead.name)
        guard let member = self.slots[slot]?.member else { return }
        if dead.isLeave {
            self.counters.leaves += 1
            directives.append(.membership(.left(member)))
        } else {
            self.counters.deaths += 1
            directives.append(.membership(.failed(member)))
        }
        self.logger.debug("member down", metadata: ["gossip.member": "\(dead.name)", "gossip.left": "\(dead.isLeave)"])
    }

    // MARK: - Refutation

    /// Someone suspects us or declares us dead at `incarnation`. At or above our incarnation: refute.
    /// Below it: the claimant missed our earlier refutation, so queue our current alive again (no
    /// bump) for the next packets — above all the ack to a buddy-system ping.
    mutating func refuteClaim(about incarnation: SWIM.Incarnation) {
        guard !self.hasLeft else { return }
        if incarnation >= self.myself.incarnation {
            self.refute(atLeast: incarnation, healthPenalty: true)
        } else {
            self.enqueue(.alive(self.aliveMessage), key: self.myself.name)
        }
    }

    /// Raises our incarnation above `incarnation` and gossips that we are alive. A refuted
    /// suspicion or death claim also costs local health (Lifeguard: we may be the slow one).
    mutating func refute(atLeast incarnation: SWIM.Incarnation, healthPenalty: Bool) {
        let (next, overflow) = max(incarnation, self.myself.incarnation).addingReportingOverflow(1)
        self.myself.incarnation = overflow ? .max : next
        self.counters.selfRefutations += 1
        if healthPenalty { self.adjustHealth(by: 1) }
        self.enqueue(.alive(self.aliveMessage), key: self.myself.name)
        self.logger.debug("refuting claim about myself", metadata: ["gossip.incarnation": "\(self.myself.incarnation)"])
    }

    var aliveMessage: SWIM.Message.Alive {
        .init(incarnation: self.myself.incarnation, name: self.myself.name, address: self.myself.address, metadata: self.myself.metadata)
    }
}

// MARK: - Suspicion (Lifeguard LHA-Suspicion)

extension SWIM.Instance {
    struct Suspicion: Sendable {
        /// The first accuser; does not count as a confirmation.
        var accuser: String
        var confirmers: Set<String> = []
        var start: SWIM.Instant
        var expected: Int
        var minimum: Duration
        var maximum: Duration
        var deadline: SWIM.Instant

        init(accuser: String, start: SWIM.Instant, clusterSize: Int, settings: SWIM.Settings) {
            self.accuser = accuser
            self.start = start
            // K is capped at N - 2: nobody but the suspect and the accuser can confirm.
            self.expected = max(0, min(settings.suspicionExpectedConfirmations, clusterSize - 2))
            self.minimum = SWIM.Instance.suspicionMinimum(clusterSize: clusterSize, settings: settings)
            self.maximum = self.minimum.scaled(by: settings.suspicionMaxTimeoutMult)
            self.deadline = start + SWIM.Instance.suspicionTimeout(
                confirmations: 0, expected: self.expected, minimum: self.minimum, maximum: self.maximum
            )
        }

        /// Counts an independent confirmation and recomputes the deadline; `false` if not new.
        mutating func confirm(_ from: String, at now: SWIM.Instant, settings: SWIM.Settings) -> Bool {
            guard from != self.accuser, self.confirmers.count < self.expected, !self.confirmers.contains(from) else {
                return false
            }
            self.confirmers.insert(from)
            self.deadline = self.start + SWIM.Instance.suspicionTimeout(
                confirmations: self.confirmers.count, expected: self.expected,
                minimum: self.minimum, maximum: self.maximum
            )
            return true
        }
    }

    /// `suspicionMult · max(1, log10 N) · probeInterval` (memberlist `suspicionTimeout`).
    public static func suspicionMinimum(clusterSize: Int, settings: SWIM.Settings) -> Duration {
        let nodeScale = max(1.0, SWIMMath.log10(Double(max(1, clusterSize))))
        let nanoseconds = Double(settings.probeInterval.nanosecondsSaturated) * Double(settings.suspicionMult) * nodeScale
        return .nanoseconds(Int64(min(nanoseconds, 9.0e18)))
    }

    /// `max(min, max − (max − min) · log(C + 1) / log(K + 1))`; `min` when `K < 1`.
    public static func suspicionTimeout(
        confirmations: Int,
        expected: Int,
        minimum: Duration,
        maximum: Duration
    ) -> Duration {
        guard expected >= 1 else { return minimum }
        let low = Double(minimum.nanosecondsSaturated)
        let high = Double(maximum.nanosecondsSaturated)
        let fraction = SWIMMath.ln(Double(confirmations) + 1) / SWIMMath.ln(Double(expected) + 1)
        let raw = high - (high - low) * fraction
        return .nanoseconds(Int64(max(low, min(high, raw))))
    }
}
