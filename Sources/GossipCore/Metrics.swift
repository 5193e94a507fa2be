extension SWIM {
    /// Plain counters kept by the instance; the shell exports them (e.g. as swift-metrics
    /// counters `gossamer_gossip_*`). All monotonic except the gauges marked so.
    public struct Metrics: Hashable, Sendable {
        /// Probes started.
        public var probesSent = 0
        /// Probes answered (directly, indirectly or over TCP).
        public var probesSucceeded = 0
        /// Probes that ended without any answer.
        public var probesFailed = 0
        /// Indirect ping requests sent to helpers.
        public var indirectProbesSent = 0
        /// Indirect ping requests served as a helper.
        public var indirectProbesRelayed = 0
        /// Nacks sent as a helper.
        public var nacksSent = 0
        /// Nacks received from helpers.
        public var nacksReceived = 0
        /// TCP ping fallbacks started.
        public var streamPingsStarted = 0
        /// Probes saved by the TCP fallback after UDP failed (network misconfigured).
        public var streamPingRescues = 0
        /// Members this instance started to suspect.
        public var suspicionsRaised = 0
        /// Probes started out of turn to check a suspect just heard of (`suspicionProbers`).
        public var suspicionProbes = 0
        /// Suspected members that refuted (alive again).
        public var suspicionsRefuted = 0
        /// Times this instance refuted a claim about itself.
        public var selfRefutations = 0
        /// Members declared dead.
        public var deaths = 0
        /// Members that left.
        public var leaves = 0
        /// Members joined or rejoined.
        public var joins = 0
        /// Dead or left members forgotten.
        public var reaped = 0
        /// Packets and stream messages encoded.
        public var packetsEncoded = 0
        /// Messages inside encoded packets.
        public var messagesEncoded = 0
        /// Bytes encoded.
        public var bytesEncoded = 0
        /// Packets and stream messages decoded.
        public var packetsDecoded = 0
        /// Messages inside decoded packets.
        public var messagesDecoded = 0
        /// Bytes decoded.
        public var bytesDecoded = 0
        /// Inputs that failed to decode and were dropped.
        public var malformedPackets = 0
        /// Other rejected inputs (see ``IgnoredInput``).
        public var ignoredInputs = 0
        /// Gauge: items waiting in the broadcast queue.
        public var broadcastQueueDepth = 0
        /// Queue items dropped because the queue was full.
        public var broadcastQueueDrops = 0
        /// User broadcasts sent by this member.
        public var userBroadcastsSent = 0
        /// User broadcasts delivered to the application.
        public var userBroadcastsDelivered = 0
        /// User broadcasts received again and not re-delivered.
        public var userBroadcastDuplicates = 0
        /// Push-pull exchanges started (periodic, join and reconnect).
        public var pushPullsStarted = 0
        /// Remote push-pull states merged (as initiator or responder).
        public var pushPullsMerged = 0
        /// Push-pull exchanges the shell reported failed.
        public var pushPullsFailed = 0

        /// All zero.
        public init() {}
    }
}
