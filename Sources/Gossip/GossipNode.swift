import GossipCore
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The NIO shell around `SWIM.Instance`: it moves bytes and time, and interprets directives.
///
/// One loop owns the instance and consumes a single stream of inputs (datagrams, timers, TCP
/// results, operator calls), so the protocol core runs strictly sequentially with no locks. Timers are
/// scheduled on the event loop and come back as inputs; TCP exchanges run as child tasks of `run()`.
/// Queries (`members`, `metrics`) read a snapshot the loop refreshes after every input.
public final class GossipNode: Sendable {
    /// What the application plugs in.
    public struct Handlers: Sendable {
        /// An application broadcast from `origin` (delivered once per member).
        public var onUserBroadcast: @Sendable (_ origin: String, _ payload: [UInt8]) -> Void = { _, _ in }
        /// The application summary to send with each push-pull.
        public var appPayload: @Sendable () -> [UInt8] = { [] }
        /// The application summary received from `from` in a push-pull.
        public var onAppPayload: @Sendable (_ from: String, _ payload: [UInt8]) -> Void = { _, _ in }
        public init() {}
    }

    /// Transport counters, beside the protocol's own `SWIM.Metrics`.
    public struct ShellMetrics: Sendable, Hashable {
        public var datagramsIn = 0
        public var datagramsOut = 0
        public var bytesIn = 0
        public var bytesOut = 0
        public var decryptFailures = 0
        public var streamsIn = 0
        public var streamsOut = 0
        public var streamFailures = 0
    }

    /// A consistent view for queries.
    public struct Snapshot: Sendable {
        public var members: [SWIM.Member] = []
        public var metrics = SWIM.Metrics()
        public var shell = ShellMetrics()
        public var localHealth = 0
        public var queueDepth = 0
        public var address: SWIM.Address?
        public var running = false
        public var left = false
        public var keyFingerprints: [String] = []
    }

    enum Input: Sendable {
        case packet([UInt8], SWIM.Address)
        case timer(SWIM.Timer)
        case streamRequest([UInt8], SWIM.Address, CheckedContinuation<[UInt8]?, Never>)
        case pushPullResponse([UInt8], SWIM.Address)
        case pushPullFailed(SWIM.Address, join: Bool)
        case streamPingResult(seq: UInt32, reply: [UInt8]?)
        case join([SWIM.Address])
        case broadcast([UInt8], CheckedContinuation<Bool, Never>)
        case updateTags([String: String], CheckedContinuation<Bool, Never>)
        /// Sets (or, for nil, removes) some tags, keeping the others: applied in the loop, so concurrent
        /// callers never overwrite each other's tags with a stale copy.
        case mergeTags([String: String?], CheckedContinuation<Bool, Never>)
        /// The keyring changed: re-advertise its fingerprints in this member's tags.
        case refreshKeyTags
        case leave
        case stop
    }

    public let settings: GossipSettings
    let handlers: Handlers
    private let inputs: AsyncStream<Input>
    private let input: AsyncStream<Input>.Continuation
    private let shared = Mutex(Snapshot())
    private let keyringBox: Mutex<Keyring?>
    private let subscribers = Mutex<[Int: AsyncStream<SWIM.MembershipEvent>.Continuation]>([:])
    private let nextSubscriber = Atomic<Int>(0)
    private let shellCounters = Mutex(ShellMetrics())
    private let blockedAddresses = Mutex<Set<SWIM.Address>>([])

    public init(settings: GossipSettings, handlers: Handlers = Handlers()) throws(GossipError) {
        do {
            try settings.swim.validate()
        } catch {
            throw GossipError(code: .badSettings, message: "\(error)")
        }
        guard !settings.name.isEmpty, settings.name.utf8.count <= 255 else {
            throw GossipError(code: .badSettings, message: "member name must be 1-255 bytes")
        }
        let size = SWIM.Codec.metadataSize(settings.tags)
        guard size <= settings.swim.maxMetadataBytes else {
            throw GossipError(code: .badSettings, message: "tags take \(size) bytes; the limit is \(settings.swim.maxMetadataBytes)")
        }
        var settings = settings
        if let keyring = settings.keyring { Self.advertise(keyring, in: &settings.tags) }
        self.settings = settings
        self.handlers = handlers
        self.keyringBox = Mutex(settings.keyring)
        (self.inputs, self.input) = AsyncStream<Input>.makeStream()
    }

    // MARK: - Queries and operator calls

    /// The latest snapshot of membership and counters.
    public var snapshot: Snapshot { self.shared.withLock { $0 } }

    /// Every known member (this one included), sorted by name.
    public var members: [SWIM.Member] { self.snapshot.members }

    /// Membership events from now on.
    public func events() -> AsyncStream<SWIM.MembershipEvent> {
        let (stream, continuation) = AsyncStream<SWIM.MembershipEvent>.makeStream(bufferingPolicy: .bufferingNewest(4096))
        let id = self.nextSubscriber.wrappingAdd(1, ordering: .relaxed).oldValue
        self.subscribers.withLock { $0[id] = continuation }
        continuation.onTermination = { [weak self] _ in _ = self?.subscribers.withLock { $0.removeValue(forKey: id) } }
        return stream
    }

    /// Sends an application broadcast to every member. False if it is too large or the node stopped.
    public func broadcast(_ payload: [UInt8]) async -> Bool {
        await withCheckedContinuation { continuation in
            if case .terminated = self.input.yield(.broadcast(payload, continuation)) { continuation.resume(returning: false) }
        }
    }

    /// Replaces this member's tags (gossiped with a higher incarnation). False if too large or stopped.
    /// With encryption on, the `keys` and `primary-key` tags always advertise the keyring's fingerprints.
    public func updateTags(_ tags: [String: String]) async -> Bool {
        await withCheckedContinuation { continuation in
            if case .terminated = self.input.yield(.updateTags(tags, continuation)) { continuation.resume(returning: false) }
        }
    }

    /// Sets (or, for a nil value, removes) the given tags and keeps every other tag of this member.
    public func mergeTags(_ changes: [String: String?]) async -> Bool {
        await withCheckedContinuation { continuation in
            if case .terminated = self.input.yield(.mergeTags(changes, continuation)) { continuation.resume(returning: false) }
        }
    }

    /// Writes the keyring's fingerprints into the `keys` and `primary-key` tags (what `keyring list` counts).
    static func advertise(_ keyring: Keyring, in tags: inout [String: String]) {
        tags["keys"] = keyring.fingerprints.joined(separator: ",")
        tags["primary-key"] = keyring.primaryFingerprint
    }

    /// Leaves the cluster gracefully; `run()` returns once the leave has had `leaveFlush` to spread.
    public func leave() {
        self.input.yield(.leave)
    }

    /// Joins (again) through `seeds`.
    public func join(_ seeds: [SWIM.Address]) {
        self.input.yield(.join(seeds))
    }

    /// The current keyring (nil: encryption off).
    public var keyring: Keyring? { self.keyringBox.withLock { $0 } }

    /// Applies a keyring change here and broadcasts it to every member (Serf-style rotation).
    ///
    /// Gossip dissemination is probabilistic: in a small cluster the few retransmissions of one broadcast can
    /// all go to the same member. Keyring changes are idempotent, so the change is broadcast three times, a
    /// gossip round or two apart, which makes a member that misses all of them very unlikely.
    public func changeKeyring(_ change: KeyringChange) async throws(GossipError) {
        try self.applyKeyring(change)
        for attempt in 0..<3 {
            if attempt > 0 { try? await Task.sleep(for: self.settings.swim.gossipInterval * 2) }
            _ = await self.broadcast(change.encoded)
        }
    }

    /// True when the keyring already reflects `change` (a repeated broadcast).
    private func alreadyApplied(_ change: KeyringChange) -> Bool {
        guard let keyring = self.keyring, let key = try? Keyring.parse(change.key) else { return false }
        switch change.operation {
        case .install: return keyring.keys.contains(key)
        case .use: return keyring.keys.first == key
        case .remove: return !keyring.keys.contains(key)
        }
    }

    private func applyKeyring(_ change: KeyringChange) throws(GossipError) {
        try self.keyringBox.withLock { (keyring: inout Keyring?) throws(GossipError) in
            guard var current = keyring else {
                throw GossipError(code: .notEncrypted, message: "encryption is off: start the agents with --encrypt-key to use a keyring")
            }
            switch change.operation {
            case .install: try current.install(change.key)
            case .use: try current.use(change.key)
            case .remove: try current.remove(change.key)
            }
            keyring = current
        }
        self.yield(.refreshKeyTags)
    }

    // MARK: - Running

    /// Binds UDP and TCP, starts the protocol, joins the seeds and runs until `leave()` completes or the
    /// task is cancelled. Throws `GossipError.bind` if the address cannot be bound.
    public func run() async throws {
        do {
            try await self.runBound()
        } catch {
            await self.finishInputs()
            throw error
        }
        await self.finishInputs()
    }

    /// Ends the input stream and answers every operator call still waiting in it (nobody else will).
    private func finishInputs() async {
        self.shared.withLock { $0.running = false }
        self.input.finish()
        for await input in self.inputs { Self.abandon(input) }
        for continuation in self.subscribers.withLock({ $0.values }) { continuation.finish() }
    }

    /// Binds UDP and then TCP on the same port. With port 0 the UDP socket picks a free port, which TCP may
    /// find taken (an outgoing connection can hold the same number): then both are closed and another port is
    /// tried, up to 20 times.
    private static func bindSockets(_ settings: GossipSettings) async throws -> (
        NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>, NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
    ) {
        let group = MultiThreadedEventLoopGroup.singleton
        var attempt = 0
        while true {
            attempt += 1
            let udp: NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>
            do {
                udp = try await DatagramBootstrap(group: group)
                    .channelOption(.socketOption(.so_reuseaddr), value: 1)
                    .bind(host: settings.bindHost, port: settings.bindPort) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>(wrappingChannelSynchronously: channel)
                        }
                    }
            } catch {
                throw Self.bindError(settings, "UDP", error)
            }
            do {
                let tcp = try await ServerBootstrap(group: group)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .bind(host: settings.bindHost, port: udp.channel.localAddress?.port ?? settings.bindPort) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                        }
                    }
                return (udp, tcp)
            } catch {
                // The UDP channel is open: close it properly before trying again or giving up.
                try? await udp.executeThenClose { _, _ in }
                guard settings.bindPort == 0, attempt < 20 else { throw Self.bindError(settings, "TCP", error) }
            }
        }
    }

    private func runBound() async throws {
        let settings = self.settings
        let (udp, tcp) = try await Self.bindSockets(settings)
        let boundPort = UInt16(udp.channel.localAddress?.port ?? settings.bindPort)
        let address = SWIM.Address(host: settings.advertiseHost ?? settings.bindHost, port: boundPort)
        let eventLoop = udp.channel.eventLoop
        let base = NIODeadline.now()

        try await udp.executeThenClose { udpIn, udpOut in
            try await tcp.executeThenClose { tcpIn in
                try await withThrowingDiscardingTaskGroup { group in
                    group.addTask { await self.receiveDatagrams(udpIn) }
                    group.addTask { await self.acceptStreams(tcpIn) }
                    var loop = Loop(
                        node: self, instance: SWIM.Instance(settings: settings.swim, name: settings.name, address: address, metadata: settings.tags),
                        udpOut: udpOut, eventLoop: eventLoop, base: base)
                    self.shared.withLock { $0.address = address; $0.running = true }
                    settings.logger.info("gossip started", metadata: ["gossip.address": "\(address)", "gossip.member": "\(settings.name)"])
                    await loop.start(seeds: settings.seeds, group: &group)
                    for await input in self.inputs {
                        guard await loop.handle(input, group: &group) else { break }
                    }
                    self.shared.withLock { $0.running = false }
                    group.cancelAll()
                }
            }
        }
    }

    static func bindError(_ settings: GossipSettings, _ proto: String, _ error: any Error) -> GossipError {
        GossipError(
            code: .bind,
            message: "cannot bind gossip \(proto) to \(settings.bindHost):\(settings.bindPort) (\(error)); is another agent using it? Pick another --gossip address",
            cause: error)
    }

    /// Resumes the continuation an input carries, for inputs that arrive after the loop ended.
    static func abandon(_ input: Input) {
        switch input {
        case .streamRequest(_, _, let continuation): continuation.resume(returning: nil)
        case .broadcast(_, let continuation), .updateTags(_, let continuation), .mergeTags(_, let continuation):
            continuation.resume(returning: false)
        default: break
        }
    }

    /// Fault injection for tests of partitions: traffic to and from these addresses is dropped silently,
    /// as a network partition would (UDP both ways, TCP streams this node opens).
    public func setBlockedAddresses(_ addresses: Set<SWIM.Address>) {
        self.blockedAddresses.withLock { $0 = addresses }
    }

    func isBlocked(_ address: SWIM.Address) -> Bool {
        self.blockedAddresses.withLock { !$0.isEmpty && $0.contains(address) }
    }

    func yield(_ input: Input) {
        if case .terminated = self.input.yield(input) { Self.abandon(input) }
    }

    // MARK: - Transport loops

    private func receiveDatagrams(_ inbound: NIOAsyncChannelInboundStream<AddressedEnvelope<ByteBuffer>>) async {
        do {
            for try await envelope in inbound {
                guard let host = envelope.remoteAddress.ipAddress, let port = envelope.remoteAddress.port else { continue }
                var bytes = Array(envelope.data.readableBytesView)
                self.shellCounters.withLock {
                    $0.datagramsIn += 1
                    $0.bytesIn += bytes.count
                }
                if let keyring = self.keyringBox.withLock({ $0 }) {
                    do {
                        bytes = try keyring.open(bytes)
                    } catch {
                        self.shellCounters.withLock { $0.decryptFailures += 1 }
                        continue
                    }
                }
                let from = SWIM.Address(host: host, port: UInt16(port))
                if self.isBlocked(from) { continue }
                self.yield(.packet(bytes, from))
            }
        } catch {
            self.settings.logger.debug("gossip UDP receive ended", metadata: ["gossip.error": "\(error)"])
        }
    }

    private func acceptStreams(_ inbound: NIOAsyncChannelInboundStream<NIOAsyncChannel<ByteBuffer, ByteBuffer>>) async {
        await withDiscardingTaskGroup { connections in
            do {
                for try await connection in inbound {
                    connections.addTask { await self.serveStream(connection) }
                }
            } catch {
                self.settings.logger.debug("gossip TCP accept ended", metadata: ["gossip.error": "\(error)"])
            }
        }
    }

    private func serveStream(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        self.shellCounters.withLock { $0.streamsIn += 1 }
        let limit = self.settings.swim.maxStreamMessageSize + 64
        let remote = connection.channel.remoteAddress
        _ = try? await withDeadline(self.settings.streamTimeout) {
            try await connection.executeThenClose { inbound, outbound in
                guard var request = try await StreamFraming.readFrame(from: inbound, limit: limit),
                    let host = remote?.ipAddress, let port = remote?.port
                else { return }
                if let keyring = self.keyring {
                    do {
                        request = try keyring.open(request)
                    } catch {
                        self.shellCounters.withLock { $0.decryptFailures += 1 }
                        return
                    }
                }
                let reply = await withCheckedContinuation { continuation in
                    self.yield(.streamRequest(request, SWIM.Address(host: host, port: UInt16(port)), continuation))
                }
                if let reply { try await outbound.write(StreamFraming.frame(self.keyring?.seal(reply) ?? reply)) }
            }
        }
    }

    /// Writes `request` to `address` over TCP and reads one reply frame; nil on any failure or timeout.
    func exchange(_ request: [UInt8], with address: SWIM.Address, timeout: Duration) async -> [UInt8]? {
        if self.isBlocked(address) { return nil }
        self.shellCounters.withLock { $0.streamsOut += 1 }
        let limit = self.settings.swim.maxStreamMessageSize + 64
        let keyring = self.keyring
        let reply = try? await withDeadline(timeout) { () async throws -> [UInt8]? in
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.nanoseconds(timeout.nanoseconds))
                .connect(host: address.host, port: Int(address.port)) { channel in
                    channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
                }
            return try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(StreamFraming.frame(keyring?.seal(request) ?? request))
                guard let frame = try await StreamFraming.readFrame(from: inbound, limit: limit) else { return nil }
                guard let keyring else { return frame }
                return try keyring.open(frame)
            }
        }
        guard let bytes = reply else {
            self.shellCounters.withLock { $0.streamFailures += 1 }
            return nil
        }
        return bytes
    }

    // MARK: - Snapshot and events (called by the loop)

    func publish(_ instance: SWIM.Instance, membershipChanged: Bool) {
        let shell = self.shellCounters.withLock { $0 }
        let fingerprints = self.keyring?.fingerprints ?? []
        self.shared.withLock { snapshot in
            if membershipChanged || snapshot.members.isEmpty { snapshot.members = instance.members }
            snapshot.metrics = instance.metrics
            snapshot.shell = shell
            snapshot.localHealth = instance.localHealth
            snapshot.queueDepth = instance.broadcastQueueDepth
            snapshot.left = instance.hasLeft
            snapshot.keyFingerprints = fingerprints
        }
    }

    func emit(_ event: SWIM.MembershipEvent) {
        for continuation in self.subscribers.withLock({ Array($0.values) }) { continuation.yield(event) }
    }

    func countDatagramOut(_ bytes: Int) {
        self.shellCounters.withLock {
            $0.datagramsOut += 1
            $0.bytesOut += bytes
        }
    }

    /// Handles an application broadcast: keyring changes are applied here, the rest go to the application.
    func deliver(origin: String, payload: [UInt8]) {
        if let change = KeyringChange(decoding: payload) {
            // Changes arrive up to three times (see `changeKeyring`); applying one again changes nothing.
            guard !self.alreadyApplied(change) else { return }
            do {
                try self.applyKeyring(change)
                self.settings.logger.info("keyring changed by the cluster", metadata: ["gossip.member": "\(origin)", "gossip.keyring": "\(change.operation)"])
            } catch {
                self.settings.logger.warning("keyring change not applied", metadata: ["gossip.error": "\(error)"])
            }
            return
        }
        self.handlers.onUserBroadcast(origin, payload)
    }
}

/// Runs `body`, throwing `CancellationError` if it takes longer than `timeout`.
func withDeadline<T: Sendable>(_ timeout: Duration, _ body: @Sendable @escaping () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw CancellationError()
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else { throw CancellationError() }
        return first
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
