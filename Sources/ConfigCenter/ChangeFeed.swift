import Synchronization

/// Fan-out of applied changes to live watchers.
///
/// The store publishes every committed change, in revision order, after its transaction commits.
/// Each subscriber gets a bounded stream; a subscriber that falls `bufferSize` changes behind is cut off
/// with `lagged == true` and must resume from history (the watch API does that by itself).
public final class ChangeFeed: Sendable {
    /// Which keys a subscriber wants.
    public enum Filter: Sendable, Equatable {
        case key(String)
        case prefix(String)

        /// True when `key` is selected by this filter.
        public func matches(_ key: String) -> Bool {
            switch self {
            case .key(let wanted): key == wanted
            case .prefix(let prefix): key.hasPrefix(prefix)
            }
        }
    }

    /// What a subscription delivers: changes, and the heartbeats its owner asked for.
    public enum Event: Sendable, Equatable {
        case change(Change)
        case heartbeat
    }

    /// A live subscription. Iterate `events`; when it ends, check `lagged`.
    public final class Subscription: Sendable {
        /// Changes matching the filter, in revision order, with heartbeats interleaved.
        public let events: AsyncStream<Event>
        private let continuation: AsyncStream<Event>.Continuation
        private let laggedFlag: Atomic<Bool>
        fileprivate let id: UInt64
        fileprivate weak let feed: ChangeFeed?

        fileprivate init(events: AsyncStream<Event>, continuation: AsyncStream<Event>.Continuation, id: UInt64, feed: ChangeFeed) {
            self.events = events
            self.continuation = continuation
            self.laggedFlag = Atomic(false)
            self.id = id
            self.feed = feed
        }

        /// True when the stream ended because the subscriber fell too far behind.
        public var lagged: Bool { self.laggedFlag.load(ordering: .acquiring) }
        fileprivate func markLagged() { self.laggedFlag.store(true, ordering: .releasing) }

        /// Stops the subscription and ends the stream.
        public func cancel() { self.feed?.remove(self.id) }

        /// Queues a heartbeat after the changes already queued (for idle keep-alives of a stream).
        public func heartbeat() { self.continuation.yield(.heartbeat) }

        deinit { self.feed?.remove(self.id) }
    }

    private struct Subscriber {
        var filter: Filter
        var continuation: AsyncStream<Event>.Continuation
        weak var subscription: Subscription?
    }

    private struct State {
        var nextID: UInt64 = 0
        var subscribers: [UInt64: Subscriber] = [:]
        var closed = false
    }

    private let state = Mutex(State())
    private let published = Atomic<Int64>(0)
    /// Changes a subscriber may have queued before it is cut off.
    public let bufferSize: Int

    public init(bufferSize: Int = 10_000) {
        self.bufferSize = bufferSize
    }

    /// Revision of the last change published (the store's current revision), readable without a query.
    public var revision: Int64 { self.published.load(ordering: .acquiring) }

    func setRevision(_ revision: Int64, localWrite: Int64) {
        self.published.store(revision, ordering: .releasing)
        self.localWrites.advance(to: localWrite)
    }

    /// Number of live subscribers (for metrics).
    public var subscriberCount: Int { self.state.withLock { $0.subscribers.count } }

    /// Subscribes to future changes matching `filter`.
    public func subscribe(_ filter: Filter) -> Subscription {
        let (stream, continuation) = AsyncStream<Event>.makeStream(bufferingPolicy: .bufferingOldest(self.bufferSize))
        return self.state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            let subscription = Subscription(events: stream, continuation: continuation, id: id, feed: self)
            guard !state.closed else {
                continuation.finish()
                return subscription
            }
            state.subscribers[id] = Subscriber(filter: filter, continuation: continuation, subscription: subscription)
            continuation.onTermination = { [weak self] _ in self?.remove(id) }
            return subscription
        }
    }

    /// Delivers committed changes to every matching subscriber; `revision` is the store's revision after them
    /// (it can be ahead of the last change: versions merged as stale are history only, nobody watches them).
    /// `localWrite`: the revision of the last write made on this node in the batch, if any (replication's
    /// push loops wait for those only, not for every version merged from peers).
    func publish(_ changes: [Change], revision: Int64, localWrite: Int64? = nil) {
        self.published.store(revision, ordering: .releasing)
        if let localWrite { self.localWrites.advance(to: localWrite) }
        guard !changes.isEmpty else { return }
        var laggards: [Subscriber] = []
        self.state.withLock { state in
            for (id, subscriber) in state.subscribers {
                for change in changes where subscriber.filter.matches(change.key) {
                    if case .dropped = subscriber.continuation.yield(.change(change)) {
                        laggards.append(subscriber)
                        state.subscribers[id] = nil
                        break
                    }
                }
            }
        }
        for laggard in laggards {
            laggard.subscription?.markLagged()
            laggard.continuation.finish()
        }
    }

    /// Ends every subscription, now and from now on (graceful shutdown: watch streams finish).
    public func closeAll() {
        let subscribers = self.state.withLock { state in
            state.closed = true
            defer { state.subscribers = [:] }
            return state.subscribers
        }
        for subscriber in subscribers.values { subscriber.continuation.finish() }
    }

    /// Revision of the last write made on this node (not merged from a peer).
    public var localWriteRevision: Int64 { self.localWrites.value }

    private let localWrites = Watermark()

    /// Waits until a write made on this node has a revision above `revision`, or the task is cancelled.
    /// (No timer per wait: push loops wait here once per batch, thousands of times a second under load.)
    public func waitForLocalWrite(above revision: Int64) async {
        await self.localWrites.wait(above: revision)
    }

    fileprivate func remove(_ id: UInt64) {
        let removed = self.state.withLock { $0.subscribers.removeValue(forKey: id) }
        removed?.continuation.finish()
    }
}
