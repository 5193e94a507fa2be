import Foundation
import GRDB

/// One stored version of a key: a put, or a delete (tombstone).
public struct KVVersion: Sendable, Equatable {
    /// The key path.
    public var key: String
    /// The value (empty for a tombstone).
    public var value: Data
    /// Declared content type (`json`, `yaml`, `properties`, `text`, …), if any.
    public var contentType: String?
    /// Per-key version: 1, 2, 3… over the key's whole history; a delete is a version too.
    public var version: Int
    /// Node-local, gap-free revision at which this node applied the version.
    public var revision: Int64
    /// Hybrid-logical-clock stamp of the write.
    public var stamp: Stamp
    /// Stamp of the version this one replaced (nil for the first version).
    public var parent: Stamp?
    /// Value of the `X-Gossamer-Author` header, if given.
    public var author: String?
    /// Address of the client that wrote it.
    public var client: String?
    /// True for deletes.
    public var tombstone: Bool
    /// True when this version lost a concurrent-write race (kept in history only).
    public var conflict: Bool
    /// Unix milliseconds when this node applied it.
    public var appliedAt: Int64

    /// Decodes a `kv_history` row selected with `*` (columns by position: name lookups are slow in hot paths).
    init(row: Row) {
        self.revision = row[0]
        self.key = row[1]
        self.version = row[2]
        self.value = row[3] ?? Data()
        self.contentType = row[4]
        self.stamp = Stamp(wall: row[5], counter: UInt32(truncatingIfNeeded: row[6] as Int64), node: row[7])
        if let wall: Int64 = row[8], let node: String = row[10] {
            self.parent = Stamp(wall: wall, counter: UInt32(truncatingIfNeeded: row[9] as Int64? ?? 0), node: node)
        } else {
            self.parent = nil
        }
        self.author = row[11]
        self.client = row[12]
        self.tombstone = row[13]
        self.conflict = row[14]
        self.appliedAt = row[15]
    }

    public init(
        key: String, value: Data, contentType: String?, version: Int, revision: Int64, stamp: Stamp, parent: Stamp?,
        author: String?, client: String?, tombstone: Bool, conflict: Bool = false, appliedAt: Int64
    ) {
        self.key = key
        self.value = value
        self.contentType = contentType
        self.version = version
        self.revision = revision
        self.stamp = stamp
        self.parent = parent
        self.author = author
        self.client = client
        self.tombstone = tombstone
        self.conflict = conflict
        self.appliedAt = appliedAt
    }
}

/// Who made a write: recorded with every version.
public struct WriteOrigin: Sendable, Equatable {
    /// `X-Gossamer-Author`, or the CLI's `--author`.
    public var author: String?
    /// The client's address.
    public var client: String?
    public init(author: String? = nil, client: String? = nil) {
        self.author = author
        self.client = client
    }
}

/// One operation of a transaction (a single put or delete is a one-operation transaction).
public enum TxnOp: Sendable, Equatable {
    /// Write `value`. `cas`: 0 = only if the key does not exist; N = only if its current version is N.
    case put(key: String, value: Data, contentType: String?, cas: Int?)
    /// Delete the key (a tombstone version). `cas` as for put. Deleting a missing key changes nothing.
    case delete(key: String, cas: Int?)
    /// Delete every live key under the prefix.
    case deletePrefix(prefix: String)
    /// Fail the transaction unless the key's current version is `version` (0: must not exist).
    case check(key: String, version: Int)
    /// Read the key inside the transaction.
    case get(key: String)

    /// The key or prefix the operation is about.
    public var key: String {
        switch self {
        case .put(let key, _, _, _), .delete(let key, _), .check(let key, _), .get(let key): key
        case .deletePrefix(let prefix): prefix
        }
    }
}

/// The outcome of one transaction operation.
public enum TxnResult: Sendable, Equatable {
    /// The new version written by a put.
    case put(KVVersion)
    /// The tombstones written by a delete (empty when nothing was there).
    case deleted([KVVersion])
    /// A passed check.
    case checked
    /// The current version read by a get (nil: no such key).
    case got(KVVersion?)
}

/// A change applied to this node's store, as watchers see it.
public typealias Change = KVVersion
