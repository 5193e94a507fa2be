import Foundation
import Logging
import Synchronization

/// Another agent this one replicates with.
public struct ReplicationPeer: Sendable, Hashable {
    /// Its node name (the one its stamps carry).
    public var name: String
    /// Where the transport reaches it (opaque here: the agent passes the peer's HTTP address).
    public var address: String
    /// The root digest the peer last announced (through gossip), if any.
    public var announcedRoot: UInt64?

    public init(name: String, address: String, announcedRoot: UInt64? = nil) {
        self.name = name
        self.address = address
        self.announcedRoot = announcedRoot
    }
}

/// Who the live peers are. ConfigCenter does not import Gossip (DESIGN: module map); the agent adapts it.
public protocol ReplicationMembership: Sendable {
    /// Live peers, this node excluded.
    func livePeers() -> [ReplicationPeer]
    /// Tells the cluster this node's root digest (rate-limited by the caller).
    func announce(root: UInt64)
}

/// Moves one replication request to a peer and brings back its answer (both encoded `ReplicationMessage`s).
public protocol ReplicationTransport: Sendable {
    func send(_ request: Data, to peer: ReplicationPeer, timeout: Duration) async throws -> Data
}

/// Replication settings (`[replication]` in the agent's config file).
public struct ReplicationSettings: Sendable, Equatable {
    /// Base period of anti-entropy; scaled up with cluster size (see `antiEntropyPeriod(liveMembers:)`).
    public var antiEntropyInterval: Duration = .seconds(5)
    /// Versions per push request.
    public var pushBatch = 512
    /// Keys per anti-entropy fetch or push page.
    public var repairPage = 500
    /// Timeout of one request to a peer.
    public var requestTimeout: Duration = .seconds(5)
    /// How long `?replicas=K` waits by default.
    public var writeConcernTimeout: Duration = .seconds(5)
    /// A difference older than this is not replication in flight but divergence.
    public var settleWindow: Duration = .seconds(10)
    /// Divergence that persists longer makes the agent unhealthy.
    public var divergenceBound: Duration = .seconds(60)
    /// How often the list of live peers is refreshed.
    public var membershipRefresh: Duration = .milliseconds(100)

    public init() {}

    /// Memberlist scales its push-pull period the same way: constant up to 32 members, then by log2.
    public func antiEntropyPeriod(liveMembers: Int) -> Duration {
        guard liveMembers > 32 else { return self.antiEntropyInterval }
        let factor = ceil(log2(Double(liveMembers) / 32)) + 1
        return self.antiEntropyInterval * factor
    }
}

/// The result of comparing this node's keyspace with one peer's.
public struct PeerComparison: Sendable, Equatable {
    public var peer: String
    /// Unix milliseconds when it ran.
    public var at: Int64
    /// True when the digests were identical.
    public var matched: Bool
    /// Keys the peer holds newer or only it holds.
    public var missingHere = 0
    /// Keys this node holds newer or only it holds.
    public var missingThere = 0
    /// Keys both hold at different stamps.
    public var different = 0
    /// Of the differences, those older than the settle window (real divergence, not replication in flight).
    public var settled = 0
    /// Versions pulled, pushed or forgotten to repair.
    public var repaired = 0
    /// Why the comparison could not run, if it could not.
    public var error: String?
    /// The peer's root digest at the time.
    public var peerRoot: UInt64?
}

/// Replication status of one peer, as `/v1/replication` shows it.
public struct PeerReplicationStatus: Sendable, Equatable {
    public var peer: String
    public var address: String
    /// Local revision up to which this node's own writes are acknowledged by the peer.
    public var ackedRevision: Int64
    /// This node's own writes not yet acknowledged by the peer.
    public var unacked: Int
    /// Milliseconds between the newest own write and the newest one the peer acknowledged (0: caught up).
    public var behindMillis: Int64
    /// Last acknowledgement, Unix ms.
    public var lastAckAt: Int64?
    public var bytesSent: Int
    public var lastError: String?
    public var lastComparison: PeerComparison?
    /// The root digest the peer last announced.
    public var announcedRoot: UInt64?
}

/// Replicates the store across the cluster (DESIGN decision 4):
/// - **push**: every write this node makes is shipped at once to every live peer, in order, batched per peer
///   (one request in flight per peer carries everything written meanwhile); peers apply it durably and ack;
/// - **anti-entropy**: every few seconds the digest is compared with a random live peer, differing buckets
///   are listed, and each side gets the newer versions it lacks — this repairs anything push missed
///   (a peer that was down, partitioned, restarted or wiped);
/// - **write concern**: `awaitReplicas` waits until K agents hold a write.
public final class Replicator: Sendable {
    public let store: ConfigStore
    public let settings: ReplicationSettings
    private let membership: any ReplicationMembership
    private let transport: any ReplicationTransport
    private let logger: Logger
    private let state = Mutex(State())
    /// The store's revision and the time when this replicator was made (the agent's start).
    private let startRevision: Int64
    private let startedAt = ContinuousClock.now
    /// Peers found this soon after the start are pushed every local write since the start: a restarted agent
    /// writes its own records (alert state, registry) before gossip has found anyone, and those would otherwise wait
    /// for anti-entropy. A peer found later catches up through anti-entropy, as a new member does.
    static let startupPushWindow = Duration.seconds(60)

    private struct PeerState {
        var peer: ReplicationPeer
        var ackedRevision: Int64
        var ackedStamp: Stamp?
        var lastAckAt: Int64?
        var bytesSent = 0
        var lastError: String?
        var comparison: PeerComparison?
        var divergentSince: Int64?
        var task: Task<Void, Never>?
    }

    private struct Waiter {
        var revision: Int64
        var required: Int
        var continuation: CheckedContinuation<Int, Never>
    }

    private struct State {
        var peers: [String: PeerState] = [:]
        var waiters: [UInt64: Waiter] = [:]
        var nextWaiter: UInt64 = 0
        var resyncing = false
        var lastSyncAt: Int64 = 0
        var repairs = 0
        var conflicts = 0
        var bytesSent = 0
        var bytesReceived = 0
        var malformed = 0
        var agreeSince: Int64?
        var announcedRoot: UInt64?
        var departed: [String: PeerComparison] = [:]
        /// Push cursors of peers that went away (dead, left, partitioned): when one comes back, pushing resumes
        /// where it stopped, so it receives every write it missed — losers of concurrent writes included, which
        /// anti-entropy (current versions only) would never send, so conflicts are recorded on every agent.
        var departedCursors: [String: Int64] = [:]
    }

    public init(
        store: ConfigStore, settings: ReplicationSettings, membership: any ReplicationMembership, transport: any ReplicationTransport,
        logger: Logger
    ) {
        self.store = store
        self.settings = settings
        self.membership = membership
        self.transport = transport
        self.logger = logger
        self.startRevision = store.feed.revision
    }

    private var now: Int64 { self.store.settings._wallMillis() }

    // MARK: - Running

    /// Runs push and anti-entropy until cancelled.
    public func run() async {
        await self.prepare()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.membershipLoop() }
            group.addTask { await self.antiEntropyLoop() }
            await group.waitForAll()
        }
        let tasks = self.state.withLock { state in
            defer {
                for name in state.peers.keys { state.peers[name]?.task = nil }
            }
            return state.peers.values.compactMap(\.task)
        }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
        self.failAllWaiters()
    }

    /// Decides whether this node must resync fully: it was away longer than the tombstone horizon, so peers
    /// may have forgotten deletes it still holds as live keys.
    public func prepare() async {
        let lastSync = (try? await self.store.lastSyncAt()) ?? 0
        let horizon = self.store.settings.retention.tombstoneHorizon.wholeMilliseconds
        let empty = (try? await self.store.isEmpty()) ?? true
        let resync = lastSync > 0 && self.now - lastSync > horizon && !empty
        self.state.withLock {
            $0.resyncing = resync
            $0.lastSyncAt = lastSync
        }
        if resync {
            self.logger.warning(
                "this agent was away longer than the tombstone horizon; it will resync fully from a peer before serving its data to others",
                metadata: ["replication.last_sync_ms": "\(lastSync)"])
        }
    }

    /// True while a full resync is pending.
    public var resyncing: Bool { self.state.withLock { $0.resyncing } }

    private func membershipLoop() async {
        var lastAnnounce: Int64 = 0
        var lastRoot: UInt64 = 0
        var rootChangedAt: Int64 = 0
        while !Task.isCancelled {
            self.refreshPeers()
            // Announce the root digest through gossip (each announcement is a gossip broadcast to every member):
            // once it has been stable for a second — under a steady stream of writes the roots of different
            // agents are never equal at one instant, so announcing each change would only cost traffic — and
            // at least every 10 s while it keeps changing.
            let root = self.store.digest.root
            let now = self.now
            if root != lastRoot {
                lastRoot = root
                rootChangedAt = now
            }
            let announced = self.state.withLock { $0.announcedRoot }
            if announced != root, now - rootChangedAt >= 1000 || now - lastAnnounce >= 10_000 {
                self.membership.announce(root: root)
                self.state.withLock { $0.announcedRoot = root }
                lastAnnounce = now
            }
            self.updateAgreement(root: root)
            try? await Task.sleep(for: self.settings.membershipRefresh)
        }
    }

    /// Starts a push task for every new live peer and stops those of peers gone.
    func refreshPeers() {
        let live = self.membership.livePeers()
        let names = Set(live.map(\.name))
        let start = ContinuousClock.now - self.startedAt < Self.startupPushWindow ? self.startRevision : self.store.feed.revision
        var stopped: [Task<Void, Never>] = []
        self.state.withLock { state in
            for peer in live {
                if state.peers[peer.name] == nil {
                    let cursor = state.departedCursors.removeValue(forKey: peer.name) ?? start
                    var entry = PeerState(peer: peer, ackedRevision: cursor)
                    entry.comparison = state.departed.removeValue(forKey: peer.name)
                    state.peers[peer.name] = entry
                    state.peers[peer.name]?.task = Task { await self.pushLoop(peer.name, from: cursor) }
                } else {
                    state.peers[peer.name]?.peer = peer
                }
            }
            for (name, entry) in state.peers where !names.contains(name) {
                if let task = entry.task { stopped.append(task) }
                if let comparison = entry.comparison { state.departed[name] = comparison }
                state.departedCursors[name] = entry.ackedRevision
                state.peers[name] = nil
            }
        }
        for task in stopped { task.cancel() }
        if !stopped.isEmpty { self.checkWaiters() }
    }

    // MARK: - Push

    private func pushLoop(_ name: String, from start: Int64) async {
        var cursor = start
        var backoff = Duration.milliseconds(50)
        while !Task.isCancelled {
            // Wake for writes made here only: versions merged from peers are not this node's to push.
            if self.store.feed.localWriteRevision <= cursor {
                await self.store.feed.waitForLocalWrite(above: cursor)
                continue
            }
            guard let peer = self.state.withLock({ $0.peers[name]?.peer }) else { return }
            do {
                let (versions, scanned, request) = try await self.outgoing(after: cursor)
                if !versions.isEmpty {
                    let answer = try await self.transport.send(request, to: peer, timeout: self.settings.requestTimeout)
                    guard case .applied = try ReplicationMessage.decode(answer) else {
                        throw ReplicationWireError("the peer answered a push with something other than an acknowledgement")
                    }
                    self.state.withLock { state in
                        state.bytesSent += request.count
                        state.peers[name]?.bytesSent += request.count
                    }
                }
                cursor = scanned
                self.acknowledge(name, revision: scanned, stamp: versions.last?.stamp)
                if !versions.isEmpty { await self.noteContact() }
                backoff = .milliseconds(50)
            } catch {
                if Task.isCancelled { return }
                self.state.withLock { $0.peers[name]?.lastError = "\(error)" }
                self.logger.debug("push failed", metadata: ["replication.peer": "\(name)", "replication.error": "\(error)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(2))
            }
        }
    }

    /// The next push batch after `cursor`, encoded. Push loops mostly share a cursor (every peer keeps up), so
    /// the last batch read and encoded is kept and reused by the others instead of each reading and encoding it
    /// (a batch states exactly what was written in `(after, scannedTo]`, so it stays true whatever comes later).
    private func outgoing(after cursor: Int64) async throws -> (versions: [KVVersion], scannedTo: Int64, request: Data) {
        if let cached = self.lastBatch.withLock({ $0 }), cached.after == cursor {
            return (cached.versions, cached.scannedTo, cached.request)
        }
        let (versions, scanned) = try await self.store.localWrites(after: cursor, limit: self.settings.pushBatch)
        let request = versions.isEmpty ? Data() : ReplicationMessage.versions(versions).encoded()
        self.lastBatch.withLock { $0 = OutgoingBatch(after: cursor, scannedTo: scanned, versions: versions, request: request) }
        return (versions, scanned, request)
    }

    private struct OutgoingBatch {
        var after: Int64
        var scannedTo: Int64
        var versions: [KVVersion]
        var request: Data
    }

    private let lastBatch = Mutex<OutgoingBatch?>(nil)

    private func acknowledge(_ name: String, revision: Int64, stamp: Stamp?) {
        let now = self.now
        self.state.withLock { state in
            guard state.peers[name] != nil else { return }
            state.peers[name]!.ackedRevision = max(state.peers[name]!.ackedRevision, revision)
            if let stamp { state.peers[name]!.ackedStamp = stamp }
            state.peers[name]!.lastAckAt = now
            state.peers[name]!.lastError = nil
        }
        self.checkWaiters()
    }

    // MARK: - Write concern

    /// What waiting for a write concern found.
    public struct WriteConcernResult: Sendable, Equatable {
        /// Agents that hold the write, this one included.
        public var acknowledged: Int
        /// Agents that had to.
        public var required: Int
        public var satisfied: Bool { self.acknowledged >= self.required }
    }

    /// Waits until `replicas` agents (this one included; nil: every live member) hold the write that produced
    /// local `revision`, or `timeout` passes.
    public func awaitReplicas(_ replicas: Int?, revision: Int64, timeout: Duration? = nil) async -> WriteConcernResult {
        let live = self.state.withLock { $0.peers.count }
        let required = replicas ?? (live + 1)
        guard required > 1 else { return WriteConcernResult(acknowledged: 1, required: required) }
        let id = self.state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        let acknowledged = await withCheckedContinuation { (continuation: CheckedContinuation<Int, Never>) in
            let done = self.state.withLock { state -> Int? in
                let count = Self.holders(of: revision, in: state)
                if count >= required { return count }
                state.waiters[id] = Waiter(revision: revision, required: required, continuation: continuation)
                return nil
            }
            if let done { return continuation.resume(returning: done) }
            Task {
                try? await Task.sleep(for: timeout ?? self.settings.writeConcernTimeout)
                let expired = self.state.withLock { state -> (Waiter, Int)? in
                    state.waiters.removeValue(forKey: id).map { ($0, Self.holders(of: revision, in: state)) }
                }
                if let (waiter, count) = expired { waiter.continuation.resume(returning: count) }
            }
        }
        return WriteConcernResult(acknowledged: acknowledged, required: required)
    }

    private static func holders(of revision: Int64, in state: State) -> Int {
        1 + state.peers.values.filter { $0.ackedRevision >= revision }.count
    }

    private func checkWaiters() {
        let ready = self.state.withLock { state -> [(CheckedContinuation<Int, Never>, Int)] in
            var ready: [(CheckedContinuation<Int, Never>, Int)] = []
            for (id, waiter) in state.waiters {
                let count = Self.holders(of: waiter.revision, in: state)
                if count >= waiter.required {
                    ready.append((waiter.continuation, count))
                    state.waiters[id] = nil
                }
            }
            return ready
        }
        for (continuation, count) in ready { continuation.resume(returning: count) }
    }

    private func failAllWaiters() {
        let all = self.state.withLock { state -> [(CheckedContinuation<Int, Never>, Int)] in
            defer { state.waiters = [:] }
            return state.waiters.values.map { ($0.continuation, Self.holders(of: $0.revision, in: state)) }
        }
        for (continuation, count) in all { continuation.resume(returning: count) }
    }

    // MARK: - Serving peers

    /// Answers a replication request from a peer (the HTTP route and the simulator call this).
    public func handle(_ request: Data) async throws -> Data {
        let message: ReplicationMessage
        do {
            message = try ReplicationMessage.decode(request)
        } catch {
            self.state.withLock { $0.malformed += 1 }
            throw error
        }
        self.state.withLock { $0.bytesReceived += request.count }
        switch message {
        case .versions(let versions):
            let report = try await self.store.merge(versions)
            await self.noteContact()
            if report.conflicts > 0 { self.state.withLock { $0.conflicts += report.conflicts } }
            return ReplicationMessage.applied(report).encoded()
        case .digestRequest:
            return ReplicationMessage.digest(node: self.store.nodeName, resyncing: self.resyncing, digest: self.store.digest).encoded()
        case .keysInBuckets(let buckets):
            return ReplicationMessage.keyStamps(try await self.store.keyStamps(inBuckets: buckets)).encoded()
        case .fetch(let keys):
            return ReplicationMessage.versions(try await self.store.currentVersions(keys)).encoded()
        case .applied, .digest, .keyStamps:
            throw ReplicationWireError("a peer sent an answer where a request was expected")
        }
    }

    /// Records that this agent exchanged writes with a peer: it was part of the cluster up to now, so a later
    /// absence is measured from here (persisted at most once a second; `prepare()` reads it after a restart).
    private func noteContact() async {
        let now = self.now
        let due = self.state.withLock { state -> Bool in
            guard !state.resyncing, now - state.lastSyncAt >= 1000 else { return false }
            state.lastSyncAt = now
            return true
        }
        if due { try? await self.store.markSynced(at: now) }
    }

    // MARK: - Anti-entropy

    private func antiEntropyLoop() async {
        // Catch up as soon as there is a peer (a new, restarted or wiped agent), then every period.
        while !Task.isCancelled {
            let peers = self.state.withLock { Array($0.peers.values.map(\.peer)) }
            if let peer = peers.randomElement() {
                _ = await self.compare(with: peer, repair: true)
                let period = self.settings.antiEntropyPeriod(liveMembers: peers.count + 1)
                try? await Task.sleep(for: self.resyncing ? .milliseconds(500) : period)
            } else {
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Compares with every live peer (or the one named) now; repairs when asked.
    public func check(peer name: String? = nil, repair: Bool) async -> [PeerComparison] {
        self.refreshPeers()
        let peers = self.state.withLock { state in state.peers.values.map(\.peer).filter { name == nil || $0.name == name } }
        var results: [PeerComparison] = []
        for peer in peers.sorted(by: { $0.name < $1.name }) { results.append(await self.compare(with: peer, repair: repair)) }
        return results
    }

    /// One anti-entropy exchange with `peer`.
    func compare(with peer: ReplicationPeer, repair: Bool) async -> PeerComparison {
        var result = PeerComparison(peer: peer.name, at: self.now, matched: false)
        do {
            guard case .digest(_, let peerResyncing, let theirs) = try await self.request(.digestRequest, to: peer) else {
                throw ReplicationWireError("the peer answered a digest request with something else")
            }
            result.peerRoot = theirs.root
            if peerResyncing {
                result.error = "the peer is resyncing after a long absence; not comparing with it until it is done"
                self.record(result)
                return result
            }
            let resyncing = self.resyncing
            let mine = self.store.digest
            let buckets = resyncing ? Array(0..<KeyspaceDigest.bucketCount) : mine.differingBuckets(from: theirs)
            result.matched = !resyncing && buckets.isEmpty
            let settledBefore = self.now - self.settings.settleWindow.wholeMilliseconds
            let horizon = self.now - self.store.settings.retention.tombstoneHorizon.wholeMilliseconds
            let lastSync = self.state.withLock { $0.lastSyncAt }
            // A few buckets at a time, so a large keyspace never makes one huge message.
            for chunk in stride(from: 0, to: buckets.count, by: 32).map({ Array(buckets[$0..<min($0 + 32, buckets.count)]) }) {
                guard case .keyStamps(let theirKeys) = try await self.request(.keysInBuckets(chunk), to: peer) else {
                    throw ReplicationWireError("the peer answered a key listing with something else")
                }
                let myKeys = try await self.store.keyStamps(inBuckets: chunk)
                let plan = RepairPlan(
                    mine: myKeys, theirs: theirKeys, horizon: horizon, settledBefore: settledBefore,
                    resyncBefore: resyncing ? lastSync : nil)
                result.missingHere += plan.missingHere
                result.missingThere += plan.missingThere
                result.different += plan.different
                result.settled += plan.settled
                guard repair else { continue }
                for page in plan.fetch.chunked(self.settings.repairPage) {
                    guard case .versions(let versions) = try await self.request(.fetch(page), to: peer) else {
                        throw ReplicationWireError("the peer answered a fetch with something else")
                    }
                    let report = try await self.store.merge(versions)
                    result.repaired += report.applied
                    if report.conflicts > 0 { self.state.withLock { $0.conflicts += report.conflicts } }
                }
                for page in plan.push.chunked(self.settings.repairPage) {
                    let versions = try await self.store.currentVersions(page)
                    guard case .applied(let report) = try await self.request(.versions(versions), to: peer) else {
                        throw ReplicationWireError("the peer answered a repair push with something else")
                    }
                    result.repaired += report.applied
                }
                result.repaired += try await self.store.forget(plan.forget).applied
            }
            if repair {
                let now = self.now
                try await self.store.markSynced(at: now)
                self.state.withLock { state in
                    state.lastSyncAt = now
                    state.repairs += result.repaired
                    if state.resyncing {
                        state.resyncing = false
                        self.logger.notice("full resync finished", metadata: ["replication.peer": "\(peer.name)"])
                    }
                }
            }
            if result.repaired > 0 {
                self.logger.info(
                    "anti-entropy repaired divergence",
                    metadata: [
                        "replication.peer": "\(peer.name)", "replication.repaired": "\(result.repaired)",
                        "replication.missing_here": "\(result.missingHere)", "replication.missing_there": "\(result.missingThere)",
                    ])
            }
        } catch {
            result.error = "\(error)"
        }
        self.record(result)
        return result
    }

    private func request(_ message: ReplicationMessage, to peer: ReplicationPeer) async throws -> ReplicationMessage {
        let body = message.encoded()
        let answer = try await self.transport.send(body, to: peer, timeout: self.settings.requestTimeout)
        self.state.withLock {
            $0.bytesSent += body.count
            $0.bytesReceived += answer.count
        }
        return try ReplicationMessage.decode(answer)
    }

    private func record(_ comparison: PeerComparison) {
        self.state.withLock { state in
            guard state.peers[comparison.peer] != nil else { return }
            state.peers[comparison.peer]!.comparison = comparison
            if comparison.error == nil {
                if comparison.settled > 0 {
                    if state.peers[comparison.peer]!.divergentSince == nil { state.peers[comparison.peer]!.divergentSince = comparison.at }
                } else {
                    state.peers[comparison.peer]!.divergentSince = nil
                }
            }
        }
    }

    // MARK: - Status

    private func updateAgreement(root: UInt64) {
        let now = self.now
        self.state.withLock { state in
            // No peer yet (alone, or just restarted and not yet connected) is not agreement.
            let agree = !state.peers.isEmpty && state.peers.values.allSatisfy { $0.peer.announcedRoot == root }
            if agree {
                if state.agreeSince == nil { state.agreeSince = now }
            } else {
                state.agreeSince = nil
            }
        }
    }

    /// The cluster-wide view: does every live agent announce the same root digest as this one, and since when.
    public struct ConsistencyStatus: Sendable, Equatable {
        public var node: String
        public var root: UInt64
        public var keys: Int
        public var resyncing: Bool
        public var allAgree: Bool
        public var agreeSince: Int64?
        public var peers: [PeerReplicationStatus]
        public var repairs: Int
        public var conflicts: Int
        public var malformedRequests: Int
        public var bytesSent: Int
        public var bytesReceived: Int
        public var lastSyncAt: Int64
        /// Peers whose divergence has outlasted `divergenceBound` (the agent reports unhealthy).
        public var divergentPeers: [String]
    }

    /// Peers whose divergence has outlasted `divergenceBound` (what `/health` needs: no query, only state).
    public func divergentPeers() -> [String] {
        let now = self.now
        let bound = self.settings.divergenceBound.wholeMilliseconds
        return self.state.withLock { state in
            state.peers.values.filter { entry in entry.divergentSince.map { now - $0 > bound } ?? false }.map(\.peer.name).sorted()
        }
    }

    public func status() async -> ConsistencyStatus {
        let root = self.store.digest.root
        // The newest write made here (its revision is known, so this reads one row).
        let newest = (try? await self.store.localWrites(after: max(0, self.store.feed.localWriteRevision - 1), limit: 1))?.versions.first?.stamp
        let snapshot = self.state.withLock { $0 }
        var peers: [PeerReplicationStatus] = []
        for entry in snapshot.peers.values.sorted(by: { $0.peer.name < $1.peer.name }) {
            let unacked = (try? await self.store.localWriteCount(after: entry.ackedRevision)) ?? 0
            var behind: Int64 = 0
            if unacked > 0, let newest { behind = max(0, newest.wall - (entry.ackedStamp?.wall ?? newest.wall)) }
            peers.append(
                PeerReplicationStatus(
                    peer: entry.peer.name, address: entry.peer.address, ackedRevision: entry.ackedRevision, unacked: unacked,
                    behindMillis: behind, lastAckAt: entry.lastAckAt, bytesSent: entry.bytesSent, lastError: entry.lastError,
                    lastComparison: entry.comparison, announcedRoot: entry.peer.announcedRoot))
        }
        let keys = (try? await self.store.counts().keys) ?? 0
        return ConsistencyStatus(
            node: self.store.nodeName, root: root, keys: keys, resyncing: snapshot.resyncing,
            allAgree: snapshot.agreeSince != nil && !snapshot.resyncing, agreeSince: snapshot.agreeSince, peers: peers,
            repairs: snapshot.repairs, conflicts: snapshot.conflicts, malformedRequests: snapshot.malformed, bytesSent: snapshot.bytesSent,
            bytesReceived: snapshot.bytesReceived, lastSyncAt: snapshot.lastSyncAt, divergentPeers: self.divergentPeers())
    }

    /// Which version of `key` each live agent holds (nil version: the agent does not hold the key; error: unreachable).
    public func versionsAcrossCluster(_ key: String) async -> [(node: String, version: KVVersion?, error: String?)] {
        var rows: [(node: String, version: KVVersion?, error: String?)] = []
        rows.append((self.store.nodeName, try? await self.store.current(key), nil))
        let peers = self.state.withLock { $0.peers.values.map(\.peer) }.sorted { $0.name < $1.name }
        await withTaskGroup(of: (String, KVVersion?, String?).self) { group in
            for peer in peers {
                group.addTask {
                    do {
                        guard case .versions(let versions) = try await self.request(.fetch([key]), to: peer) else {
                            return (peer.name, nil, "unexpected answer")
                        }
                        return (peer.name, versions.first, nil)
                    } catch {
                        return (peer.name, nil, "\(error)")
                    }
                }
            }
            for await row in group { rows.append(row) }
        }
        return [rows[0]] + rows.dropFirst().sorted { $0.node < $1.node }
    }
}

/// What one anti-entropy exchange must do for a set of buckets, from both sides' key stamps.
struct RepairPlan {
    var fetch: [String] = []
    var push: [String] = []
    var forget: [KeyStamp] = []
    var missingHere = 0
    var missingThere = 0
    var different = 0
    var settled = 0

    /// - horizon: tombstones older than this are forgotten, never copied.
    /// - settledBefore: differences whose newer stamp is older than this count as settled divergence.
    /// - resyncBefore: for a node resyncing after a long absence, live keys the peer lacks and that are older
    ///   than this (its last sync) were deleted and forgotten meanwhile: drop them instead of pushing them.
    init(mine: [KeyStamp], theirs: [KeyStamp], horizon: Int64, settledBefore: Int64, resyncBefore: Int64?) {
        let theirsByKey = Dictionary(theirs.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        let mineByKey = Dictionary(mine.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        for entry in mine {
            guard let other = theirsByKey[entry.key] else {
                if entry.tombstone && entry.stamp.wall < horizon {
                    self.forget.append(entry)
                } else if let cutoff = resyncBefore, entry.stamp.wall < cutoff {
                    self.forget.append(entry)
                } else {
                    self.missingThere += 1
                    self.push.append(entry.key)
                    if entry.stamp.wall < settledBefore { self.settled += 1 }
                }
                continue
            }
            guard other.stamp != entry.stamp else { continue }
            self.different += 1
            let newer = max(other.stamp, entry.stamp)
            if newer.wall < settledBefore { self.settled += 1 }
            if other.stamp > entry.stamp { self.fetch.append(entry.key) } else { self.push.append(entry.key) }
        }
        for entry in theirs where mineByKey[entry.key] == nil {
            if entry.tombstone && entry.stamp.wall < horizon { continue }
            self.missingHere += 1
            self.fetch.append(entry.key)
            if entry.stamp.wall < settledBefore { self.settled += 1 }
        }
    }
}

extension Array {
    func chunked(_ size: Int) -> [[Element]] {
        stride(from: 0, to: self.count, by: Swift.max(1, size)).map { Array(self[$0..<Swift.min($0 + size, self.count)]) }
    }
}
