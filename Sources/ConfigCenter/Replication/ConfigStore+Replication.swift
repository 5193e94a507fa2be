import Foundation
import GRDB

/// What merging replicated versions (or forgetting keys) did.
public struct MergeReport: Sendable, Equatable {
    /// Versions stored (or keys forgotten).
    public var applied = 0
    /// Of those, versions that became the key's current version.
    public var current = 0
    /// Versions this node already had (recognised by stamp).
    public var duplicates = 0
    /// Concurrent writes detected: a version flagged as the loser.
    public var conflicts = 0
    /// Versions refused: invalid key, too large, or a tombstone past the horizon for a forgotten key.
    public var ignored = 0

    public init(applied: Int = 0, current: Int = 0, duplicates: Int = 0, conflicts: Int = 0, ignored: Int = 0) {
        self.applied = applied
        self.current = current
        self.duplicates = duplicates
        self.conflicts = conflicts
        self.ignored = ignored
    }
}

extension ConfigStore {
    /// Merges versions written on other agents (push or anti-entropy), last writer wins by stamp.
    /// Returns once they are committed (durable), so the sender may count this node as holding them.
    public func merge(_ versions: [KVVersion]) async throws -> MergeReport {
        guard !versions.isEmpty else { return MergeReport() }
        return try await self.submit(.merge(versions)).merge
    }

    /// Removes keys entirely, each only while its current stamp is the given one.
    public func forget(_ keys: [KeyStamp]) async throws -> MergeReport {
        guard !keys.isEmpty else { return MergeReport() }
        return try await self.submit(.forget(keys)).merge
    }

    /// The keyspace digest of current versions (live and tombstones), as of the last commit.
    public var digest: KeyspaceDigest { self.digestBox.value }

    /// The name stamps of this node carry.
    public var nodeName: String { self.settings.nodeName }

    /// Current stamps of every key in `buckets`, ordered by key.
    public func keyStamps(inBuckets buckets: [Int]) async throws -> [KeyStamp] {
        guard !buckets.isEmpty else { return [] }
        let list = buckets.map(String.init).joined(separator: ",")
        return try await self.dbWriter.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT c.key, h.stamp_wall, h.stamp_counter, h.stamp_node, h.tombstone
                    FROM kv_current c JOIN kv_history h ON h.revision = c.revision WHERE c.bucket IN (\(list)) ORDER BY c.key
                    """
            ).map { row in
                KeyStamp(key: row[0], stamp: Stamp(wall: row[1], counter: UInt32(truncatingIfNeeded: row[2] as Int64), node: row[3]), tombstone: row[4])
            }
        }
    }

    /// Current versions (live or tombstone) of `keys`; keys this node does not hold are left out.
    public func currentVersions(_ keys: [String]) async throws -> [KVVersion] {
        try await self.dbWriter.read { db in
            try keys.compactMap { try Self.current(db, key: $0) }
        }
    }

    /// Versions this node wrote itself (its own stamps) applied after `revision`, oldest first, at most
    /// `limit`; and the revision up to which the log was scanned (the next cursor).
    public func localWrites(after revision: Int64, limit: Int) async throws -> (versions: [KVVersion], scannedTo: Int64) {
        // Recent writes come from memory (the push loops of peers that keep up); older ones from history.
        if let recent = self.ownWrites.read(after: revision, limit: limit) { return recent }
        return try await self.localWritesFromHistory(after: revision, limit: limit)
    }

    /// `localWrites` read from SQLite.
    func localWritesFromHistory(after revision: Int64, limit: Int) async throws -> (versions: [KVVersion], scannedTo: Int64) {
        let node = self.settings.nodeName
        return try await self.dbWriter.read { db in
            let top = try Self.revision(db)
            let versions = try Row.fetchAll(
                db.cachedStatement(sql: "SELECT * FROM kv_history WHERE revision > ? AND stamp_node = ? ORDER BY revision LIMIT ?"),
                arguments: [revision, node, limit]
            ).map(KVVersion.init(row:))
            let scanned = versions.count == limit ? versions.last!.revision : top
            return (versions, scanned)
        }
    }

    /// How many of this node's own writes were applied after `revision` (a peer's replication backlog).
    public func localWriteCount(after revision: Int64) async throws -> Int {
        let node = self.settings.nodeName
        return try await self.dbWriter.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM kv_history WHERE revision > ? AND stamp_node = ?", arguments: [revision, node]) ?? 0
        }
    }

    /// Versions that lost a concurrent write, newest first, under `prefix`.
    public func conflicts(prefix: String, limit: Int) async throws -> [KVVersion] {
        try ConfigKey.validatePrefix(prefix)
        let (low, high) = Self.range(prefix)
        return try await self.dbWriter.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM kv_history WHERE conflict = 1 AND key >= ? AND key < ? ORDER BY revision DESC LIMIT ?",
                arguments: [low, high, limit]
            ).map(KVVersion.init(row:))
        }
    }

    /// Number of versions flagged as conflicts.
    public func conflictCount() async throws -> Int {
        try await self.dbWriter.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM kv_history WHERE conflict = 1") ?? 0 }
    }

    /// Unix milliseconds of the last successful anti-entropy exchange with a peer (0: never).
    public func lastSyncAt() async throws -> Int64 {
        try await self.dbWriter.read { db in try Int64.fetchOne(db, sql: "SELECT value FROM kv_meta WHERE name = 'last_sync_at'") ?? 0 }
    }

    /// Records a successful anti-entropy exchange (persisted: a restarted node knows how long it was away).
    public func markSynced(at millis: Int64) async throws {
        try await self.dbWriter.write { db in
            try db.execute(sql: "UPDATE kv_meta SET value = ? WHERE name = 'last_sync_at'", arguments: [millis])
        }
    }

    /// True when the store holds no key at all (a fresh or wiped agent).
    public func isEmpty() async throws -> Bool {
        try await self.dbWriter.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM kv_current") == 0 }
    }

    static func buildDigest(_ db: Database) throws -> KeyspaceDigest {
        var digest = KeyspaceDigest()
        let rows = try Row.fetchCursor(
            db, sql: "SELECT c.key, h.stamp_wall, h.stamp_counter, h.stamp_node FROM kv_current c JOIN kv_history h ON h.revision = c.revision")
        while let row = try rows.next() {
            digest.replace(
                key: row[0], old: nil, new: Stamp(wall: row[1], counter: UInt32(truncatingIfNeeded: row[2] as Int64), node: row[3]))
        }
        return digest
    }
}
