import GossipCore
import Logging
import NIOCore
import NIOPosix

/// The single consumer of a node's inputs: owns the `SWIM.Instance` and carries out its directives.
struct Loop {
    let node: GossipNode
    var instance: SWIM.Instance
    var rng = SystemRandomNumberGenerator()
    let udpOut: NIOAsyncChannelOutboundWriter<AddressedEnvelope<ByteBuffer>>
    let eventLoop: any EventLoop
    let base: NIODeadline
    private var resolved: [SWIM.Address: SocketAddress] = [:]
    private var joinDeadline: NIODeadline?
    private var joinSeeds: [SWIM.Address] = []
    private var joinOutstanding = 0
    private var joined = false

    init(
        node: GossipNode, instance: SWIM.Instance, udpOut: NIOAsyncChannelOutboundWriter<AddressedEnvelope<ByteBuffer>>,
        eventLoop: any EventLoop, base: NIODeadline
    ) {
        self.node = node
        self.instance = instance
        self.udpOut = udpOut
        self.eventLoop = eventLoop
        self.base = base
    }

    var settings: GossipSettings { self.node.settings }
    var logger: Logger { self.node.settings.logger }

    /// Protocol time: nanoseconds since the node started, on the event loop's clock.
    var now: SWIM.Instant {
        SWIM.Instant(nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds) - Int64(self.base.uptimeNanoseconds))
    }

    mutating func start(seeds: [SWIM.Address], group: inout ThrowingDiscardingTaskGroup<any Error>) async {
        var directives = self.instance.start(now: self.now, using: &self.rng)
        if !seeds.isEmpty {
            self.joinSeeds = seeds
            self.joinDeadline = .now() + .nanoseconds(self.settings.joinRetryFor.nanoseconds)
            directives += self.beginJoin()
        }
        var reply: [UInt8]?
        let changed = await self.execute(directives, group: &group, reply: &reply)
        self.node.publish(self.instance, membershipChanged: true || changed)
    }

    private mutating func beginJoin() -> [SWIM.Directive] {
        let directives = self.instance.join(seeds: self.joinSeeds, now: self.now, using: &self.rng)
        self.joinOutstanding = directives.count
        return directives
    }

    /// Handles one input; false when the node should stop.
    mutating func handle(_ input: GossipNode.Input, group: inout ThrowingDiscardingTaskGroup<any Error>) async -> Bool {
        var directives: [SWIM.Directive] = []
        var reply: [UInt8]?
        var membershipChanged = false
        switch input {
        case .packet(let bytes, let from):
            directives = self.instance.onPacket(bytes, from: from, now: self.now, using: &self.rng)
        case .timer(let timer):
            directives = self.instance.onTimer(timer, now: self.now, using: &self.rng)
        case .streamRequest(let bytes, let from, let continuation):
            directives = self.instance.onStreamRequest(bytes, from: from, appPayload: self.node.handlers.appPayload(), now: self.now, using: &self.rng)
            membershipChanged = await self.execute(directives, group: &group, reply: &reply)
            continuation.resume(returning: reply)
            self.node.publish(self.instance, membershipChanged: membershipChanged)
            return true
        case .pushPullResponse(let bytes, let from):
            if self.joinOutstanding > 0 && self.joinSeeds.contains(from) {
                self.joinOutstanding -= 1
                if !self.joined {
                    self.joined = true
                    self.logger.info("joined the cluster", metadata: ["gossip.seed": "\(from)"])
                }
            }
            directives = self.instance.onPushPullResponse(bytes, from: from, now: self.now, using: &self.rng)
        case .pushPullFailed(let address, let join):
            directives = self.instance.onPushPullFailed(to: address, join: join, now: self.now)
            if join {
                self.joinOutstanding = max(0, self.joinOutstanding - 1)
                if self.joinOutstanding == 0 && !self.joined {
                    if let deadline = self.joinDeadline, NIODeadline.now() < deadline {
                        self.logger.info("no seed answered; retrying the join", metadata: ["gossip.seeds": "\(self.joinSeeds)"])
                        let node = self.node
                        let seeds = self.joinSeeds
                        self.eventLoop.scheduleTask(in: .seconds(1)) { node.yield(.join(seeds)) }
                    } else {
                        self.logger.warning("could not join: no seed answered", metadata: ["gossip.seeds": "\(self.joinSeeds)"])
                    }
                }
            }
        case .streamPingResult(let seq, let bytes):
            directives = self.instance.onStreamPingResult(seq: seq, reply: bytes, now: self.now, using: &self.rng)
        case .join(let seeds):
            self.joinSeeds = seeds
            directives = self.beginJoin()
        case .broadcast(let payload, let continuation):
            let outcome = self.instance.broadcast(payload, using: &self.rng)
            if case .queued = outcome { continuation.resume(returning: true) } else { continuation.resume(returning: false) }
        case .updateTags(let tags, let continuation):
            continuation.resume(returning: self.setTags(tags))
            membershipChanged = true
        case .mergeTags(let changes, let continuation):
            var tags = self.instance.myself.metadata
            for (name, value) in changes { tags[name] = value }
            continuation.resume(returning: self.setTags(tags))
            membershipChanged = true
        case .refreshKeyTags:
            if self.node.keyring != nil {
                _ = self.setTags(self.instance.myself.metadata)
                membershipChanged = true
            }
        case .leave:
            guard !self.instance.hasLeft else { return true }
            self.logger.info("leaving the cluster")
            directives = self.instance.leave(now: self.now, using: &self.rng)
            let node = self.node
            self.eventLoop.scheduleTask(in: .nanoseconds(self.settings.leaveFlush.nanoseconds)) { node.yield(.stop) }
            membershipChanged = true
        case .stop:
            self.node.publish(self.instance, membershipChanged: true)
            return false
        }
        membershipChanged = await self.execute(directives, group: &group, reply: &reply) || membershipChanged
        self.node.publish(self.instance, membershipChanged: membershipChanged)
        return true
    }

    /// Carries out directives in order; returns true if membership changed.
    private mutating func execute(
        _ directives: [SWIM.Directive], group: inout ThrowingDiscardingTaskGroup<any Error>, reply: inout [UInt8]?
    ) async -> Bool {
        var changed = false
        for directive in directives {
            switch directive {
            case .send(let bytes, let to):
                await self.send(bytes, to: to)
            case .armTimer(let timer, let at):
                let node = self.node
                let deadline = NIODeadline.uptimeNanoseconds(UInt64(max(0, Int64(self.base.uptimeNanoseconds) + at.nanoseconds)))
                self.eventLoop.scheduleTask(deadline: deadline) { node.yield(.timer(timer)) }
            case .membership(let event):
                changed = true
                self.log(event)
                self.node.emit(event)
            case .startStreamPing(let seq, let to, let request, let deadline):
                let node = self.node
                let timeout = max(Duration.milliseconds(10), deadline - self.now)
                group.addTask {
                    let answer = await node.exchange(request, with: to, timeout: timeout)
                    node.yield(.streamPingResult(seq: seq, reply: answer))
                }
            case .startPushPull(let to, let join):
                let request = self.instance.pushPullRequest(join: join, appPayload: self.node.handlers.appPayload())
                let node = self.node
                let timeout = self.settings.streamTimeout
                group.addTask {
                    if let answer = await node.exchange(request, with: to, timeout: timeout) {
                        node.yield(.pushPullResponse(answer, to))
                    } else {
                        node.yield(.pushPullFailed(to, join: join))
                    }
                }
            case .replyOnStream(let bytes):
                reply = bytes
            case .deliverUserBroadcast(let origin, let payload):
                self.node.deliver(origin: origin, payload: payload)
            case .deliverAppPayload(let from, let payload):
                self.node.handlers.onAppPayload(from, payload)
            case .networkMisconfigured(let member, let address):
                self.logger.warning(
                    "member answers over TCP but not UDP: check firewalls for UDP on the gossip port",
                    metadata: ["gossip.member": "\(member)", "gossip.address": "\(address)"])
            case .ignored(let reason):
                self.logger.debug("gossip input ignored", metadata: ["gossip.reason": "\(reason)"])
            }
        }
        return changed
    }

    /// Replaces this member's tags; with encryption on, the `keys` and `primary-key` tags always advertise the
    /// keyring's fingerprints. False when the tags are too large.
    private mutating func setTags(_ tags: [String: String]) -> Bool {
        var tags = tags
        if let keyring = self.node.keyring { GossipNode.advertise(keyring, in: &tags) }
        if case .updated = self.instance.updateMetadata(tags) { return true }
        return false
    }

    private mutating func send(_ bytes: [UInt8], to address: SWIM.Address) async {
        if self.node.isBlocked(address) { return }
        let socketAddress: SocketAddress
        if let known = self.resolved[address] {
            socketAddress = known
        } else {
            guard let made = try? SocketAddress.makeAddressResolvingHost(address.host, port: Int(address.port)) else {
                self.logger.debug("cannot resolve member address", metadata: ["gossip.address": "\(address)"])
                return
            }
            if self.resolved.count > 65_536 { self.resolved.removeAll() }
            self.resolved[address] = made
            socketAddress = made
        }
        let payload = self.node.keyring?.seal(bytes) ?? bytes
        self.node.countDatagramOut(payload.count)
        do {
            try await self.udpOut.write(AddressedEnvelope(remoteAddress: socketAddress, data: ByteBuffer(bytes: payload)))
        } catch {
            self.logger.debug("gossip send failed", metadata: ["gossip.error": "\(error)"])
        }
    }

    private func log(_ event: SWIM.MembershipEvent) {
        let metadata: Logger.Metadata = ["gossip.member": "\(event.member.name)", "gossip.address": "\(event.member.address)"]
        switch event {
        case .joined: self.logger.info("member joined", metadata: metadata)
        case .failed: self.logger.info("member failed", metadata: metadata)
        case .left: self.logger.info("member left", metadata: metadata)
        case .suspected: self.logger.debug("member suspected", metadata: metadata)
        case .recovered: self.logger.debug("member refuted suspicion", metadata: metadata)
        case .updated: self.logger.debug("member updated", metadata: metadata)
        case .reaped: self.logger.debug("member reaped", metadata: metadata)
        }
    }
}

/// A keyring change applied cluster-wide by broadcast (`gossamer keyring install|use|remove`).
public struct KeyringChange: Sendable, Equatable {
    public enum Operation: UInt8, Sendable, CustomStringConvertible {
        case install = 1
        case use = 2
        case remove = 3
        public var description: String {
            switch self {
            case .install: "install"
            case .use: "use"
            case .remove: "remove"
            }
        }
    }
    public var operation: Operation
    /// The key, base64.
    public var key: String

    public init(operation: Operation, key: String) {
        self.operation = operation
        self.key = key
    }

    static let marker: [UInt8] = Array("GKR".utf8)

    var encoded: [UInt8] { Self.marker + [self.operation.rawValue] + Array(self.key.utf8) }

    init?(decoding bytes: [UInt8]) {
        guard bytes.count > Self.marker.count + 1, bytes.starts(with: Self.marker),
            let operation = Operation(rawValue: bytes[Self.marker.count])
        else { return nil }
        self.operation = operation
        self.key = String(decoding: bytes[(Self.marker.count + 1)...], as: UTF8.self)
    }
}
