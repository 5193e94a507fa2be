import Foundation
import Synchronization

/// A hybrid-logical-clock timestamp: wall-clock milliseconds, a logical counter and the node that made it.
///
/// Stamps are totally ordered (wall, then counter, then node id), so every node picks the same
/// last writer (DESIGN decision 4). The text form is `<wall>.<counter>@<node>`, e.g. `1763750000123.0@node-a`;
/// it is what the HTTP API shows and what `?index=` takes.
public struct Stamp: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    /// Wall-clock milliseconds since the Unix epoch (never lower than any stamp this node has seen).
    public var wall: Int64
    /// Logical counter that orders stamps made within the same millisecond.
    public var counter: UInt32
    /// Name of the node that made the stamp.
    public var node: String

    public init(wall: Int64, counter: UInt32, node: String) {
        self.wall = wall
        self.counter = counter
        self.node = node
    }

    public static func < (lhs: Stamp, rhs: Stamp) -> Bool {
        if lhs.wall != rhs.wall { return lhs.wall < rhs.wall }
        if lhs.counter != rhs.counter { return lhs.counter < rhs.counter }
        return lhs.node < rhs.node
    }

    public var description: String { "\(self.wall).\(self.counter)@\(self.node)" }

    /// Parses the text form `<wall>.<counter>@<node>`; returns nil for anything else.
    public init?(_ text: some StringProtocol) {
        guard let at = text.firstIndex(of: "@") else { return nil }
        let clock = text[text.startIndex..<at]
        let node = text[text.index(after: at)...]
        guard !node.isEmpty, let dot = clock.firstIndex(of: ".") else { return nil }
        guard let wall = Int64(clock[clock.startIndex..<dot]), wall >= 0,
            let counter = UInt32(clock[clock.index(after: dot)...])
        else { return nil }
        self.init(wall: wall, counter: counter, node: String(node))
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let stamp = Stamp(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a stamp: \(text)"))
        }
        self = stamp
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.description)
    }
}

/// Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014).
///
/// Pure value: the caller passes the physical time in milliseconds, so tests drive it with any clock.
/// Stamps it issues are strictly increasing even when the wall clock stands still or steps back.
public struct HybridLogicalClock: Sendable {
    /// The node whose name goes into every stamp.
    public let node: String
    /// The highest stamp issued or observed.
    public private(set) var last: Stamp

    public init(node: String, last: Stamp? = nil) {
        self.node = node
        self.last = last ?? Stamp(wall: 0, counter: 0, node: node)
    }

    /// Issues a new stamp for a local event at physical time `physicalMillis`.
    public mutating func tick(physicalMillis: Int64) -> Stamp {
        if physicalMillis > self.last.wall {
            self.last = Stamp(wall: physicalMillis, counter: 0, node: self.node)
        } else if self.last.counter == UInt32.max {
            // The counter is exhausted within one millisecond: borrow the next millisecond.
            self.last = Stamp(wall: self.last.wall + 1, counter: 0, node: self.node)
        } else {
            self.last = Stamp(wall: self.last.wall, counter: self.last.counter + 1, node: self.node)
        }
        return self.last
    }

    /// Moves the clock past a stamp received from another node, so later local stamps sort after it.
    public mutating func observe(_ remote: Stamp, physicalMillis: Int64) {
        let wall = max(physicalMillis, self.last.wall, remote.wall)
        var counter: UInt32 = 0
        if wall == self.last.wall && wall == remote.wall {
            counter = max(self.last.counter, remote.counter)
        } else if wall == self.last.wall {
            counter = self.last.counter
        } else if wall == remote.wall {
            counter = remote.counter
        }
        self.last = Stamp(wall: wall, counter: counter, node: self.node)
    }
}

/// A hybrid logical clock shared by the tasks of one store (the lock is held only to issue a stamp).
final class StampIssuer: Sendable {
    private let clock: Mutex<HybridLogicalClock>

    init(_ clock: HybridLogicalClock) {
        self.clock = Mutex(clock)
    }

    func tick(physicalMillis: Int64) -> Stamp {
        self.clock.withLock { $0.tick(physicalMillis: physicalMillis) }
    }

    func observe(_ remote: Stamp, physicalMillis: Int64) {
        self.clock.withLock { $0.observe(remote, physicalMillis: physicalMillis) }
    }

    var last: Stamp { self.clock.withLock { $0.last } }
}
