#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

import Common

// MARK: - Wall time

/// A point in wall-clock time: milliseconds since the Unix epoch (1970-01-01T00:00:00Z).
///
/// The alert engine keeps time in wall-clock milliseconds rather than `ContinuousClock.Instant` because its state is
/// persisted and reloaded: a pending timer saved before a restart must still mean the same moment afterwards, and
/// notifications carry absolute `startsAt`/`endsAt` times. The engine never reads a clock; the caller passes `now`
/// (the agent converts `Date()`; tests add durations to a fixed origin).
public struct WallTime: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// Milliseconds since the Unix epoch.
    public var millisecondsSinceEpoch: Int64

    /// Creates the instant `millisecondsSinceEpoch` milliseconds after the Unix epoch.
    public init(millisecondsSinceEpoch: Int64) {
        self.millisecondsSinceEpoch = millisecondsSinceEpoch
    }

    /// Orders instants in time.
    public static func < (lhs: WallTime, rhs: WallTime) -> Bool {
        lhs.millisecondsSinceEpoch < rhs.millisecondsSinceEpoch
    }

    /// The instant `duration` later (truncated to whole milliseconds).
    public static func + (lhs: WallTime, rhs: Duration) -> WallTime {
        WallTime(millisecondsSinceEpoch: lhs.millisecondsSinceEpoch &+ rhs.wholeMilliseconds)
    }

    /// The instant `duration` earlier (truncated to whole milliseconds).
    public static func - (lhs: WallTime, rhs: Duration) -> WallTime {
        WallTime(millisecondsSinceEpoch: lhs.millisecondsSinceEpoch &- rhs.wholeMilliseconds)
    }

    /// The time from this instant to `other` (negative when `other` is earlier).
    public func duration(to other: WallTime) -> Duration {
        .milliseconds(other.millisecondsSinceEpoch &- self.millisecondsSinceEpoch)
    }

    /// The system's wall clock now (only the agent's wiring reads it; the engine is given `now`).
    public static var now: WallTime {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return WallTime(millisecondsSinceEpoch: Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000)
    }

    /// Milliseconds since the epoch, for logs.
    public var description: String { "\(self.millisecondsSinceEpoch)ms" }

    /// Decodes a bare integer of milliseconds.
    public init(from decoder: any Decoder) throws {
        self.millisecondsSinceEpoch = try decoder.singleValueContainer().decode(Int64.self)
    }

    /// Encodes a bare integer of milliseconds.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.millisecondsSinceEpoch)
    }
}
