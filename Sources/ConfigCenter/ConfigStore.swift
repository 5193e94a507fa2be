import Foundation
import GRDB
import Logging
import Synchronization

/// The versioned key/value store of one agent, in SQLite through GRDB.
///
/// Shaped like GRDB's `AppDatabase`: it owns one `DatabaseWriter` (a WAL `DatabasePool` in production, an
/// in-memory `DatabaseQueue` in tests), migrates in `init`, and every write is one named transaction.
/// Concurrent writes are folded into shared transactions by group commit, so one fsync acknowledges many.
/// Reads never wait for writes (WAL snapshot isolation).
public final class ConfigStore: Sendable {
    /// The settings the store was opened with.
    public let settings: ConfigSettings
    /// Live feed of applied changes, for watches and blocking reads.
    public let feed: ChangeFeed

    let dbWriter: any DatabaseWriter
    let cache: CurrentCache
    let clock: StampIssuer
    /// The keyspace digest, kept current by the writer after every commit.
    let digestBox: DigestBox
    /// This node's recent writes, for replication's push loops.
    let ownWrites: OwnWrites
    private let committer: GroupCommit<WriteRequest, Result<WriteReceipt, ConfigStoreError>>

    /// One unit of work for the writer: client operations applied all-or-nothing, versions replicated from
    /// other agents, or keys to forget. All go through group commit, so the digest, the read cache and the
    /// feed see one serial order of changes.
    struct WriteRequest: Sendable {
        enum Kind: Sendable {
            /// Client operations. `isTransaction`: `/v1/txn`, where a failed compare reports every failure.
            case ops([TxnOp], isTransaction: Bool)
            /// Versions from another agent, merged last-writer-wins by stamp.
            case merge([KVVersion])
            /// Keys to remove entirely, each only if its current stamp is still the given one.
            case forget([KeyStamp])
        }

        var kind: Kind
        var origin: WriteOrigin
    }

    /// What a committed write produced.
    public struct WriteReceipt: Sendable, Equatable {
        /// One result per operation, in order.
        public var results: [TxnResult]
        /// The node revision after the write.
        public var revision: Int64
        /// What a merge or forget did (zero for client operations).
        public var merge = MergeReport()
    }

    // MARK: - Opening

    /// Opens (creating if needed) the store in `directory/gossamer.sqlite` with WAL and the configured durability.
    public convenience init(directory: URL, settings: ConfigSettings) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configuration = Configuration()
        let synchronous = settings.durability == .full ? "FULL" : "NORMAL"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
        }
        configuration.busyMode = .timeout(10)
        let pool = try DatabasePool(path: directory.appendingPathComponent("gossamer.sqlite").path, configuration: configuration)
        try self.init(dbWriter: pool, settings: settings)
    }

    /// An in-memory store (tests, previews): same SQL, same migrations, nothing on disk.
    public static func inMemory(settings: ConfigSettings = ConfigSettings()) throws -> ConfigStore {
        try ConfigStore(dbWriter: DatabaseQueue(), settings: settings)
    }

    /// Opens a store on any GRDB writer (tests pass `DatabaseQueue()` for an in-memory database).
    public init(dbWriter: any DatabaseWriter, settings: ConfigSettings) throws {
        self.settings = settings
        self.dbWriter = dbWriter
        self.feed = ChangeFeed()
        self.cache = CurrentCache(budget: settings.readCacheBytes)
        try Migrations.migrator.migrate(dbWriter)
        // Seed the clock with the highest stamp on disk, so stamps keep rising across restarts even if
        // the wall clock stepped back.
        let last = try dbWriter.read { db -> Stamp? in
            let row = try Row.fetchOne(
                db, sql: "SELECT stamp_wall, stamp_counter, stamp_node FROM kv_history ORDER BY stamp_wall DESC, stamp_counter DESC LIMIT 1")
            return row.map { Stamp(wall: $0[0], counter: UInt32(truncatingIfNeeded: $0[1] as Int64), node: $0[2]) }
        }
        let revision = try dbWriter.read { db in try Self.revision(db) }
        self.feed.setRevision(revision, localWrite: revision)
        var hlc = HybridLogicalClock(node: settings.nodeName)
        if let last { hlc.observe(last, physicalMillis: settings._wallMillis()) }
        self.clock = StampIssuer(hlc)
        self.digestBox = DigestBox(try dbWriter.read { db in try Self.buildDigest(db) })
        self.ownWrites = OwnWrites(node: settings.nodeName, revision: revision)
        let box = WriterBox(dbWriter: dbWriter, settings: settings)
        let clock = self.clock
        let feed = self.feed
        let cache = self.cache
        let digest = self.digestBox
        let own = self.ownWrites
        self.committer = GroupCommit(maxBatch: settings.maxBatch) { batch in
            await box.apply(batch, clock: clock, feed: feed, cache: cache, digest: digest, own: own)
        }
    }

    // MARK: - Reads

    /// The node-local revision of the last applied change.
    public func revision() async throws -> Int64 {
        try await self.read { db in try Self.revision(db) }
    }

    /// Revisions at or below this one may have been compacted away (watch cursors there get a snapshot).
    public func compactedRevision() async throws -> Int64 {
        try await self.read { db in try Int64.fetchOne(db, sql: "SELECT value FROM kv_meta WHERE name = 'compacted_revision'") ?? 0 }
    }

    /// The current version of `key`, including a tombstone if the key was deleted; nil if never written (or forgotten).
    public func current(_ key: String) async throws -> KVVersion? {
        try ConfigKey.validate(key)
        if let cached = self.cache.get(key) { return cached }
        let found = try await self.read { db in try Self.current(db, key: key) }
        if let found { self.cache.offer(found) }
        return found
    }

    /// The current version of `key` when the read cache holds it, without waiting: the HTTP fast path answers from
    /// this on the event loop and leaves everything else (a miss, an invalid key) to `current(_:)`.
    public func cachedCurrent(_ key: String) -> KVVersion? {
        self.cache.get(key)
    }

    /// The live value of `key`; nil when it does not exist or was deleted.
    public func get(_ key: String) async throws -> KVVersion? {
        guard let current = try await self.current(key), !current.tombstone else { return nil }
        return current
    }

    /// Version `version` of `key` from history. Throws `notFound` if it never existed or was compacted.
    public func get(_ key: String, version: Int) async throws -> KVVersion {
        try ConfigKey.validate(key)
        let found = try await self.read { db in
            try Row.fetchOne(
                db, sql: "SELECT * FROM kv_history WHERE key = ? AND version = ? ORDER BY conflict ASC LIMIT 1",
                arguments: [key, version]
            ).map(KVVersion.init(row:))
        }
        guard let found else { throw ConfigStoreError.notFound("version \(version) of '\(key)' does not exist (see its history)") }
        return found
    }

    /// Live keys under `prefix` (empty: every key), ordered by key, at most `limit`.
    public func list(prefix: String, limit: Int = .max) async throws -> [KVVersion] {
        try ConfigKey.validatePrefix(prefix)
        return try await self.read { db in try Self.live(db, prefix: prefix, limit: limit) }
    }

    /// History of `key`, newest first: at most `limit` versions older than `beforeVersion` (nil: from the newest).
    public func history(_ key: String, limit: Int, beforeVersion: Int? = nil) async throws -> [KVVersion] {
        try ConfigKey.validate(key)
        return try await self.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM kv_history WHERE key = ? AND version < ? ORDER BY version DESC, conflict ASC LIMIT ?",
                arguments: [key, beforeVersion ?? Int.max, limit]
            ).map(KVVersion.init(row:))
        }
    }

    /// Unified diff between two versions of `key` ("" when identical). Binary values give a one-line note.
    public func diff(_ key: String, from: Int, to: Int) async throws -> String {
        let old = try await self.get(key, version: from)
        let new = try await self.get(key, version: to)
        guard let oldText = String(data: old.value, encoding: .utf8), let newText = String(data: new.value, encoding: .utf8) else {
            return old.value == new.value ? "" : "Binary values of '\(key)' differ between versions \(from) and \(to)\n"
        }
        return TextDiff.unified(old: oldText, new: newText, oldLabel: "\(key)@\(from)", newLabel: "\(key)@\(to)")
    }

    /// Changes applied after `revision` that match `filter`, oldest first, at most `limit`.
    public func changes(after revision: Int64, filter: ChangeFeed.Filter, limit: Int) async throws -> [Change] {
        try await self.read { db in
            switch filter {
            case .key(let key):
                return try Row.fetchAll(
                    db, sql: "SELECT * FROM kv_history WHERE revision > ? AND key = ? AND stale = 0 ORDER BY revision LIMIT ?",
                    arguments: [revision, key, limit]
                ).map(KVVersion.init(row:))
            case .prefix(let prefix):
                let (low, high) = Self.range(prefix)
                return try Row.fetchAll(
                    db, sql: "SELECT * FROM kv_history WHERE revision > ? AND key >= ? AND key < ? AND stale = 0 ORDER BY revision LIMIT ?",
                    arguments: [revision, low, high, limit]
                ).map(KVVersion.init(row:))
            }
        }
    }

    /// The live values matching `filter` and the revision they were read at, in one consistent read.
    public func snapshot(_ filter: ChangeFeed.Filter) async throws -> (revision: Int64, values: [KVVersion]) {
        try await self.read { db in
            let revision = try Self.revision(db)
            switch filter {
            case .key(let key):
                let current = try Self.current(db, key: key)
                return (revision, current.flatMap { $0.tombstone ? nil : [$0] } ?? [])
            case .prefix(let prefix):
                return (revision, try Self.live(db, prefix: prefix, limit: .max))
            }
        }
    }

    /// Counts for status pages: live keys and stored versions.
    public func counts() async throws -> (keys: Int, versions: Int) {
        try await self.read { db in
            let keys =
                try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM kv_current c JOIN kv_history h ON h.revision = c.revision WHERE h.tombstone = 0") ?? 0
            let versions = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM kv_history") ?? 0
            return (keys, versions)
        }
    }

    // MARK: - Writes

    /// Writes `value` to `key`. `cas`: 0 = create only; N = only if the current version is N (throws `casMismatch`).
    @discardableResult
    public func put(_ key: String, value: Data, contentType: String? = nil, cas: Int? = nil, origin: WriteOrigin = .init()) async throws -> KVVersion {
        let receipt = try await self.submit([.put(key: key, value: value, contentType: contentType, cas: cas)], origin: origin, isTransaction: false)
        guard case .put(let version) = receipt.results.first else { preconditionFailure("put produced \(receipt.results)") }
        return version
    }

    /// `put` for callers that are not tasks (an event loop): `completion` gets the same result `put` would return
    /// or throw, on the thread that committed the batch (or at once, for a request refused before any
    /// transaction). No task is created for the write unless it leads its batch.
    public func put(
        _ key: String, value: Data, contentType: String? = nil, cas: Int? = nil, origin: WriteOrigin = .init(),
        completion: @escaping @Sendable (Result<KVVersion, ConfigStoreError>) -> Void
    ) {
        let ops = [TxnOp.put(key: key, value: value, contentType: contentType, cas: cas)]
        do {
            try self.validate(ops)
        } catch {
            return completion(.failure(error))
        }
        self.committer.submit(WriteRequest(kind: .ops(ops, isTransaction: false), origin: origin)) { result in
            completion(
                result.map { receipt in
                    guard case .put(let version) = receipt.results.first else { preconditionFailure("put produced \(receipt.results)") }
                    return version
                })
        }
    }

    /// Deletes `key` (writes a tombstone version). Returns the tombstone, or nil when the key did not exist.
    @discardableResult
    public func delete(_ key: String, cas: Int? = nil, origin: WriteOrigin = .init()) async throws -> KVVersion? {
        let receipt = try await self.submit([.delete(key: key, cas: cas)], origin: origin, isTransaction: false)
        guard case .deleted(let versions) = receipt.results.first else { preconditionFailure("delete produced \(receipt.results)") }
        return versions.first
    }

    /// Deletes every live key under `prefix`; returns the tombstones written.
    @discardableResult
    public func deletePrefix(_ prefix: String, origin: WriteOrigin = .init()) async throws -> [KVVersion] {
        let receipt = try await self.submit([.deletePrefix(prefix: prefix)], origin: origin, isTransaction: false)
        guard case .deleted(let versions) = receipt.results.first else { preconditionFailure("delete produced \(receipt.results)") }
        return versions
    }

    /// Applies `ops` all-or-nothing: if any compare (`check`, or a `cas`) fails, nothing is written and
    /// `txnFailed` lists every failure. At most `settings.maxTxnOps` operations; a key may be written once.
    public func transaction(_ ops: [TxnOp], origin: WriteOrigin = .init()) async throws -> WriteReceipt {
        try await self.submit(ops, origin: origin, isTransaction: true)
    }

    /// Writes a new version of `key` carrying the value and type of `version` (a tombstone version deletes).
    /// History is never rewritten.
    @discardableResult
    public func rollback(_ key: String, to version: Int, origin: WriteOrigin = .init()) async throws -> KVVersion? {
        let old = try await self.get(key, version: version)
        if old.tombstone { return try await self.delete(key, origin: origin) }
        return try await self.put(key, value: old.value, contentType: old.contentType, origin: origin)
    }

    private func submit(_ ops: [TxnOp], origin: WriteOrigin, isTransaction: Bool) async throws -> WriteReceipt {
        try self.validate(ops)
        return try await self.committer.submit(WriteRequest(kind: .ops(ops, isTransaction: isTransaction), origin: origin)).get()
    }

    /// Runs a merge or forget through the writer.
    func submit(_ kind: WriteRequest.Kind) async throws -> WriteReceipt {
        try await self.committer.submit(WriteRequest(kind: kind, origin: WriteOrigin())).get()
    }

    /// Checks everything that does not need the database, so a bad request never reaches a transaction.
    private func validate(_ ops: [TxnOp]) throws(ConfigStoreError) {
        guard !ops.isEmpty else { throw .badRequest("the transaction has no operations") }
        guard ops.count <= self.settings.maxTxnOps else {
            throw .badRequest("the transaction has \(ops.count) operations; the limit is \(self.settings.maxTxnOps)")
        }
        var written = Set<String>()
        for op in ops {
            switch op {
            case .put(let key, let value, let contentType, let cas):
                try ConfigKey.validate(key)
                guard value.count <= self.settings.maxValueBytes else {
                    throw ConfigStoreError(
                        code: .tooLarge, message: "value of '\(key)' is \(value.count) bytes; the limit is \(self.settings.maxValueBytes)")
                }
                if let cas, cas < 0 { throw .badRequest("cas must be 0 or a positive version, not \(cas)") }
                try ValueValidator.validate(value, contentType: contentType)
                guard written.insert(key).inserted else { throw .badRequest("key '\(key)' is written twice in one transaction") }
            case .delete(let key, let cas):
                try ConfigKey.validate(key)
                if let cas, cas < 0 { throw .badRequest("cas must be 0 or a positive version, not \(cas)") }
                guard written.insert(key).inserted else { throw .badRequest("key '\(key)' is written twice in one transaction") }
            case .deletePrefix(let prefix):
                try ConfigKey.validatePrefix(prefix)
            case .check(let key, let version):
                try ConfigKey.validate(key)
                if version < 0 { throw .badRequest("check version must be 0 or positive, not \(version)") }
            case .get(let key):
                try ConfigKey.validate(key)
            }
        }
    }

    // MARK: - Compaction

    /// What one compaction removed.
    public struct CompactionReport: Sendable, Equatable {
        /// Old versions of live keys removed by the retention rules.
        public var versionsRemoved: Int
        /// Deleted keys forgotten because their tombstone passed the horizon.
        public var keysForgotten: Int
    }

    /// Applies `settings.retention` (or `retention`): drops old non-current versions and expired tombstones.
    public func compact(retention: ConfigSettings.Retention? = nil) async throws -> CompactionReport {
        let rules = retention ?? self.settings.retention
        let now = self.settings._wallMillis()
        let (report, forgotten) = try await self.dbWriter.write { db -> (CompactionReport, [KeyStamp]) in
            var removed = 0
            var maxRemoved: Int64 = 0
            if rules.keepVersions != nil || rules.keepFor != nil {
                let keep = max(1, rules.keepVersions ?? 1)
                let cutoff = rules.keepFor.map { now - $0.wholeMilliseconds } ?? Int64.max
                let doomed = try Int64.fetchAll(
                    db,
                    sql: """
                        SELECT revision FROM (
                            SELECT revision, applied_at, ROW_NUMBER() OVER (PARTITION BY key ORDER BY version DESC) AS rn FROM kv_history
                        ) WHERE rn > ? AND applied_at < ? AND revision NOT IN (SELECT revision FROM kv_current)
                        """, arguments: [keep, cutoff])
                for revision in doomed {
                    try db.execute(sql: "DELETE FROM kv_history WHERE revision = ?", arguments: [revision])
                    maxRemoved = max(maxRemoved, revision)
                }
                removed = doomed.count
            }
            if maxRemoved > 0 {
                try db.execute(
                    sql: "UPDATE kv_meta SET value = MAX(value, ?) WHERE name = 'compacted_revision'", arguments: [maxRemoved])
            }
            let horizon = now - rules.tombstoneHorizon.wholeMilliseconds
            let expired = try Row.fetchAll(
                db,
                sql: """
                    SELECT c.key, h.stamp_wall, h.stamp_counter, h.stamp_node FROM kv_current c JOIN kv_history h ON h.revision = c.revision
                    WHERE h.tombstone = 1 AND h.stamp_wall < ?
                    """,
                arguments: [horizon]
            ).map { KeyStamp(key: $0[0], stamp: Stamp(wall: $0[1], counter: UInt32(truncatingIfNeeded: $0[2] as Int64), node: $0[3]), tombstone: true) }
            return (CompactionReport(versionsRemoved: removed, keysForgotten: 0), expired)
        }
        var result = report
        // Versions it removed may still be in the log of this node's writes: push loops read SQLite again.
        if result.versionsRemoved > 0 { self.ownWrites.invalidate() }
        if !forgotten.isEmpty {
            result.keysForgotten = try await self.submit(.forget(forgotten)).merge.applied
        }
        return result
    }

    // MARK: - SQL helpers

    private func read<T: Sendable>(_ body: @Sendable @escaping (Database) throws -> T) async throws -> T {
        do {
            return try await self.dbWriter.read(body)
        } catch let error as ConfigStoreError {
            throw error
        } catch {
            throw ConfigStoreError(code: .storage, message: "reading the store failed: \(error)", cause: error)
        }
    }

    static func revision(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT value FROM kv_meta WHERE name = 'revision'") ?? 0
    }

    static func current(_ db: Database, key: String) throws -> KVVersion? {
        try Row.fetchOne(
            db.cachedStatement(sql: "SELECT h.* FROM kv_current c JOIN kv_history h ON h.revision = c.revision WHERE c.key = ?"),
            arguments: [key]
        ).map(KVVersion.init(row:))
    }

    static func live(_ db: Database, prefix: String, limit: Int) throws -> [KVVersion] {
        let (low, high) = self.range(prefix)
        return try Row.fetchAll(
            db,
            sql: """
                SELECT h.* FROM kv_current c JOIN kv_history h ON h.revision = c.revision
                WHERE c.key >= ? AND c.key < ? AND h.tombstone = 0 ORDER BY c.key LIMIT ?
                """,
            arguments: [low, high, limit]
        ).map(KVVersion.init(row:))
    }

    /// `[low, high)` covering every key that starts with `prefix`.
    static func range(_ prefix: String) -> (String, String) {
        (prefix, ConfigKey.upperBound(ofPrefix: prefix) ?? "\u{10FFFF}\u{10FFFF}")
    }
}

/// What one write batch knows of current versions: its own writes first, then the read cache (which holds
/// every committed write, since batches run one at a time and update it before the next starts), then SQLite.
private struct BatchState {
    let db: Database
    let cache: CurrentCache
    /// Current versions written (or forgotten: nil) by this batch.
    private var latest: [String: KVVersion?] = [:]

    init(db: Database, cache: CurrentCache) {
        self.db = db
        self.cache = cache
    }

    func current(_ key: String) throws -> KVVersion? {
        if let mine = self.latest[key] { return mine }
        if let cached = self.cache.get(key) { return cached }
        return try ConfigStore.current(self.db, key: key)
    }

    /// Records a version that became current, and what the commit must tell the cache, digest and feed.
    mutating func written(_ version: KVVersion, replacing previous: KVVersion?, effects: inout BatchEffects) {
        self.latest[version.key] = .some(version)
        effects.changes.append(version)
        effects.digest.append((version.key, previous?.stamp, version.stamp))
    }

    mutating func forgot(_ key: String, stamp: Stamp, effects: inout BatchEffects) {
        self.latest[key] = .some(nil)
        effects.forgotten.append(key)
        effects.digest.append((key, stamp, nil))
    }
}

/// What a committed batch changed, applied to the in-memory views after the commit.
private struct BatchEffects {
    /// Versions that became current, in revision order (the cache and the feed).
    var changes: [Change] = []
    /// Keys removed entirely.
    var forgotten: [String] = []
    /// Digest replacements: key, old current stamp, new current stamp.
    var digest: [(String, Stamp?, Stamp?)] = []
    /// Revision of the last version written by a client of this node (not merged from a peer).
    var localWrite: Int64?
    /// A merge stored one of this node's own versions as history only (not in `changes`).
    var ownStale = false
}

/// The store's keyspace digest behind a lock.
final class DigestBox: Sendable {
    private let digest: Mutex<KeyspaceDigest>

    init(_ digest: KeyspaceDigest) {
        self.digest = Mutex(digest)
    }

    var value: KeyspaceDigest { self.digest.withLock { $0 } }

    fileprivate func apply(_ updates: [(String, Stamp?, Stamp?)]) {
        guard !updates.isEmpty else { return }
        self.digest.withLock { digest in
            for (key, old, new) in updates { digest.replace(key: key, old: old, new: new) }
        }
    }
}

/// Executes batches of write requests in one SQLite transaction. Kept apart from `ConfigStore` so the
/// group-commit closure captures only Sendable pieces.
private struct WriterBox: Sendable {
    let dbWriter: any DatabaseWriter
    let settings: ConfigSettings

    typealias Response = Result<ConfigStore.WriteReceipt, ConfigStoreError>

    func apply(
        _ batch: [ConfigStore.WriteRequest], clock: StampIssuer, feed: ChangeFeed, cache: CurrentCache, digest: DigestBox,
        own: OwnWrites
    ) async -> [Response] {
        let now = self.settings._wallMillis()
        do {
            let (responses, effects, revision) = try await self.dbWriter.write { db -> ([Response], BatchEffects, Int64) in
                var revision = try ConfigStore.revision(db)
                var responses: [Response] = []
                responses.reserveCapacity(batch.count)
                var effects = BatchEffects()
                var state = BatchState(db: db, cache: cache)
                for request in batch {
                    let startRevision = revision
                    do {
                        switch request.kind {
                        case .ops(let ops, let isTransaction):
                            let results = try self.applyOps(
                                ops, isTransaction: isTransaction, origin: request.origin, state: &state, now: now,
                                revision: &revision, clock: clock, effects: &effects)
                            if revision > startRevision { effects.localWrite = revision }
                            responses.append(.success(.init(results: results, revision: revision)))
                        case .merge(let versions):
                            let report = try self.merge(versions, state: &state, now: now, revision: &revision, clock: clock, effects: &effects)
                            responses.append(.success(.init(results: [], revision: revision, merge: report)))
                        case .forget(let keys):
                            let report = try self.forget(keys, state: &state, effects: &effects)
                            responses.append(.success(.init(results: [], revision: revision, merge: report)))
                        }
                    } catch let error as ConfigStoreError {
                        // Compares are checked before anything is written, so a failed request wrote nothing.
                        precondition(revision == startRevision, "a failed request advanced the revision")
                        responses.append(.failure(error))
                    }
                }
                try db.execute(sql: "UPDATE kv_meta SET value = ? WHERE name = 'revision'", arguments: [revision])
                return (responses, effects, revision)
            }
            // The cache first, so a watcher woken by the feed reads what it was told about.
            cache.apply(effects.changes)
            cache.remove(effects.forgotten)
            digest.apply(effects.digest)
            // Before the feed wakes the push loops, so they find these writes in memory.
            own.record(effects.changes, upTo: revision, invalidate: !effects.forgotten.isEmpty || effects.ownStale)
            feed.publish(effects.changes, revision: revision, localWrite: effects.localWrite)
            return responses
        } catch {
            self.settings.logger.error("write transaction failed", metadata: ["config.error": "\(error)"])
            let failure = ConfigStoreError(code: .storage, message: "the write was not applied: \(error)", cause: error)
            return Array(repeating: .failure(failure), count: batch.count)
        }
    }

    /// Merges versions from another agent (DESIGN decision 4): the highest stamp becomes current on every
    /// node; a version that arrives after a newer one is kept in history as `stale`; when two versions were
    /// written concurrently (neither descends from the other) the loser is flagged `conflict`.
    private func merge(
        _ versions: [KVVersion], state: inout BatchState, now: Int64, revision: inout Int64, clock: StampIssuer,
        effects: inout BatchEffects
    ) throws -> MergeReport {
        let db = state.db
        var report = MergeReport()
        let horizon = now - self.settings.retention.tombstoneHorizon.wholeMilliseconds
        for incoming in versions {
            guard (try? ConfigKey.validate(incoming.key)) != nil, incoming.value.count <= self.settings.maxValueBytes else {
                report.ignored += 1
                continue
            }
            let current = try state.current(incoming.key)
            // A stored version is never newer than the current one, so only an older (or equal) stamp can be a
            // duplicate: the common case, a new version, skips the lookup.
            if let current, incoming.stamp <= current.stamp, try Self.parent(db, key: incoming.key, of: incoming.stamp) != nil {
                report.duplicates += 1
                continue
            }
            clock.observe(incoming.stamp, physicalMillis: now)
            if let current, incoming.stamp < current.stamp {
                // Old news: an ancestor that arrived late, or the loser of a concurrent write.
                let ancestor = try Self.chain(db, key: incoming.key, from: current.stamp, contains: incoming.stamp)
                let conflict = ancestor == false
                try self.store(db, incoming, revision: &revision, now: now, stale: true, conflict: conflict, current: false)
                if incoming.stamp.node == self.settings.nodeName { effects.ownStale = true }
                report.applied += 1
                if conflict { report.conflicts += 1 }
                continue
            }
            if current == nil, incoming.tombstone, incoming.stamp.wall < horizon {
                // A tombstone past the horizon for a key this node already forgot: keep it forgotten.
                report.ignored += 1
                continue
            }
            var conflict = false
            if let current, incoming.parent != current.stamp {
                // `current` is overwritten cleanly only if it is an ancestor of the incoming version. When the
                // chain leaves local history undecided (versions in between not received yet), assume it is.
                let ancestor = try Self.chain(db, key: incoming.key, from: incoming.parent, contains: current.stamp)
                conflict = ancestor == false
            }
            let stored = try self.store(db, incoming, revision: &revision, now: now, stale: false, conflict: false, current: true)
            if conflict, let current {
                try db.execute(sql: "UPDATE kv_history SET conflict = 1 WHERE revision = ?", arguments: [current.revision])
                report.conflicts += 1
            }
            state.written(stored, replacing: current, effects: &effects)
            report.applied += 1
            report.current += 1
        }
        return report
    }

    /// Removes keys entirely (expired tombstones; keys a resyncing node must drop), each only if its current
    /// stamp is still the one given, so a newer write is never lost.
    private func forget(_ keys: [KeyStamp], state: inout BatchState, effects: inout BatchEffects) throws -> MergeReport {
        let db = state.db
        var report = MergeReport()
        var maxRemoved: Int64 = 0
        for entry in keys {
            guard let current = try state.current(entry.key), current.stamp == entry.stamp else { continue }
            if let top = try Int64.fetchOne(db, sql: "SELECT MAX(revision) FROM kv_history WHERE key = ?", arguments: [entry.key]) {
                maxRemoved = max(maxRemoved, top)
            }
            try db.execute(sql: "DELETE FROM kv_history WHERE key = ?", arguments: [entry.key])
            try db.execute(sql: "DELETE FROM kv_current WHERE key = ?", arguments: [entry.key])
            state.forgot(entry.key, stamp: current.stamp, effects: &effects)
            report.applied += 1
        }
        if maxRemoved > 0 {
            try db.execute(sql: "UPDATE kv_meta SET value = MAX(value, ?) WHERE name = 'compacted_revision'", arguments: [maxRemoved])
        }
        return report
    }

    /// The parent of the stored version `stamp` of `key`: nil when no such version is stored, `.some(nil)`
    /// when it is stored and has no parent.
    static func parent(_ db: Database, key: String, of stamp: Stamp) throws -> Stamp?? {
        let statement = try db.cachedStatement(
            sql: """
                SELECT parent_wall, parent_counter, parent_node FROM kv_history
                WHERE key = ? AND stamp_wall = ? AND stamp_counter = ? AND stamp_node = ?
                """)
        guard let row = try Row.fetchOne(statement, arguments: [key, stamp.wall, Int64(stamp.counter), stamp.node]) else { return nil }
        guard let wall: Int64 = row[0], let node: String = row[2] else { return .some(nil) }
        return .some(Stamp(wall: wall, counter: UInt32(truncatingIfNeeded: row[1] as Int64? ?? 0), node: node))
    }

    /// Whether `target` is on the parent chain that starts at `start` (inclusive), following local history.
    /// Stamps only decrease along a chain (a writer's clock observed its parent), so the walk stops below
    /// `target`. nil: the chain left local history before deciding.
    static func chain(_ db: Database, key: String, from start: Stamp?, contains target: Stamp) throws -> Bool? {
        var cursor = start
        for _ in 0..<256 {
            guard let stamp = cursor else { return false }
            if stamp == target { return true }
            if stamp < target { return false }
            guard let parent = try self.parent(db, key: key, of: stamp) else { return nil }
            cursor = parent
        }
        return nil
    }

    private func applyOps(
        _ ops: [TxnOp], isTransaction: Bool, origin: WriteOrigin, state: inout BatchState, now: Int64, revision: inout Int64,
        clock: StampIssuer, effects: inout BatchEffects
    ) throws -> [TxnResult] {
        let db = state.db
        // Phase 1: every compare, against the state before this request.
        var failures: [TxnFailure] = []
        for (index, op) in ops.enumerated() {
            let expected: Int
            switch op {
            case .put(_, _, _, let cas?), .delete(_, let cas?): expected = cas
            case .check(_, let version): expected = version
            default: continue
            }
            let current = try state.current(op.key)
            let currentVersion = current.flatMap { $0.tombstone ? nil : $0.version } ?? 0
            if currentVersion != expected {
                failures.append(TxnFailure(index: index, key: op.key, expected: expected, current: currentVersion))
            }
        }
        if let first = failures.first {
            if isTransaction {
                throw ConfigStoreError(
                    code: .txnFailed, message: "\(failures.count) compare(s) failed; nothing was written", failures: failures)
            }
            let what = first.expected == 0 ? "to not exist" : "at version \(first.expected)"
            let found = first.current == 0 ? "it does not exist" : "it is at version \(first.current)"
            throw ConfigStoreError(
                code: .casMismatch, message: "compare-and-set failed: expected '\(first.key)' \(what), but \(found)",
                currentVersion: first.current)
        }

        // Phase 2: apply.
        var results: [TxnResult] = []
        results.reserveCapacity(ops.count)
        for op in ops {
            switch op {
            case .put(let key, let value, let contentType, _):
                let previous = try state.current(key)
                let version = try self.insert(
                    db, key: key, value: value, contentType: contentType, tombstone: false, previous: previous,
                    origin: origin, now: now, revision: &revision, clock: clock)
                state.written(version, replacing: previous, effects: &effects)
                results.append(.put(version))
            case .delete(let key, _):
                guard let previous = try state.current(key), !previous.tombstone else {
                    results.append(.deleted([]))
                    continue
                }
                let version = try self.insert(
                    db, key: key, value: Data(), contentType: nil, tombstone: true, previous: previous,
                    origin: origin, now: now, revision: &revision, clock: clock)
                state.written(version, replacing: previous, effects: &effects)
                results.append(.deleted([version]))
            case .deletePrefix(let prefix):
                var tombstones: [KVVersion] = []
                for previous in try ConfigStore.live(db, prefix: prefix, limit: .max) {
                    let version = try self.insert(
                        db, key: previous.key, value: Data(), contentType: nil, tombstone: true, previous: previous,
                        origin: origin, now: now, revision: &revision, clock: clock)
                    state.written(version, replacing: previous, effects: &effects)
                    tombstones.append(version)
                }
                results.append(.deleted(tombstones))
            case .check:
                results.append(.checked)
            case .get(let key):
                let current = try state.current(key)
                results.append(.got(current?.tombstone == true ? nil : current))
            }
        }
        return results
    }

    /// A new local version: stamped now, numbered after `previous`.
    private func insert(
        _ db: Database, key: String, value: Data, contentType: String?, tombstone: Bool, previous: KVVersion?,
        origin: WriteOrigin, now: Int64, revision: inout Int64, clock: StampIssuer
    ) throws -> KVVersion {
        let version = KVVersion(
            key: key, value: value, contentType: contentType, version: (previous?.version ?? 0) + 1, revision: 0,
            stamp: clock.tick(physicalMillis: now), parent: previous?.stamp, author: origin.author, client: origin.client,
            tombstone: tombstone, appliedAt: now)
        return try self.store(db, version, revision: &revision, now: now, stale: false, conflict: false, current: true)
    }

    /// Writes a version into history at the next revision and, when `current`, makes it the key's current one.
    @discardableResult
    private func store(
        _ db: Database, _ version: KVVersion, revision: inout Int64, now: Int64, stale: Bool, conflict: Bool, current: Bool
    ) throws -> KVVersion {
        revision += 1
        var stored = version
        stored.revision = revision
        stored.appliedAt = now
        stored.conflict = conflict
        if stored.tombstone { stored.value = Data() }
        let insert = try db.cachedStatement(
            sql: """
                INSERT INTO kv_history (revision, key, version, value, content_type, stamp_wall, stamp_counter, stamp_node,
                    parent_wall, parent_counter, parent_node, author, client, tombstone, conflict, applied_at, stale)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        try insert.execute(arguments: [
            revision, stored.key, stored.version, stored.tombstone ? nil : stored.value, stored.contentType, stored.stamp.wall,
            Int64(stored.stamp.counter), stored.stamp.node, stored.parent?.wall, stored.parent.map { Int64($0.counter) },
            stored.parent?.node, stored.author, stored.client, stored.tombstone, conflict, now, stale,
        ])
        if current {
            let upsert = try db.cachedStatement(
                sql: """
                    INSERT INTO kv_current (key, revision, bucket) VALUES (?, ?, ?)
                    ON CONFLICT(key) DO UPDATE SET revision = excluded.revision
                    """)
            try upsert.execute(arguments: [stored.key, revision, KeyspaceDigest.bucket(of: stored.key)])
        }
        return stored
    }
}
