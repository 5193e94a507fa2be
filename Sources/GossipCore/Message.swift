extension SWIM {
    /// One protocol message. A UDP ``Packet`` carries several (compound packing); a TCP stream
    /// carries one ``PushPull`` or one ``Ping``.
    public enum Message: Hashable, Sendable {
        /// Direct probe: "are you `target`?" Answered with an ack carrying the same `seq`.
        case ping(Ping)
        /// Ask a helper to ping `target` on our behalf and relay the ack (or a nack).
        case indirectPing(IndirectPing)
        /// Answer to a ping (direct, relayed, or over a stream).
        case ack(Ack)
        /// A helper could not reach the target of an indirect ping in time.
        case nack(Nack)
        /// `name` is alive at `incarnation` (join, refutation, metadata update).
        case alive(Alive)
        /// `from` suspects `name` at `incarnation`.
        case suspect(Suspect)
        /// `from` declares `name` dead at `incarnation`; `from == name` means it left.
        case dead(Dead)
        /// An application broadcast, delivered once to every member.
        case userBroadcast(UserBroadcast)
        /// A full-state exchange (TCP only).
        case pushPull(PushPull)

        /// Probe request. `target` lets a restarted process at a reused address ignore it.
        public struct Ping: Hashable, Sendable {
            /// The prober's sequence number, echoed by the ack.
            public var seq: UInt32
            /// The name of the member the prober wants.
            public var target: String
            /// Creates a ping.
            public init(seq: UInt32, target: String) {
                self.seq = seq
                self.target = target
            }
        }

        /// Indirect probe request sent to a helper.
        public struct IndirectPing: Hashable, Sendable {
            /// The requester's sequence number, echoed by the relayed ack or nack.
            public var seq: UInt32
            /// The member to ping.
            public var target: String
            /// Its address.
            public var targetAddress: Address
            /// Whether the helper should send a nack when the target does not answer.
            public var wantsNack: Bool
            /// Creates an indirect ping.
            public init(seq: UInt32, target: String, targetAddress: Address, wantsNack: Bool = true) {
                self.seq = seq
                self.target = target
                self.targetAddress = targetAddress
                self.wantsNack = wantsNack
            }
        }

        /// Probe answer.
        public struct Ack: Hashable, Sendable {
            /// The sequence number of the ping answered.
            public var seq: UInt32
            /// Creates an ack.
            public init(seq: UInt32) { self.seq = seq }
        }

        /// Negative answer from an indirect helper.
        public struct Nack: Hashable, Sendable {
            /// The requester's sequence number.
            public var seq: UInt32
            /// Creates a nack.
            public init(seq: UInt32) { self.seq = seq }
        }

        /// Liveness claim, with the member's address and tags.
        public struct Alive: Hashable, Sendable {
            /// Claimed incarnation.
            public var incarnation: Incarnation
            /// Member name.
            public var name: String
            /// Member address.
            public var address: Address
            /// Member tags.
            public var metadata: [String: String]
            /// Creates an alive claim.
            public init(incarnation: Incarnation, name: String, address: Address, metadata: [String: String] = [:]) {
                self.incarnation = incarnation
                self.name = name
                self.address = address
                self.metadata = metadata
            }
        }

        /// Suspicion claim.
        public struct Suspect: Hashable, Sendable {
            /// Incarnation the suspicion is about.
            public var incarnation: Incarnation
            /// Suspected member.
            public var name: String
            /// Accuser (independent accusers confirm a suspicion).
            public var from: String
            /// Creates a suspicion claim.
            public init(incarnation: Incarnation, name: String, from: String) {
                self.incarnation = incarnation
                self.name = name
                self.from = from
            }
        }

        /// Death (or, when `from == name`, graceful leave) claim.
        public struct Dead: Hashable, Sendable {
            /// Incarnation the claim is about.
            public var incarnation: Incarnation
            /// The member.
            public var name: String
            /// Who declared it; equal to `name` for a leave.
            public var from: String
            /// Creates a death claim.
            public init(incarnation: Incarnation, name: String, from: String) {
                self.incarnation = incarnation
                self.name = name
                self.from = from
            }
            /// `true` for a graceful leave.
            public var isLeave: Bool { self.from == self.name }
        }

        /// Application broadcast, identified by `(origin, seq)`.
        public struct UserBroadcast: Hashable, Sendable {
            /// The member that broadcast it.
            public var origin: String
            /// Origin-unique sequence number.
            public var seq: UInt64
            /// Opaque application bytes.
            public var payload: [UInt8]
            /// Creates a user broadcast.
            public init(origin: String, seq: UInt64, payload: [UInt8]) {
                self.origin = origin
                self.seq = seq
                self.payload = payload
            }
        }

        /// Full membership state plus an opaque application payload.
        public struct PushPull: Hashable, Sendable {
            /// The sender's name (its own entry is among `members`).
            public var from: String
            /// Whether the sender is joining (sent to seeds by `join`).
            public var join: Bool
            /// Every member the sender knows, itself included, with status.
            public var members: [Member]
            /// The application's state summary (e.g. the config store's digest).
            public var appPayload: [UInt8]
            /// Creates a push-pull state.
            public init(from: String, join: Bool, members: [Member], appPayload: [UInt8] = []) {
                self.from = from
                self.join = join
                self.members = members
                self.appPayload = appPayload
            }
        }
    }

    /// A decoded datagram: one or more messages.
    public struct Packet: Hashable, Sendable {
        /// The messages, in wire order.
        public var messages: [Message]
        /// Creates a packet.
        public init(_ messages: [Message]) { self.messages = messages }
    }
}
