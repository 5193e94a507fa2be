import Logging

extension SWIM {
    /// The SWIM + Lifeguard protocol state machine for one member.
    ///
    /// Inputs (each returns `[Directive]` for the shell):
    /// - ``start(now:using:)`` once, then ``join(seeds:now:using:)``;
    /// - ``onPacket(_:from:now:using:)`` for every UDP datagram;
    /// - ``onTimer(_:now:using:)`` for every ``Directive/armTimer(_:at:)`` that fires;
    /// - ``onStreamRequest(_:from:appPayload:now:using:)`` for every inbound TCP request;
    /// - ``onPushPullResponse(_:from:now:using:)`` / ``onPushPullFailed(to:join:now:)`` and
    ///   ``onStreamPingResult(seq:reply:now:using:)`` for outbound TCP exchanges;
    /// - ``broadcast(_:using:)``, ``updateMetadata(_:)``, ``leave(now:using:)`` from the operator.
    ///
    /// No `async`, no `throws`, no clock, no sockets: `now` and the random number generator come in
    /// with every input, so the same inputs always give the same directives.
    public struct Instance: Sendable {
        /// The settings this instance runs with.
        public let settings: Settings

        /// This member: name, address, incarnation, metadata; status `alive` or, after
        /// ``leave(now:using:)``, `left`.
        public internal(set) var myself: Member

        // MARK: Membership table

        /// Known members other than `myself`, in slots reused after reaping.
        var slots: [MemberRecord?] = []
        var slotByName: [String: Int] = [:]
        var freeSlots: [Int] = []
        /// Alive or suspect members other than `myself`.
        var liveCount = 0
        /// Dead (not left) members still retained.
        var deadCount = 0
        /// Running suspicions by member name.
        var suspicions: [String: Suspicion] = [:]

        // MARK: Probing

        /// Round-robin order over slots, reshuffled every pass.
        var probeOrder: [Int] = []
        var probeIndex = 0
        /// Suspects learned from others, probed ahead of the round-robin order (bounded).
        var suspectsToProbe: [String] = []
        var probes: [UInt32: Probe] = [:]
        var relays: [UInt32: Relay] = [:]
        var nextSeq: UInt32 = 0
        /// Lifeguard local health score, `0 ..< awarenessMaxMultiplier`.
        public internal(set) var localHealth = 0

        // MARK: Dissemination

        var queue = BroadcastQueue()
        var userBroadcastSeq: UInt64?
        var seenBroadcasts = RecentSet()

        // MARK: Lifecycle

        var started = false
        var counters = Metrics()

        /// Creates an instance for the member `name` listening at `address`.
        ///
        /// - Precondition: `name` and `address.host` are 1...255 UTF-8 bytes and `metadata` encodes
        ///   within `settings.maxMetadataBytes` (programmer input; validate operator input first with
        ///   ``Codec/metadataSize(_:)``).
        public init(
            settings: Settings = .lan,
            name: String,
            address: Address,
            metadata: [String: String] = [:],
            incarnation: Incarnation = 0
        ) {
            precondition(!name.isEmpty && name.utf8.count <= Codec.maxNameBytes, "member name must be 1...255 bytes: \(name)")
            precondition(address.host.utf8.count <= Codec.maxNameBytes, "host must be at most 255 bytes")
            let size = Codec.metadataSize(metadata)
            precondition(size <= settings.maxMetadataBytes, "metadata is \(size) bytes, limit \(settings.maxMetadataBytes)")
            self.settings = settings
            self.myself = Member(name: name, address: address, status: .alive, incarnation: incarnation, metadata: metadata)
        }

        // MARK: - Queries

        /// Every known member, `myself` included, sorted by name.
        public var members: [Member] {
            var result = self.slots.compactMap { $0?.member }
            result.append(self.myself)
            return result.sorted { $0.name < $1.name }
        }

        /// The member called `name` (`myself` included), if known.
        public func member(named name: String) -> Member? {
            if name == self.myself.name { return self.myself }
            guard let slot = self.slotByName[name] else { return nil }
            return self.slots[slot]?.member
        }

        /// Alive or suspect members, `myself` included: the `N` of every formula.
        public var clusterSize: Int { self.liveCount + 1 }

        /// Items waiting in the broadcast queue.
        public var broadcastQueueDepth: Int { self.queue.count }

        /// A snapshot of the counters, with the queue-depth gauge filled in.
        public var metrics: Metrics {
            var metrics = self.counters
            metrics.broadcastQueueDepth = self.queue.count
            return metrics
        }

        /// Whether ``leave(now:using:)`` was called.
        public var hasLeft: Bool { self.myself.status == .left }

        var logger: Logger { self.settings.logger }
    }
}

// MARK: - Internal state types

extension SWIM.Instance {
    struct MemberRecord: Sendable {
        var member: SWIM.Member
        /// When `member.status` last changed.
        var stateChange: SWIM.Instant
    }

    struct Probe: Sendable {
        var target: String
        var address: SWIM.Address
        var deadline: SWIM.Instant
        var indirect = false
        var expectedNacks = 0
        var nacks = 0
        var streamPending = false
        var streamSucceeded = false
        var deadlinePassed = false
    }

    struct Relay: Sendable {
        var requester: SWIM.Address
        var requesterSeq: UInt32
        var wantsNack: Bool
    }
}

// MARK: - Table maintenance

extension SWIM.Instance {
    /// Adds a new member and inserts it at a random position of the probe order.
    mutating func insert(_ member: SWIM.Member, now: SWIM.Instant, using rng: inout some RandomNumberGenerator) {
        let record = MemberRecord(member: member, stateChange: now)
        let slot: Int
        if let free = self.freeSlots.popLast() {
            slot = free
            self.slots[slot] = record
        } else {
            slot = self.slots.count
            self.slots.append(record)
        }
        self.slotByName[member.name] = slot
        self.count(member.status, by: 1)
        self.probeOrder.append(slot)
        let swap = Int.random(in: 0..<self.probeOrder.count, using: &rng)
        self.probeOrder.swapAt(swap, self.probeOrder.count - 1)
    }

    /// Changes a member's status, keeping the counters in step.
    mutating func setStatus(_ status: SWIM.MemberStatus, slot: Int, now: SWIM.Instant) {
        guard let old = self.slots[slot]?.member.status, old != status else { return }
        self.count(old, by: -1)
        self.count(status, by: 1)
        self.slots[slot]?.member.status = status
        self.slots[slot]?.stateChange = now
    }

    private mutating func count(_ status: SWIM.MemberStatus, by delta: Int) {
        switch status {
        case .alive, .suspect: self.liveCount += delta
        case .dead: self.deadCount += delta
        case .left: break
        }
    }

    /// Forgets dead and left members older than the retention; returns them.
    mutating func reap(now: SWIM.Instant) -> [SWIM.Member] {
        var reaped: [SWIM.Member] = []
        for slot in self.slots.indices {
            guard let record = self.slots[slot], !record.member.status.isLive,
                  now - record.stateChange > self.settings.deadMemberRetention
            else { continue }
            self.count(record.member.status, by: -1)
            self.slots[slot] = nil
            self.slotByName.removeValue(forKey: record.member.name)
            self.freeSlots.append(slot)
            reaped.append(record.member)
        }
        self.counters.reaped += reaped.count
        return reaped
    }

    /// Up to `count` distinct random members satisfying `isEligible` (memberlist's `kRandomNodes`:
    /// at most `3 · n` draws).
    func randomMembers(
        _ count: Int,
        using rng: inout some RandomNumberGenerator,
        where isEligible: (MemberRecord) -> Bool
    ) -> [MemberRecord] {
        guard count > 0, !self.probeOrder.isEmpty else { return [] }
        var chosen: [MemberRecord] = []
        var chosenSlots: [Int] = []
        let draws = 3 * self.probeOrder.count
        var draw = 0
        while draw < draws && chosen.count < count {
            draw += 1
            let slot = self.probeOrder[Int.random(in: 0..<self.probeOrder.count, using: &rng)]
            guard let record = self.slots[slot], !chosenSlots.contains(slot), isEligible(record) else { continue }
            chosen.append(record)
            chosenSlots.append(slot)
        }
        return chosen
    }

    /// Allocates a sequence number.
    mutating func allocateSeq() -> UInt32 {
        self.nextSeq &+= 1
        return self.nextSeq
    }

    /// `duration · (localHealth + 1)` (Lifeguard LHA-Probe).
    func scaledByHealth(_ duration: Duration) -> Duration {
        duration.scaled(by: self.localHealth + 1)
    }

    /// Moves the local health score by `delta`, clamped to `0 ..< awarenessMaxMultiplier`.
    mutating func adjustHealth(by delta: Int) {
        let upper = self.settings.awarenessMaxMultiplier - 1
        self.localHealth = min(upper, max(0, self.localHealth + delta))
    }

    /// Sends per update: `retransmitMult · ⌈log10(N + 1)⌉`.
    var transmitLimit: Int {
        self.settings.retransmitMult * max(1, SWIMMath.ceilLog10(self.clusterSize + 1))
    }

    /// Queue capacity: `max(minQueueDepth, 2 · N)`.
    var maxQueueDepth: Int { max(self.settings.minQueueDepth, 2 * self.clusterSize) }

    /// Queues a framed message for gossip.
    mutating func enqueue(_ message: SWIM.Message, key: String?) {
        let dropped = self.queue.enqueue(SWIM.Codec.encodeFramed(message), key: key, maxDepth: self.maxQueueDepth)
        self.counters.broadcastQueueDrops += dropped
    }

    /// Records an ignored input and returns its directive.
    mutating func ignore(_ reason: SWIM.IgnoredInput) -> SWIM.Directive {
        self.counters.ignoredInputs += 1
        return .ignored(reason)
    }
}
