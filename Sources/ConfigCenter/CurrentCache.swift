import Synchronization

/// The current version of recently read or written keys, so hot reads skip SQLite.
///
/// Write-through: every committed change replaces its key's entry before watchers hear of it. A value
/// read from SQLite is only *offered*: it never replaces an entry with a newer revision, so a slow reader
/// cannot put back a value a concurrent write already replaced. Bounded by `budget` bytes of values; when
/// full it starts over (cheap, and the next reads refill what is hot).
final class CurrentCache: Sendable {
    private struct State {
        var entries: [String: KVVersion] = [:]
        var bytes = 0
    }

    private let state = Mutex(State())
    let budget: Int

    init(budget: Int) {
        self.budget = budget
    }

    func get(_ key: String) -> KVVersion? {
        self.state.withLock { $0.entries[key] }
    }

    /// Records what a read found, unless a newer version is already known.
    func offer(_ version: KVVersion) {
        self.state.withLock { state in self.insert(version, into: &state) }
    }

    /// Write-through of committed changes (in revision order).
    func apply(_ changes: [KVVersion]) {
        guard self.budget > 0, !changes.isEmpty else { return }
        self.state.withLock { state in
            for change in changes { self.insert(change, into: &state) }
        }
    }

    /// Forgets keys removed from the store (compaction of expired tombstones).
    func remove(_ keys: [String]) {
        self.state.withLock { state in
            for key in keys {
                if let old = state.entries.removeValue(forKey: key) { state.bytes -= Self.cost(old) }
            }
        }
    }

    private func insert(_ version: KVVersion, into state: inout State) {
        guard self.budget > 0 else { return }
        if let old = state.entries[version.key] {
            guard old.revision < version.revision else { return }
            state.bytes -= Self.cost(old)
        }
        let cost = Self.cost(version)
        if state.bytes + cost > self.budget {
            state.entries.removeAll(keepingCapacity: true)
            state.bytes = 0
        }
        state.entries[version.key] = version
        state.bytes += cost
    }

    private static func cost(_ version: KVVersion) -> Int {
        version.value.count + version.key.utf8.count + 128
    }
}
