import GossipCore

/// A deterministic discrete-event queue: a binary min-heap of trivially copyable keys
/// (time, insertion order, slot) over a slab of payloads, so sifting never copies or
/// reference-counts a payload, and nothing is generic (this keeps debug builds fast).
struct EventQueue {
    typealias Payload = Simulation.Event

    private struct Key {
        var time: Int64
        var order: UInt64
        var slot: Int
    }

    private var heap: [Key] = []
    private var payloads: [Payload?] = []
    private var freeSlots: [Int] = []
    private var nextOrder: UInt64 = 0

    var count: Int { self.heap.count }
    var isEmpty: Bool { self.heap.isEmpty }
    var nextTime: SWIM.Instant? { self.heap.first.map { SWIM.Instant(nanoseconds: $0.time) } }

    mutating func push(_ payload: Payload, at time: SWIM.Instant) {
        let slot: Int
        if let free = self.freeSlots.popLast() {
            slot = free
            self.payloads[slot] = payload
        } else {
            slot = self.payloads.count
            self.payloads.append(payload)
        }
        let key = Key(time: time.nanoseconds, order: self.nextOrder, slot: slot)
        self.nextOrder += 1
        self.heap.append(key)
        var child = self.heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.less(key, self.heap[parent]) else { break }
            self.heap[child] = self.heap[parent]
            child = parent
        }
        self.heap[child] = key
    }

    mutating func pop() -> (time: SWIM.Instant, payload: Payload)? {
        guard let top = self.heap.first else { return nil }
        let last = self.heap.removeLast()
        let count = self.heap.count
        if count > 0 {
            var parent = 0
            while true {
                let left = 2 * parent + 1
                guard left < count else { break }
                let right = left + 1
                let smaller = right < count && Self.less(self.heap[right], self.heap[left]) ? right : left
                guard Self.less(self.heap[smaller], last) else { break }
                self.heap[parent] = self.heap[smaller]
                parent = smaller
            }
            self.heap[parent] = last
        }
        let payload = self.payloads[top.slot]
        self.payloads[top.slot] = nil
        self.freeSlots.append(top.slot)
        guard let payload else { return nil }
        return (SWIM.Instant(nanoseconds: top.time), payload)
    }

    private static func less(_ a: Key, _ b: Key) -> Bool {
        a.time == b.time ? a.order < b.order : a.time < b.time
    }
}
