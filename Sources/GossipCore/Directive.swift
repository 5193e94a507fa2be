extension SWIM {
    /// What an input asks the shell to do. Every `on…` input and operator call returns
    /// `[Directive]`; the shell carries them out in order.
    ///
    /// One enum serves every input (instead of one enum per input, as in swift-cluster-membership)
    /// because nearly every input can send, arm timers and report membership changes: a single
    /// exhaustive `switch` in the shell interprets them all, and tests still compare with `==`.
    public enum Directive: Hashable, Sendable {
        /// Send `bytes` (one encoded packet) as a UDP datagram to `to`.
        case send([UInt8], to: Address)
        /// Call ``Instance/onTimer(_:now:using:)`` with `timer` at `at` (or as soon after as possible).
        /// Timers are fire-and-forget: never cancelled or replaced; the instance ignores stale ones.
        case armTimer(Timer, at: Instant)
        /// A member's status or data changed in this instance's view.
        case membership(MembershipEvent)
        /// Open a TCP connection to `to`, write `request` (a length-framed stream message), read the
        /// reply and call ``Instance/onStreamPingResult(seq:reply:now:using:)`` with it, or with `nil`
        /// on any failure; report by `deadline` at the latest.
        case startStreamPing(seq: UInt32, to: Address, request: [UInt8], deadline: Instant)
        /// Exchange full state with `to` over TCP: write ``Instance/pushPullRequest(join:appPayload:)``,
        /// read the reply, call ``Instance/onPushPullResponse(_:from:now:using:)``, or
        /// ``Instance/onPushPullFailed(to:join:now:)`` on failure.
        case startPushPull(to: Address, join: Bool)
        /// Write `bytes` as the reply on the TCP stream whose request is being handled by
        /// ``Instance/onStreamRequest(_:from:appPayload:now:using:)``.
        case replyOnStream([UInt8])
        /// Hand an application broadcast to the application (once per `(origin, seq)`).
        case deliverUserBroadcast(origin: String, payload: [UInt8])
        /// Hand the application payload of a remote push-pull state to the application.
        case deliverAppPayload(from: String, payload: [UInt8])
        /// `member` answered over TCP but not over UDP: log that the network looks misconfigured.
        case networkMisconfigured(member: String, address: Address)
        /// An input was rejected (stale, malformed, conflicting): log at `debug`.
        case ignored(IgnoredInput)
    }

    /// Timers the instance arms and the shell fires back.
    public enum Timer: Hashable, Sendable {
        /// Start the next probe.
        case probeTick
        /// Send the next gossip round.
        case gossipTick
        /// Start the next periodic push-pull.
        case pushPullTick
        /// Probe `seq` got no direct ack in time: go indirect.
        case probeTimeout(seq: UInt32)
        /// Probe `seq`'s period ended: suspect the target unless something answered.
        case probeDeadline(seq: UInt32)
        /// As a helper, the target of relayed ping `seq` did not answer: send a nack.
        case relayTimeout(seq: UInt32)
        /// Check whether the suspicion about `member` has run out.
        case suspicion(member: String)
    }

    /// A change in this instance's view of the membership.
    public enum MembershipEvent: Hashable, Sendable {
        /// First seen, or back from `dead`/`left` with a higher incarnation.
        case joined(Member)
        /// Metadata or address changed while alive.
        case updated(Member)
        /// Now suspected.
        case suspected(Member)
        /// A suspicion was refuted: alive again.
        case recovered(Member)
        /// Declared dead.
        case failed(Member)
        /// Left gracefully.
        case left(Member)
        /// Forgotten after ``Settings/deadMemberRetention``.
        case reaped(Member)

        /// The member the event is about.
        public var member: Member {
            switch self {
            case .joined(let m), .updated(let m), .suspected(let m), .recovered(let m), .failed(let m),
                .left(let m), .reaped(let m):
                m
            }
        }
    }

    /// Why an input was ignored.
    public enum IgnoredInput: Hashable, Sendable {
        /// Bytes that did not decode (counted in ``Metrics/malformedPackets``).
        case malformed(Codec.DecodeError)
        /// A ping for another member name (a stale address mapping).
        case pingForAnotherMember(target: String)
        /// An ack or nack whose sequence number matches no outstanding probe.
        case unknownSequence(UInt32)
        /// An alive claim for `name` from an address other than the live member's.
        case addressConflict(name: String, address: Address)
        /// A member's metadata exceeded ``Settings/maxMetadataBytes``.
        case metadataTooLarge(name: String, size: Int)
        /// A stream message of a kind not expected there.
        case unexpectedStreamMessage
    }
}
