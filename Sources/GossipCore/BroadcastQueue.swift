/// The transmit-limited dissemination queue (memberlist's `TransmitLimitedQueue`).
///
/// Items are pre-encoded framed messages. `take` prefers the fewest-transmitted items, newest first
/// among equals; an item about a member (`key`) replaces any older item about the same member; an
/// item leaves the queue after `transmitLimit` sends.
struct BroadcastQueue: Sendable {
    private struct Item: Sendable {
        var key: String?
        var bytes: [UInt8]
        var transmits: Int
    }

    /// Ids by transmit count; within a bucket the newest entry is last. May hold ids of items
    /// already replaced or dropped; those are skipped and compacted lazily.
    private var buckets: [[UInt64]] = []
    private var items: [UInt64: Item] = [:]
    private var idByKey: [String: UInt64] = [:]
    private var nextID: UInt64 = 0
    private var staleIDs = 0

    /// Items waiting.
    var count: Int { self.items.count }

    /// Queues `bytes`, replacing the queued item with the same `key`. Returns how many items were
    /// dropped to stay within `maxDepth`.
    @discardableResult
    mutating func enqueue(_ bytes: [UInt8], key: String?, maxDepth: Int) -> Int {
        if let key, let old = self.idByKey.removeValue(forKey: key) {
            if self.items.removeValue(forKey: old) != nil { self.staleIDs += 1 }
        }
        let id = self.nextID
        self.nextID &+= 1
        self.items[id] = Item(key: key, bytes: bytes, transmits: 0)
        if let key { self.idByKey[key] = id }
        if self.buckets.isEmpty { self.buckets.append([]) }
        self.buckets[0].append(id)
        let dropped = self.trim(to: maxDepth)
        if self.staleIDs > 64 && self.staleIDs > self.items.count { self.compact() }
        return dropped
    }

    /// Takes items that fit in `budget` bytes, counting one transmission each.
    mutating func take(budget: Int, transmitLimit: Int) -> [[UInt8]] {
        guard !self.items.isEmpty, budget > 0 else { return [] }
        var remaining = budget
        var taken: [[UInt8]] = []
        var moved: [(id: UInt64, to: Int)] = []
        var bucketIndex = 0
        scan: while bucketIndex < self.buckets.count {
            var bucket = self.buckets[bucketIndex]
            var keep = [Bool](repeating: true, count: bucket.count)
            var changed = false
            var misses = 0
            var position = bucket.count - 1
            while position >= 0 {
                defer { position -= 1 }
                let id = bucket[position]
                guard let item = self.items[id] else {
                    keep[position] = false
                    changed = true
                    self.staleIDs -= 1
                    continue
                }
                if bucketIndex >= transmitLimit {
                    self.remove(id: id, key: item.key)
                    self.staleIDs -= 1
                    keep[position] = false
                    changed = true
                    continue
                }
                guard item.bytes.count <= remaining else {
                    misses += 1
                    if misses > 32 { break }
                    continue
                }
                remaining -= item.bytes.count
                taken.append(item.bytes)
                keep[position] = false
                changed = true
                let transmits = item.transmits + 1
                if transmits >= transmitLimit {
                    self.remove(id: id, key: item.key)
                    self.staleIDs -= 1
                } else {
                    self.items[id]?.transmits = transmits
                    moved.append((id, transmits))
                }
                if remaining < 4 {
                    if changed { self.buckets[bucketIndex] = Self.filter(bucket, keep) }
                    break scan
                }
            }
            if changed {
                bucket = Self.filter(bucket, keep)
                self.buckets[bucketIndex] = bucket
            }
            bucketIndex += 1
        }
        for (id, to) in moved {
            while self.buckets.count <= to { self.buckets.append([]) }
            self.buckets[to].append(id)
        }
        return taken
    }

    /// Drops the most-transmitted, oldest items until at most `maxDepth` remain.
    private mutating func trim(to maxDepth: Int) -> Int {
        var dropped = 0
        var bucketIndex = self.buckets.count - 1
        while self.items.count > maxDepth && bucketIndex >= 0 {
            var bucket = self.buckets[bucketIndex]
            var cut = 0
            while cut < bucket.count && self.items.count > maxDepth {
                let id = bucket[cut]
                if let item = self.items[id] {
                    self.remove(id: id, key: item.key)
                    dropped += 1
                }
                self.staleIDs -= 1  // the id leaves its bucket below
                cut += 1
            }
            bucket.removeFirst(cut)
            self.buckets[bucketIndex] = bucket
            bucketIndex -= 1
        }
        return dropped
    }

    /// Removes every stale id from the buckets.
    private mutating func compact() {
        for index in self.buckets.indices {
            self.buckets[index].removeAll { self.items[$0] == nil }
        }
        self.staleIDs = 0
    }

    private mutating func remove(id: UInt64, key: String?) {
        self.items.removeValue(forKey: id)
        if let key, self.idByKey[key] == id { self.idByKey.removeValue(forKey: key) }
        self.staleIDs += 1  // its id stays in a bucket until the next scan or compaction
    }

    private static func filter(_ bucket: [UInt64], _ keep: [Bool]) -> [UInt64] {
        var result: [UInt64] = []
        result.reserveCapacity(bucket.count)
        for index in bucket.indices where keep[index] { result.append(bucket[index]) }
        return result
    }
}
