@_spi(Simulation) import GossipCore

/// A deterministic discrete-event simulator: N ``SWIM/Instance``s over a ``SimulatedNetwork`` in
/// virtual time, every random choice drawn from one seed (same seed ⇒ same run).
///
/// Every datagram and stream message goes through the real ``SWIM/Codec``. Members can crash
/// (`kill -9`: nothing more is delivered), pause (CPU-starved: everything addressed to them, timers
/// included, waits and is handled at once on resume), restart, leave, and be partitioned.
/// Not thread-safe; drive it from one task.
public final class Simulation {
    /// One simulated member's fault state (kept apart from its instance so checks copy nothing).
    struct NodeState {
        var isCrashed = false
        var isPaused = false
        var started = false
        var pending: [Event] = []
    }

    /// Counters over the whole run.
    public struct Stats: Sendable, Equatable {
        /// Datagrams handed to the network.
        public var datagramsSent = 0
        /// Datagrams lost (loss or partition).
        public var datagramsDropped = 0
        /// Bytes of datagrams handed to the network.
        public var bytesSent = 0
        /// Events processed.
        public var eventsProcessed = 0
        /// `networkMisconfigured` directives seen.
        public var networkMisconfigured = 0
    }

    enum StreamPurpose {
        case pushPull(join: Bool)
        case ping(seq: UInt32)
    }

    enum Event {
        case start(Int, seeds: [Int])
        case timer(Int, SWIM.Timer)
        case datagram(to: Int, bytes: [UInt8], from: Int)
        case streamRequest(to: Int, bytes: [UInt8], from: Int, purpose: StreamPurpose)
        case streamReply(to: Int, bytes: [UInt8]?, from: Int, purpose: StreamPurpose)
        case streamPingDeadline(Int, seq: UInt32)

        var target: Int {
            switch self {
            case .start(let node, _), .timer(let node, _), .streamPingDeadline(let node, _): node
            case .datagram(let node, _, _), .streamRequest(let node, _, _, _), .streamReply(let node, _, _, _): node
            }
        }
    }

    private struct StreamPingKey: Hashable {
        var node: Int
        var seq: UInt32
    }

    // MARK: - State

    /// Virtual time.
    public private(set) var now: SWIM.Instant = .zero
    /// Network conditions; change them at any time.
    public var network: SimulatedNetwork
    /// Each member's protocol state, by index.
    public private(set) var instances: [SWIM.Instance] = []
    /// Each member's address, by index.
    public let addresses: [SWIM.Address]
    private var states: [NodeState] = []
    /// Counters.
    public private(set) var stats = Stats()
    /// The settings every member runs with.
    public let settings: SWIM.Settings

    /// Called for every membership event: (observer index, time, event).
    public var onMembershipEvent: ((Int, SWIM.Instant, SWIM.MembershipEvent) -> Void)?
    /// Called for every delivered user broadcast: (receiver, time, origin, payload).
    public var onUserBroadcast: ((Int, SWIM.Instant, String, [UInt8]) -> Void)?
    /// Called for every delivered push-pull app payload: (receiver, from, payload).
    public var onAppPayload: ((Int, String, [UInt8]) -> Void)?
    /// The app payload member `i` sends in push-pull (default: none).
    public var appPayload: ((Int) -> [UInt8])?

    private var queue = EventQueue()
    private var rngs: [SeededRandom] = []
    private var networkRandom: SeededRandom
    private let seed: UInt64
    private var indexByAddress: [SWIM.Address: Int] = [:]
    private var pendingStreamPings: Set<StreamPingKey> = []

    /// Creates `memberCount` members named `node-<i>` at `sim-<i>:7946`, not yet started.
    public init(memberCount: Int, settings: SWIM.Settings = .lan, network: SimulatedNetwork = .init(), seed: UInt64) {
        self.settings = settings
        self.network = network
        self.seed = seed
        self.networkRandom = SeededRandom.derived(seed: seed, stream: .max)
        self.addresses = (0..<memberCount).map { SWIM.Address(host: "sim-\($0)", port: 7946) }
        self.instances.reserveCapacity(memberCount)
        for index in 0..<memberCount {
            let address = self.addresses[index]
            self.instances.append(SWIM.Instance(settings: settings, name: Self.name(index), address: address))
            self.states.append(NodeState())
            self.rngs.append(SeededRandom.derived(seed: seed, stream: UInt64(index)))
            self.indexByAddress[address] = index
        }
    }

    /// The name of member `index`.
    public static func name(_ index: Int) -> String { "node-\(index)" }

    // MARK: - Setup

    /// Starts every member, member `i` at `i · stagger`, each joining through `seeds` (those not yet
    /// started are contacted anyway and answer once started).
    public func startAll(joiningThrough seeds: [Int] = [0], stagger: Duration = .milliseconds(10)) {
        for index in self.instances.indices {
            self.queue.push(.start(index, seeds: seeds), at: self.now + stagger * index)
        }
    }

    /// Starts every member already knowing every other as alive (no join traffic): a converged
    /// cluster of any size in O(N²) memory and no simulated time.
    public func startConverged() {
        let members = self.instances.indices.map { SWIM.Member(name: Self.name($0), address: self.addresses[$0]) }
        for index in self.instances.indices {
            self.instances[index]._bootstrap(members: members, now: self.now, using: &self.rngs[index])
            self.queue.push(.start(index, seeds: []), at: self.now)
        }
    }

    // MARK: - Faults and operator calls

    /// `kill -9`: the member stops; nothing is delivered to it any more.
    public func crash(_ index: Int) {
        self.states[index].isCrashed = true
        self.states[index].pending.removeAll()
    }

    /// Starves the member: everything addressed to it (timers included) waits until ``resume(_:)``.
    public func pause(_ index: Int) { self.states[index].isPaused = true }

    /// Resumes a paused member; its queued inputs are handled now, in arrival order.
    public func resume(_ index: Int) {
        self.states[index].isPaused = false
        let pending = self.states[index].pending
        self.states[index].pending.removeAll()
        for event in pending { self.queue.push(event, at: self.now) }
    }

    /// Restarts a crashed member as a fresh process (incarnation 0) that joins through `seeds`.
    public func restart(_ index: Int, joiningThrough seeds: [Int], metadata: [String: String] = [:]) {
        self.instances[index] = SWIM.Instance(settings: self.settings, name: Self.name(index), address: self.addresses[index], metadata: metadata)
        self.states[index] = NodeState()
        self.queue.push(.start(index, seeds: seeds), at: self.now)
    }

    /// Member `index` leaves gracefully.
    public func leave(_ index: Int) {
        let directives = self.instances[index].leave(now: self.now, using: &self.rngs[index])
        self.apply(directives, from: index)
    }

    /// Member `index` broadcasts `payload` to all others.
    @discardableResult
    public func broadcast(from index: Int, _ payload: [UInt8]) -> SWIM.BroadcastOutcome {
        self.instances[index].broadcast(payload, using: &self.rngs[index])
    }

    /// Splits the members into groups that cannot talk to each other.
    public func partition(_ groups: [[Int]]) { self.network.partition(groups, memberCount: self.instances.count) }

    /// Removes the partition.
    public func heal() { self.network.heal() }

    // MARK: - Running

    /// Runs for `duration` of virtual time.
    public func run(for duration: Duration) { self.run(until: self.now + duration) }

    /// Runs every event up to `deadline`, then sets the time to `deadline`.
    public func run(until deadline: SWIM.Instant) {
        while let time = self.queue.nextTime, time <= deadline, let entry = self.queue.pop() {
            self.now = max(self.now, entry.time)
            self.process(entry.payload)
        }
        self.now = max(self.now, deadline)
    }

    /// Runs until `condition` holds (checked every `step`) or `timeout` passes; returns whether it held.
    @discardableResult
    public func run(until condition: (Simulation) -> Bool, step: Duration = .milliseconds(100), timeout: Duration) -> Bool {
        let deadline = self.now + timeout
        while self.now < deadline {
            if condition(self) { return true }
            self.run(until: min(deadline, self.now + step))
        }
        return condition(self)
    }

    // MARK: - Queries

    /// How member `observer` sees member `subject`.
    public func view(of observer: Int, about subject: Int) -> SWIM.Member? {
        self.instances[observer].member(named: Self.name(subject))
    }

    /// Whether every member in `group` sees every member in `group` alive.
    public func isConverged(_ group: [Int]) -> Bool {
        for observer in group {
            for subject in group where subject != observer {
                guard self.view(of: observer, about: subject)?.status == .alive else { return false }
            }
        }
        return true
    }

    /// Whether every member in `observers` sees `subject` with `status`.
    public func all(_ observers: [Int], see subject: Int, as status: SWIM.MemberStatus) -> Bool {
        observers.allSatisfy { self.view(of: $0, about: subject)?.status == status }
    }

    /// Indices of members neither crashed nor left.
    public var runningMembers: [Int] {
        self.instances.indices.filter { !self.states[$0].isCrashed && !self.instances[$0].hasLeft }
    }

    /// Number of members.
    public var memberCount: Int { self.instances.count }

    /// Whether member `index` crashed.
    public func isCrashed(_ index: Int) -> Bool { self.states[index].isCrashed }

    // MARK: - Event processing

    private func process(_ event: Event) {
        let index = event.target
        guard !self.states[index].isCrashed else {
            if case .streamRequest(_, _, let from, let purpose) = event {
                self.failStream(to: from, purpose: purpose, peer: index, after: self.network.latency)
            }
            return
        }
        if self.states[index].isPaused {
            self.states[index].pending.append(event)
            return
        }
        self.stats.eventsProcessed += 1
        let now = self.now
        switch event {
        case .start(_, let seeds):
            guard !self.states[index].started else { return }
            self.states[index].started = true
            let started = self.instances[index].start(now: now, using: &self.rngs[index])
            self.apply(started, from: index)
            let seedAddresses = seeds.filter { $0 != index }.map { self.addresses[$0] }
            self.apply(self.instances[index].join(seeds: seedAddresses, now: now, using: &self.rngs[index]), from: index)
        case .timer(_, let timer):
            self.apply(self.instances[index].onTimer(timer, now: now, using: &self.rngs[index]), from: index)
        case .datagram(_, let bytes, let from):
            let directives = self.instances[index].onPacket(bytes, from: self.addresses[from], now: now, using: &self.rngs[index])
            self.apply(directives, from: index)
        case .streamRequest(_, let bytes, let from, let purpose):
            guard self.states[index].started else {
                self.failStream(to: from, purpose: purpose, peer: index, after: self.network.latency)
                return
            }
            let payload = self.appPayload?(index) ?? []
            let directives = self.instances[index].onStreamRequest(
                bytes, from: self.addresses[from], appPayload: payload, now: now, using: &self.rngs[index]
            )
            var reply: [UInt8]?
            for case .replyOnStream(let bytes) in directives { reply = bytes }
            self.apply(directives, from: index)
            if let reply, self.network.canReach(index, from) {
                self.queue.push(.streamReply(to: from, bytes: reply, from: index, purpose: purpose), at: now + self.network.streamDelay(using: &self.networkRandom))
            } else {
                self.failStream(to: from, purpose: purpose, peer: index, after: self.network.latency)
            }
        case .streamReply(_, let bytes, let from, let purpose):
            switch purpose {
            case .pushPull(let join):
                let directives: [SWIM.Directive]
                if let bytes {
                    directives = self.instances[index].onPushPullResponse(bytes, from: self.addresses[from], now: now, using: &self.rngs[index])
                } else {
                    directives = self.instances[index].onPushPullFailed(to: self.addresses[from], join: join, now: now)
                }
                self.apply(directives, from: index)
            case .ping(let seq):
                guard self.pendingStreamPings.remove(StreamPingKey(node: index, seq: seq)) != nil else { return }
                self.apply(self.instances[index].onStreamPingResult(seq: seq, reply: bytes, now: now, using: &self.rngs[index]), from: index)
            }
        case .streamPingDeadline(_, let seq):
            guard self.pendingStreamPings.remove(StreamPingKey(node: index, seq: seq)) != nil else { return }
            self.apply(self.instances[index].onStreamPingResult(seq: seq, reply: nil, now: now, using: &self.rngs[index]), from: index)
        }
    }

    private func failStream(to initiator: Int, purpose: StreamPurpose, peer: Int, after delay: Duration) {
        self.queue.push(.streamReply(to: initiator, bytes: nil, from: peer, purpose: purpose), at: self.now + delay)
    }

    // MARK: - Directives

    private func apply(_ directives: [SWIM.Directive], from index: Int) {
        for directive in directives {
            switch directive {
            case .send(let bytes, let address):
                self.stats.datagramsSent += 1
                self.stats.bytesSent += bytes.count
                guard let target = self.indexByAddress[address],
                      let delay = self.network.datagramDelay(from: index, to: target, using: &self.networkRandom)
                else {
                    self.stats.datagramsDropped += 1
                    continue
                }
                self.queue.push(.datagram(to: target, bytes: bytes, from: index), at: self.now + delay)
            case .armTimer(let timer, let deadline):
                self.queue.push(.timer(index, timer), at: max(self.now, deadline))
            case .membership(let event):
                self.onMembershipEvent?(index, self.now, event)
            case .startStreamPing(let seq, let address, let request, let deadline):
                self.pendingStreamPings.insert(StreamPingKey(node: index, seq: seq))
                self.queue.push(.streamPingDeadline(index, seq: seq), at: max(self.now, deadline))
                guard let target = self.indexByAddress[address], self.network.canReach(index, target) else { continue }
                self.queue.push(
                    .streamRequest(to: target, bytes: request, from: index, purpose: .ping(seq: seq)),
                    at: self.now + self.network.streamDelay(using: &self.networkRandom)
                )
            case .startPushPull(let address, let join):
                guard let target = self.indexByAddress[address] else { continue }
                guard self.network.canReach(index, target) else {
                    self.failStream(to: index, purpose: .pushPull(join: join), peer: target, after: self.network.connectTimeout)
                    continue
                }
                let request = self.instances[index].pushPullRequest(join: join, appPayload: self.appPayload?(index) ?? [])
                self.queue.push(
                    .streamRequest(to: target, bytes: request, from: index, purpose: .pushPull(join: join)),
                    at: self.now + self.network.streamDelay(using: &self.networkRandom)
                )
            case .replyOnStream:
                break  // taken by the stream request handler
            case .deliverUserBroadcast(let origin, let payload):
                self.onUserBroadcast?(index, self.now, origin, payload)
            case .deliverAppPayload(let from, let payload):
                self.onAppPayload?(index, from, payload)
            case .networkMisconfigured:
                self.stats.networkMisconfigured += 1
            case .ignored:
                break
            }
        }
    }
}
