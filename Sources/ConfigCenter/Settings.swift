import Foundation
import Logging

/// Everything the config store can be tuned with. `Agent` maps flags and the config file onto it.
public struct ConfigSettings: Sendable {
    /// This node's name; goes into every stamp and watch cursor. Default: `"local"`.
    public var nodeName: String = "local"

    /// Largest value accepted, in bytes. Default 512 KiB; raising it makes history and replication heavier.
    public var maxValueBytes: Int = 512 * 1024

    /// Most operations in one transaction. Default 64 (like Consul).
    public var maxTxnOps: Int = 64

    /// How hard an acknowledged write is pinned to disk.
    public enum Durability: String, Sendable {
        /// fsync the WAL on every commit (SQLite `synchronous=FULL`): survives `kill -9` and power loss. Default.
        case full
        /// fsync only at checkpoints (`synchronous=NORMAL`): survives `kill -9`, may lose the last commits on power loss.
        case normal
    }
    /// Default `.full`. Group commit makes one fsync serve every write queued behind it.
    public var durability: Durability = .full

    /// Bytes of current values kept in memory for reads (write-through). Default 64 MiB; 0 disables it.
    public var readCacheBytes: Int = 64 * 1024 * 1024

    /// Most writes folded into one transaction by group commit. Default 256.
    public var maxBatch: Int = 256

    /// History retention, applied by `compact(now:)`.
    public struct Retention: Sendable, Equatable {
        /// Keep at least this many versions of each key (the current one always stays). nil: no count rule.
        public var keepVersions: Int? = nil
        /// Keep versions younger than this. nil: no age rule. With both rules, a version goes only when both allow it.
        public var keepFor: Duration? = nil
        /// Tombstones of deleted keys are kept this long before the key is forgotten (default 24 h).
        /// Replication relies on it: a node away for longer must resync fully.
        public var tombstoneHorizon: Duration = .seconds(24 * 3600)
        public init() {}
    }
    /// Default: keep everything but tombstones older than 24 h.
    public var retention = Retention()

    /// Logger for store events (debug and below on the hot path).
    public var logger = Logger(label: "gossamer.config")

    /// Wall clock in Unix milliseconds. Test hook; production uses the system clock.
    public var _wallMillis: @Sendable () -> Int64 = { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }

    public init() {}
}
