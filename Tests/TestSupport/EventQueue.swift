import GossipCore

/// A binary min-heap of events by (time, insertion order): a deterministic discrete-event queue.
struct EventQueue<Payload> {
    struct Entry {
        var time: SWIM.Instant
        var order: UInt64
        var payload: Payload
    }

    private var heap: [Entry] = []
    private var nextOrder: UInt64 = 0

    var count: Int { self.heap.count }
    var isEmpty: Bool { self.heap.isEmpty }
    var nextTime: SWIM.Instant? { self.heap.first?.time }

    mutating func push(_ payload: Payload, at time: SWIM.Instant) {
        self.heap.append(Entry(time: time, order: self.nextOrder, payload: payload))
        self.nextOrder += 1
        var child = self.heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.less(self.heap[child], self.heap[parent]) else { break }
            self.heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Entry? {
        guard !self.heap.isEmpty else { return nil }
        self.heap.swapAt(0, self.heap.count - 1)
        let top = self.heap.removeLast()
        var parent = 0
        let count = self.heap.count
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < count && Self.less(self.heap[left], self.heap[smallest]) { smallest = left }
            if right < count && Self.less(self.heap[right], self.heap[smallest]) { smallest = right }
            if smallest == parent { break }
            self.heap.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }

    private static func less(_ a: Entry, _ b: Entry) -> Bool {
        a.time == b.time ? a.order < b.order : a.time < b.time
    }
}
