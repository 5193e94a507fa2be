import Synchronization

/// The most recent versions this node wrote itself, in revision order, kept after each commit so replication's
/// push loops can take them from memory instead of reading them back from SQLite (`ConfigStore.localWrites`).
///
/// The log *covers* the revisions `(coveredFrom, coveredTo]`: every version with this node's stamp committed in
/// that range is in it. Reads asking for anything older fall back to SQLite. Old entries are dropped past
/// `maxVersions` or `maxBytes` of values (the defaults hold eight full push batches: peers that keep up read only
/// the last one or two); a batch that removed history (`forget`), stored one of this node's own
/// versions as stale (a merge of its own old write), or a compaction empties it, so it never holds a version that
/// SQLite no longer has or misses one that SQLite has. An entry is the version as committed: a `conflict` flag a
/// later merge sets on it in history is not reflected (pushes do not send that flag).
final class OwnWrites: Sendable {
    private struct State {
        var versions: [KVVersion] = []
        /// Index of the oldest live entry in `versions` (entries before it were dropped).
        var head = 0
        var bytes = 0
        var coveredFrom: Int64
        var coveredTo: Int64
    }

    private let state: Mutex<State>
    private let node: String
    let maxVersions: Int
    let maxBytes: Int

    init(node: String, revision: Int64, maxVersions: Int = 4_096, maxBytes: Int = 4 << 20) {
        self.node = node
        self.maxVersions = maxVersions
        self.maxBytes = maxBytes
        self.state = Mutex(State(coveredFrom: revision, coveredTo: revision))
    }

    /// Records a committed batch: `changes` are the versions it made current, in revision order (this node's own
    /// are kept), `revision` the node revision after it. With `invalidate`, everything before is forgotten.
    func record(_ changes: [KVVersion], upTo revision: Int64, invalidate: Bool) {
        let node = self.node
        self.state.withLock { state in
            if invalidate {
                state = State(coveredFrom: revision, coveredTo: revision)
                return
            }
            for version in changes where version.stamp.node == node {
                state.versions.append(version)
                state.bytes += version.value.count
            }
            state.coveredTo = revision
            while state.versions.count - state.head > self.maxVersions || state.bytes > self.maxBytes {
                let dropped = state.versions[state.head]
                state.head += 1
                state.bytes -= dropped.value.count
                state.coveredFrom = dropped.revision
            }
            if state.head > 1024, state.head * 2 > state.versions.count {
                state.versions.removeFirst(state.head)
                state.head = 0
            }
        }
    }

    /// Forgets every entry (history was removed outside a batch, e.g. by compaction).
    func invalidate() {
        self.state.withLock { state in state = State(coveredFrom: state.coveredTo, coveredTo: state.coveredTo) }
    }

    /// This node's versions after `revision`, oldest first, at most `limit`, and the revision scanned up to — or nil
    /// when the log does not cover `revision`.
    func read(after revision: Int64, limit: Int) -> (versions: [KVVersion], scannedTo: Int64)? {
        self.state.withLock { state in
            guard revision >= state.coveredFrom, revision <= state.coveredTo, limit > 0 else { return nil }
            let live = state.versions[state.head...]
            // Entries are in revision order: find the first after `revision`.
            var low = live.startIndex
            var high = live.endIndex
            while low < high {
                let middle = (low + high) / 2
                if live[middle].revision <= revision { low = middle + 1 } else { high = middle }
            }
            let end = min(low + limit, live.endIndex)
            let versions = Array(live[low..<end])
            let scanned = versions.count == limit ? versions.last!.revision : state.coveredTo
            return (versions, scanned)
        }
    }
}
