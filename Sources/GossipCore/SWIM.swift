/// The SWIM + Lifeguard failure detector and membership protocol, as a pure state machine.
///
/// `SWIM` is a namespace. ``SWIM/Instance`` is the protocol core: a `Sendable` value that takes
/// inputs (a received datagram, a fired timer, an operator call), each with the current time and a
/// random number generator, and returns ``SWIM/Directive``s for a shell to carry out (send these
/// bytes, arm this timer, report this membership change). It never reads a clock, never draws
/// unseeded randomness and never touches a socket, so the same code runs under the NIO shell and
/// under the deterministic simulator in `TestSupport`.
///
/// Papers: SWIM (Das, Gupta, Motivala, 2002) and Lifeguard (Dadgar, Phillips, Currey, 2018,
/// arXiv:1707.00788). The wire format is ``SWIM/Codec``.
///
/// ### Status ordering and incarnations
/// A member's state is the pair (incarnation, status). Only the member itself raises its
/// incarnation, when it refutes a suspicion or a death claim about itself, or when it leaves.
/// For the same incarnation `alive < suspect < dead == left`; a higher incarnation always wins.
public enum SWIM {}

// MARK: - Address

extension SWIM {
    /// Where a member listens: a host string and a port (UDP for probes and gossip, TCP on the same
    /// port for push-pull and stream pings). Opaque to the core; the shell resolves it.
    public struct Address: Hashable, Sendable, Comparable, CustomStringConvertible {
        /// Host name or textual IP address. At most 255 UTF-8 bytes on the wire.
        public var host: String
        /// UDP/TCP port.
        public var port: UInt16

        /// Creates an address.
        public init(host: String, port: UInt16) {
            self.host = host
            self.port = port
        }

        /// `host:port`, with IPv6 literals bracketed.
        public var description: String {
            self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
        }

        /// Orders by host, then port (used only for deterministic output).
        public static func < (lhs: Address, rhs: Address) -> Bool {
            (lhs.host, lhs.port) < (rhs.host, rhs.port)
        }
    }
}

// MARK: - Instant

extension SWIM {
    /// An opaque monotonic instant: nanoseconds since an epoch chosen by the shell.
    ///
    /// The core only compares instants and adds durations to them. A shell over any `Clock` with
    /// `Duration` as its duration maps `clock.now` to `Instant(start.duration(to: clock.now))`,
    /// and maps a deadline back with `start.advanced(by: deadline.offset)`.
    public struct Instant: Hashable, Sendable, Comparable, CustomStringConvertible {
        /// Nanoseconds since the shell's epoch.
        public var nanoseconds: Int64

        /// The epoch itself.
        public static let zero = Instant(nanoseconds: 0)

        /// Creates an instant `nanoseconds` after the epoch.
        public init(nanoseconds: Int64) {
            self.nanoseconds = nanoseconds
        }

        /// Creates an instant `offset` after the epoch (saturating at the representable range).
        public init(_ offset: Duration) {
            self.nanoseconds = offset.nanosecondsSaturated
        }

        /// The time since the epoch.
        public var offset: Duration { .nanoseconds(self.nanoseconds) }

        /// Seconds since the epoch, for reports.
        public var seconds: Double { Double(self.nanoseconds) / 1e9 }

        public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

        /// `lhs` moved later by `rhs` (saturating).
        public static func + (lhs: Instant, rhs: Duration) -> Instant {
            Instant(nanoseconds: lhs.nanoseconds.addingSaturated(rhs.nanosecondsSaturated))
        }

        /// The duration from `rhs` to `lhs`.
        public static func - (lhs: Instant, rhs: Instant) -> Duration {
            .nanoseconds(lhs.nanoseconds.subtractingSaturated(rhs.nanoseconds))
        }

        public var description: String { "\(self.seconds)s" }
    }
}

extension Duration {
    /// The duration in whole nanoseconds, clamped to `Int64`.
    var nanosecondsSaturated: Int64 {
        let (seconds, attoseconds) = self.components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return scaled.addingSaturated(attoseconds / 1_000_000_000)
    }

    /// This duration multiplied by a small non-negative integer (saturating).
    func scaled(by factor: Int) -> Duration {
        let (value, overflow) = self.nanosecondsSaturated.multipliedReportingOverflow(by: Int64(factor))
        return .nanoseconds(overflow ? Int64.max : value)
    }
}

extension Int64 {
    func addingSaturated(_ other: Int64) -> Int64 {
        let (value, overflow) = self.addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : value
    }

    func subtractingSaturated(_ other: Int64) -> Int64 {
        let (value, overflow) = self.subtractingReportingOverflow(other)
        return overflow ? (other < 0 ? .max : .min) : value
    }
}

// MARK: - Members

extension SWIM {
    /// A member's incarnation number. Only the member itself raises it.
    public typealias Incarnation = UInt64

    /// Where a member stands in the protocol. Ordered for equal incarnations:
    /// `alive < suspect < dead`, and `left` ranks with `dead`.
    public enum MemberStatus: UInt8, Hashable, Sendable, CustomStringConvertible {
        /// Answering probes, directly or indirectly.
        case alive = 0
        /// A probe failed; the member has until the suspicion timeout to refute.
        case suspect = 1
        /// Declared failed. Kept for the dead-member retention, then reaped.
        case dead = 2
        /// Left gracefully. Kept for the dead-member retention, then reaped.
        case left = 3

        /// `alive` or `suspect`: counted in the cluster size, probed and gossiped to.
        public var isLive: Bool { self == .alive || self == .suspect }

        public var description: String {
            switch self {
            case .alive: "alive"
            case .suspect: "suspect"
            case .dead: "dead"
            case .left: "left"
            }
        }
    }

    /// One member as this instance sees it.
    public struct Member: Hashable, Sendable, CustomStringConvertible {
        /// The member's unique name (at most 255 UTF-8 bytes).
        public var name: String
        /// Where it listens.
        public var address: Address
        /// Its current status in this instance's view.
        public var status: MemberStatus
        /// The highest incarnation seen for it.
        public var incarnation: Incarnation
        /// Its tags, limited by ``SWIM/Settings/maxMetadataBytes`` once encoded.
        public var metadata: [String: String]

        /// Creates a member record.
        public init(
            name: String,
            address: Address,
            status: MemberStatus = .alive,
            incarnation: Incarnation = 0,
            metadata: [String: String] = [:]
        ) {
            self.name = name
            self.address = address
            self.status = status
            self.incarnation = incarnation
            self.metadata = metadata
        }

        public var description: String {
            "\(self.name)@\(self.address) \(self.status) #\(self.incarnation)"
        }
    }
}
