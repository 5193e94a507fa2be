import Logging

// Application broadcasts (delivered once per member) and metadata updates.

extension SWIM {
    /// What ``Instance/broadcast(_:using:)`` did.
    public enum BroadcastOutcome: Hashable, Sendable {
        /// Queued for gossip with this origin sequence number.
        case queued(seq: UInt64)
        /// The payload cannot fit in one packet (`limit` payload bytes at most).
        case tooLarge(size: Int, limit: Int)
    }

    /// What ``Instance/updateMetadata(_:)`` did.
    public enum MetadataOutcome: Hashable, Sendable {
        /// Accepted; gossiped at the new incarnation.
        case updated(incarnation: Incarnation)
        /// Over ``Settings/maxMetadataBytes``; nothing changed.
        case tooLarge(size: Int, limit: Int)
    }
}

extension SWIM.Instance {
    // MARK: - User broadcasts

    /// Queues `payload` for every other member's application, each delivering it once (as
    /// ``SWIM/Directive/deliverUserBroadcast(origin:payload:)``). Not delivered to ourselves.
    public mutating func broadcast(_ payload: [UInt8], using rng: inout some RandomNumberGenerator) -> SWIM.BroadcastOutcome {
        let seq = self.userBroadcastSeq ?? UInt64.random(in: 0...UInt64.max, using: &rng)
        self.userBroadcastSeq = seq &+ 1
        let message = SWIM.Message.userBroadcast(.init(origin: self.myself.name, seq: seq, payload: payload))
        let framed = SWIM.Codec.encodeFramed(message)
        let limit = self.settings.maxPacketSize - SWIM.Codec.overhead(checksum: self.settings.checksum)
        guard framed.count <= limit else {
            return .tooLarge(size: payload.count, limit: payload.count - (framed.count - limit))
        }
        self.seenBroadcasts.insert(.init(origin: self.myself.name, seq: seq), capacity: self.settings.userBroadcastDedupeCapacity)
        self.counters.broadcastQueueDrops += self.queue.enqueue(framed, key: nil, maxDepth: self.maxQueueDepth)
        self.counters.userBroadcastsSent += 1
        return .queued(seq: seq)
    }

    mutating func onUserBroadcast(_ broadcast: SWIM.Message.UserBroadcast, into directives: inout [SWIM.Directive]) {
        let id = RecentSet.ID(origin: broadcast.origin, seq: broadcast.seq)
        guard self.seenBroadcasts.insert(id, capacity: self.settings.userBroadcastDedupeCapacity) else {
            self.counters.userBroadcastDuplicates += 1
            return
        }
        self.counters.userBroadcastsDelivered += 1
        self.enqueue(.userBroadcast(broadcast), key: nil)
        directives.append(.deliverUserBroadcast(origin: broadcast.origin, payload: broadcast.payload))
    }

    // MARK: - Metadata

    /// Replaces our tags and gossips them at a new incarnation.
    public mutating func updateMetadata(_ metadata: [String: String]) -> SWIM.MetadataOutcome {
        let size = SWIM.Codec.metadataSize(metadata)
        guard size <= self.settings.maxMetadataBytes else {
            return .tooLarge(size: size, limit: self.settings.maxMetadataBytes)
        }
        self.myself.metadata = metadata
        self.myself.incarnation &+= 1
        self.enqueue(.alive(self.aliveMessage), key: self.myself.name)
        return .updated(incarnation: self.myself.incarnation)
    }

    // MARK: - Leave

    /// Leaves gracefully: raises our incarnation, sends a `left` claim about ourselves straight to
    /// `gossipNodes` random members and queues it for gossip, then stops probing and push-pull.
    /// Gossip ticks continue until the queue is flushed; the shell should keep running for a few
    /// gossip intervals (or until ``broadcastQueueDepth`` is 0) before closing its sockets.
    public mutating func leave(now: SWIM.Instant, using rng: inout some RandomNumberGenerator) -> [SWIM.Directive] {
        guard !self.hasLeft else { return [] }
        var directives: [SWIM.Directive] = []
        self.myself.incarnation &+= 1
        self.myself.status = .left
        let left = SWIM.Message.dead(.init(incarnation: self.myself.incarnation, name: self.myself.name, from: self.myself.name))
        for target in self.randomMembers(self.settings.gossipNodes, using: &rng, where: { $0.member.status.isLive }) {
            self.send([left], to: target.member.address, into: &directives)
        }
        self.enqueue(left, key: self.myself.name)
        self.probes.removeAll()
        return directives
    }
}

// MARK: - Recent set

/// A bounded set of recently seen user-broadcast ids: a FIFO ring plus a hash set.
struct RecentSet: Sendable {
    struct ID: Hashable, Sendable {
        var origin: String
        var seq: UInt64
    }

    private var ring: [ID] = []
    private var next = 0
    private var members: Set<ID> = []

    /// Inserts `id`; `false` if it was already present. Evicts the oldest beyond `capacity`.
    @discardableResult
    mutating func insert(_ id: ID, capacity: Int) -> Bool {
        guard !self.members.contains(id) else { return false }
        if self.ring.count < capacity {
            self.ring.append(id)
        } else {
            self.members.remove(self.ring[self.next])
            self.ring[self.next] = id
            self.next = (self.next + 1) % self.ring.count
        }
        self.members.insert(id)
        return true
    }
}
