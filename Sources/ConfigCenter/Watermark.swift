import Synchronization

/// A value that only grows, and waits for it to pass a mark: `wait(above:)` returns once the value is above
/// the mark, or when the waiting task is cancelled. No timer per wait (callers bound a wait by cancelling it),
/// so it is cheap enough for loops that wait thousands of times a second.
public final class Watermark: Sendable {
    private struct Waiters {
        var nextID: UInt64 = 0
        var continuations: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var cancelled: Set<UInt64> = []
    }

    private let current: Atomic<Int64>
    private let waiters = Mutex(Waiters())

    public init(_ initial: Int64 = 0) {
        self.current = Atomic(initial)
    }

    /// The current value.
    public var value: Int64 { self.current.load(ordering: .acquiring) }

    /// Raises the value to `value` (never lowers it) and wakes every waiter.
    public func advance(to value: Int64) {
        var old = self.current.load(ordering: .relaxed)
        while old < value {
            let (exchanged, original) = self.current.compareExchange(expected: old, desired: value, ordering: .acquiringAndReleasing)
            if exchanged { break }
            old = original
        }
        self.wakeAll()
    }

    /// Adds one and wakes every waiter; returns the new value.
    @discardableResult
    public func increment() -> Int64 {
        let value = self.current.add(1, ordering: .acquiringAndReleasing).newValue
        self.wakeAll()
        return value
    }

    /// Waits until the value is above `mark`, or the task is cancelled.
    public func wait(above mark: Int64) async {
        guard self.value <= mark else { return }
        let id = self.waiters.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let registered = self.waiters.withLock { state -> Bool in
                    guard self.value <= mark, !state.cancelled.contains(id) else { return false }
                    state.continuations[id] = continuation
                    return true
                }
                if !registered { continuation.resume() }
            }
        } onCancel: {
            let waiting = self.waiters.withLock { state -> CheckedContinuation<Void, Never>? in
                if let continuation = state.continuations.removeValue(forKey: id) { return continuation }
                // Cancelled before the continuation was registered: make the registration give up.
                state.cancelled.insert(id)
                return nil
            }
            waiting?.resume()
        }
        self.waiters.withLock { _ = $0.cancelled.remove(id) }
    }

    /// Waits until the value is above `mark` or `timeout` passes; returns the value then.
    public func wait(above mark: Int64, timeout: Duration) async -> Int64 {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.wait(above: mark) }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
        return self.value
    }

    private func wakeAll() {
        let woken = self.waiters.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard !state.continuations.isEmpty else { return [] }
            defer { state.continuations.removeAll(keepingCapacity: true) }
            return Array(state.continuations.values)
        }
        for continuation in woken { continuation.resume() }
    }
}
