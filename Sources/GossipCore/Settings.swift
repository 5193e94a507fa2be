import Logging

extension SWIM {
    /// Every knob of the SWIM + Lifeguard core, with the `lan` (default), `wan` and `local` profiles.
    ///
    /// Numbers follow hashicorp/memberlist's `DefaultLANConfig` / `DefaultWANConfig` /
    /// `DefaultLocalConfig`, except that `lan` gossips faster, concludes a probe sooner, has the
    /// first members who hear of a suspicion check the suspect at once, and uses a shorter suspicion
    /// window. It probes exactly as often as memberlist (so an idle cluster costs the same traffic),
    /// yet every survivor marks a `kill -9`'d member dead within a third of Serf's time (Serf: 5.8 s
    /// at N=8, 7.7 s at N=32, 9.6 s at N=64), and the simulator shows no false positive at 10 %
    /// packet loss. See `lan` for the arithmetic.
    public struct Settings: Sendable {
        /// Creates the `lan` profile.
        public init() {}

        // MARK: - Probing

        /// Time between two probes of this member (one member probed per interval, round-robin).
        /// Scaled by the local health multiplier (Lifeguard LHA-Probe). Default 1 s (memberlist 1 s).
        /// Shorter detects faster; each interval costs one ping + ack per member, which is all an
        /// idle cluster sends (2 datagrams/s per member at 1 s).
        public var probeInterval: Duration = .seconds(1) {
            willSet { precondition(newValue > .zero, "probeInterval must be positive") }
        }

        /// How long to wait for a direct ack before asking `indirectChecks` helpers. Scaled by the
        /// local health multiplier. Default 150 ms (memberlist 500 ms). Must exceed the network RTT
        /// (well under 1 ms on a LAN); too short only costs extra indirect probes.
        public var probeTimeout: Duration = .milliseconds(150) {
            willSet { precondition(newValue > .zero, "probeTimeout must be positive") }
        }

        /// How long a probe waits in all for an ack (direct, relayed by a helper, or over TCP)
        /// before the target is suspected. Scaled by the local health multiplier. Default 450 ms
        /// (memberlist waits the whole probe interval). Must lie between `probeTimeout` and
        /// `probeInterval`; helpers answer within about two `probeTimeout`s, so three leaves room
        /// for their nacks. Shorter suspects sooner; it does not change how often anyone probes.
        public var probeWindow: Duration = .milliseconds(450) {
            willSet { precondition(newValue > .zero, "probeWindow must be positive") }
        }

        /// Helpers asked to ping a member that missed its direct ack. Default 3 (memberlist 3).
        /// More helpers tolerate more loss at the cost of 4 extra packets each.
        public var indirectChecks: Int = 3 {
            willSet { precondition(newValue >= 0, "indirectChecks must not be negative") }
        }

        /// Also try a TCP ("stream") ping to the target in parallel with indirect probes.
        /// A member reachable over TCP but not UDP is not suspected and the shell is told the network
        /// looks misconfigured. Default on, as in memberlist.
        public var streamPingFallback: Bool = true

        // MARK: - Lifeguard

        /// Upper bound of the local health multiplier (Lifeguard LHA-Probe): the score runs
        /// 0 ..< max and probe interval and timeout are multiplied by `score + 1`. Default 8, as
        /// memberlist. Higher keeps a starved member quieter for longer; 1 disables the feature.
        public var awarenessMaxMultiplier: Int = 8 {
            willSet { precondition(newValue >= 1, "awarenessMaxMultiplier must be at least 1") }
        }

        /// Suspicion minimum = `suspicionMult · max(1, log10 N) · probeInterval`. Default 0.5
        /// (memberlist 4 on LAN, with the same 1 s interval): 0.5 s at N ≤ 10, 0.9 s at N = 64. The
        /// minimum only applies once `suspicionExpectedConfirmations` other members have failed their
        /// own probes of the suspect (see `lan`); a suspect nobody else confirms gets the maximum.
        /// Lower detects faster; too low gives a suspected member no time to hear of it and refute.
        public var suspicionMult: Double = 0.5 {
            willSet { precondition(newValue > 0 && newValue.isFinite, "suspicionMult must be positive") }
        }

        /// Suspicion maximum = `suspicionMaxTimeoutMult · minimum`: the timeout while nobody else
        /// confirms the suspicion (Lifeguard LHA-Suspicion). Default 4 (memberlist 6). Higher
        /// protects better against one unhealthy accuser; lower detects faster in small clusters.
        public var suspicionMaxTimeoutMult: Int = 4 {
            willSet { precondition(newValue >= 1, "suspicionMaxTimeoutMult must be at least 1") }
        }

        /// Independent confirmations (`K`) after which the suspicion timeout reaches its minimum,
        /// capped at `N - 2`. Default 3 (memberlist `SuspicionMult - 2` = 2). Higher needs more
        /// accusers to reach the minimum.
        public var suspicionExpectedConfirmations: Int = 3 {
            willSet { precondition(newValue >= 0, "suspicionExpectedConfirmations must not be negative") }
        }

        /// Members that hear of a new suspicion and probe the suspect at once, out of turn, in
        /// expectation (each does with probability `min(1, this / (N − 2))`). Default 8. Their
        /// failed probes are the confirmations that bring the timeout to its minimum within one
        /// `probeWindow`, and their buddy pings let a live suspect refute at once. The others check
        /// at their next probe tick. Costs one probe each, only while a suspicion is fresh; 0 turns
        /// it off (memberlist behaviour).
        public var suspicionProbers: Int = 8 {
            willSet { precondition(newValue >= 0, "suspicionProbers must not be negative") }
        }

        // MARK: - Dissemination

        /// Time between two gossip rounds. Default 100 ms (memberlist 200 ms). A round that has
        /// nothing queued sends nothing, so a quiet cluster pays nothing for a short interval.
        public var gossipInterval: Duration = .milliseconds(100) {
            willSet { precondition(newValue > .zero, "gossipInterval must be positive") }
        }

        /// Random members sent a compound packet each gossip round. Default 3 (memberlist 3).
        public var gossipNodes: Int = 3 {
            willSet { precondition(newValue >= 0, "gossipNodes must not be negative") }
        }

        /// Keep gossiping to a member this long after it was declared dead, so it can hear of it
        /// and refute. Default 30 s (memberlist 30 s).
        public var gossipToTheDeadTime: Duration = .seconds(30)

        /// Each queued update is sent `retransmitMult · ⌈log10(N + 1)⌉` times. Default 4
        /// (memberlist 4). Higher tolerates more loss; costs bandwidth.
        public var retransmitMult: Int = 4 {
            willSet { precondition(newValue >= 1, "retransmitMult must be at least 1") }
        }

        /// Largest UDP datagram the codec produces, in bytes. Default 1,400 (fits a 1,500-byte
        /// Ethernet MTU with IP/UDP headers and the shell's encryption overhead). Larger packs more
        /// gossip per packet but risks IP fragmentation.
        public var maxPacketSize: Int = 1_400 {
            willSet { precondition(newValue >= 256, "maxPacketSize must be at least 256") }
        }

        /// The broadcast queue holds at most `max(minQueueDepth, 2 · N)` items; beyond that the most
        /// retransmitted are dropped (and counted). Default 1,024. Push-pull repairs what is dropped.
        public var minQueueDepth: Int = 1_024 {
            willSet { precondition(newValue >= 1, "minQueueDepth must be at least 1") }
        }

        /// Recently delivered user broadcasts remembered to deliver each exactly once. Default
        /// 4,096 ids. Must exceed the broadcasts a cluster sends during one broadcast's lifetime
        /// (a few gossip rounds).
        public var userBroadcastDedupeCapacity: Int = 4_096 {
            willSet { precondition(newValue >= 1, "userBroadcastDedupeCapacity must be at least 1") }
        }

        // MARK: - Push-pull and membership

        /// Time between full-state exchanges with one random member, scaled up by
        /// `⌈log2 N − log2 32⌉ + 1` above 32 members. Default 30 s (memberlist 30 s). Shorter
        /// repairs missed gossip and heals partitions sooner; each exchange sends the whole table.
        public var pushPullInterval: Duration = .seconds(30) {
            willSet { precondition(newValue > .zero, "pushPullInterval must be positive") }
        }

        /// How long dead and left members are kept (and carried by push-pull) before they are
        /// reaped. Default 1 h. Longer lets a partition of that length heal by reconnecting to dead
        /// members; each kept member costs ~100 bytes per member.
        public var deadMemberRetention: Duration = .seconds(3_600)

        /// Largest encoded metadata (tags) of one member, in bytes. Default 2,048.
        public var maxMetadataBytes: Int = 2_048 {
            willSet { precondition(newValue >= 0 && newValue <= 16_384, "maxMetadataBytes must be 0...16384") }
        }

        /// Largest push-pull or stream message accepted, in bytes. Default 32 MiB.
        public var maxStreamMessageSize: Int = 32 * 1_024 * 1_024 {
            willSet { precondition(newValue >= 1_024, "maxStreamMessageSize must be at least 1024") }
        }

        /// Append a CRC32 to every packet. Turn off when the shell encrypts (AES-GCM authenticates).
        /// Default on.
        public var checksum: Bool = true

        // MARK: - Logging

        /// Where the core logs (`trace` and `debug` only). Default: a logger that discards.
        public var logger: Logger = Logger(label: "gossamer.gossip", factory: { _ in SwiftLogNoOpLogHandler() })
    }
}

// MARK: - Profiles

extension SWIM.Settings {
    /// Local-network profile, the default.
    ///
    /// Idle cost: memberlist's probe rate (one probe a second: a ping and an ack, 2 datagrams/s
    /// per member); gossip ticks send nothing when nothing is queued.
    ///
    /// Detection budget (Lifeguard with `K = 3`): the N − 1 survivors together probe a crashed
    /// member about once a second, so its first probe comes within about 1 s. That probe fails
    /// after `probeWindow` (450 ms: direct ping, 3 helpers and the TCP fallback). The suspicion
    /// spreads by gossip in about 100 ms; about `suspicionProbers` (8) of the members who hear it
    /// probe the suspect at once, and their failed probes, one window later, are the confirmations
    /// that bring the timeout to its minimum, `0.5 · max(1, log10 N) · 1 s`: 0.5 s at N ≤ 10,
    /// 0.75 s at N = 32, 0.9 s at N = 64. Gossip at 100 ms to 3 members then spreads the death in
    /// `log3 N` rounds. That is about 2.3 s at N = 32 and 2.5 s at N = 64, against memberlist's
    /// 8–10 s, with the same probe traffic.
    ///
    /// Accuracy: a member that is alive acks the out-of-turn probes, so nobody confirms; its
    /// suspicion keeps the maximum (4× the minimum, 2 s at N ≤ 10) and the buddy pings carry the
    /// suspicion to it so it refutes within a round trip. The simulator finds no false positive at
    /// 10 % packet loss (see `SimulationReport`).
    public static var lan: Self { Self() }

    /// Wide-area profile: memberlist's `DefaultWANConfig` (probe every 5 s, 3 s timeout, suspicion
    /// multiplier 6, push-pull every 60 s, gossip every 500 ms to 4 members).
    public static var wan: Self {
        var settings = Self()
        settings.probeInterval = .seconds(5)
        settings.probeTimeout = .seconds(3)
        settings.probeWindow = .seconds(5)
        settings.suspicionMult = 6
        settings.suspicionMaxTimeoutMult = 6
        settings.suspicionExpectedConfirmations = 4
        settings.gossipInterval = .milliseconds(500)
        settings.gossipNodes = 4
        settings.gossipToTheDeadTime = .seconds(60)
        settings.pushPullInterval = .seconds(60)
        return settings
    }

    /// Loopback profile for many members on one host (tests, demos): memberlist's
    /// `DefaultLocalConfig` made fast (1 indirect check, retransmit multiplier 2, push-pull every
    /// 15 s, probe every 200 ms with a 100 ms timeout, suspicion multiplier 3 and maximum 3×).
    /// It sends 10 datagrams/s per idle member, five times `lan`.
    public static var local: Self {
        var settings = Self()
        settings.probeInterval = .milliseconds(200)
        settings.probeTimeout = .milliseconds(100)
        settings.probeWindow = .milliseconds(200)
        settings.suspicionMult = 3
        settings.suspicionMaxTimeoutMult = 3
        settings.indirectChecks = 1
        settings.retransmitMult = 2
        settings.suspicionExpectedConfirmations = 1
        settings.gossipInterval = .milliseconds(100)
        settings.gossipToTheDeadTime = .seconds(15)
        settings.pushPullInterval = .seconds(15)
        return settings
    }
}

// MARK: - Validation

extension SWIM {
    /// A settings value that makes no sense together with the others (operator input).
    public struct SettingsError: Error, Hashable, Sendable, CustomStringConvertible {
        /// Which setting is wrong and why.
        public var message: String
        /// Creates the error.
        public init(_ message: String) { self.message = message }
        public var description: String { self.message }
    }
}

extension SWIM.Settings {
    /// Checks cross-field rules that a single `willSet` cannot; call once at startup on operator input.
    public func validate() throws(SWIM.SettingsError) {
        if self.probeTimeout > self.probeWindow {
            throw SWIM.SettingsError("probeTimeout (\(self.probeTimeout)) must not exceed probeWindow (\(self.probeWindow))")
        }
        if self.probeWindow > self.probeInterval {
            throw SWIM.SettingsError("probeWindow (\(self.probeWindow)) must not exceed probeInterval (\(self.probeInterval))")
        }
        if self.gossipToTheDeadTime < .zero {
            throw SWIM.SettingsError("gossipToTheDeadTime must not be negative")
        }
        if self.deadMemberRetention < self.gossipToTheDeadTime {
            throw SWIM.SettingsError("deadMemberRetention must be at least gossipToTheDeadTime")
        }
        if self.maxStreamMessageSize < self.maxPacketSize {
            throw SWIM.SettingsError("maxStreamMessageSize must be at least maxPacketSize")
        }
    }
}
