import NIOCore

// MARK: - Per-loop context

/// What one event loop's connections share: idle upstream connections by endpoint, and the client connections
/// to drain on shutdown. Confined to its loop (reached through `NIOLoopBound`), so it needs no locks: a client
/// connection and the upstream connections it uses always live on the same loop.
final class LoopContext {
    let eventLoop: any EventLoop
    let shared: ProxyShared
    /// Idle connections by `ObjectIdentifier` of their `EndpointStats`, most recently used last. Emptied lists are
    /// kept (with their capacity) until the next sweep, so a keep-alive round trip allocates nothing.
    private var idle: [ObjectIdentifier: [UpstreamConnection]] = [:]
    private var idleCount = 0
    private var sweepTask: Scheduled<Void>?
    /// Open client connections.
    private var clients: [ObjectIdentifier: ProxyConnectionHandler] = [:]
    private var isDraining = false
    private var drainPromise: EventLoopPromise<Void>?
    private var drainDeadline: Scheduled<Void>?

    init(eventLoop: any EventLoop, shared: ProxyShared) {
        self.eventLoop = eventLoop
        self.shared = shared
    }

    // MARK: - Idle upstream connections

    /// An open idle connection to the endpoint, most recently used first; `nil` when there is none.
    func takeIdle(for stats: EndpointStats) -> UpstreamConnection? {
        let key = ObjectIdentifier(stats)
        while let connection = self.idle[key]?.popLast() {
            self.idleCount -= 1
            connection.isIdle = false
            if connection.isOpen { return connection }
        }
        return nil
    }

    /// Takes back a connection whose exchange completed cleanly; closes it instead when the loop is draining or the
    /// endpoint already has `maxIdlePerUpstream` idle connections.
    func release(_ connection: UpstreamConnection) {
        connection.owner = nil
        connection.loop = self
        let key = ObjectIdentifier(connection.stats)
        guard connection.isOpen, !self.isDraining,
            (self.idle[key]?.count ?? 0) < self.shared.settings.maxIdlePerUpstream
        else {
            connection.close()
            return
        }
        connection.isIdle = true
        connection.idleSince = ContinuousClock.now
        self.idle[key, default: []].append(connection)
        self.idleCount += 1
        self.armSweep()
    }

    /// Forgets an idle connection the upstream closed.
    func removeIdle(_ connection: UpstreamConnection) {
        let key = ObjectIdentifier(connection.stats)
        guard let index = self.idle[key]?.firstIndex(where: { $0 === connection }) else { return }
        self.idle[key]?.remove(at: index)
        self.idleCount -= 1
        connection.isIdle = false
    }

    private func armSweep() {
        guard self.sweepTask == nil, self.idleCount > 0 else { return }
        self.sweepTask = self.eventLoop.assumeIsolated().scheduleTask(in: self.shared.sweepInterval) {
            self.sweep()
        }
    }

    /// Closes connections idle for longer than `idleUpstreamTimeout` and drops empty lists.
    private func sweep() {
        self.sweepTask = nil
        let cutoff = ContinuousClock.now - self.shared.settings.idleUpstreamTimeout
        for key in Array(self.idle.keys) {
            guard var list = self.idle.removeValue(forKey: key) else { continue }
            // Oldest first: the list is in release order.
            var expired = 0
            while expired < list.count, list[expired].idleSince <= cutoff { expired += 1 }
            for connection in list[..<expired] {
                connection.isIdle = false
                connection.close()
            }
            list.removeFirst(expired)
            self.idleCount -= expired
            if !list.isEmpty { self.idle[key] = list }
        }
        self.armSweep()
    }

    private func closeAllIdle() {
        let lists = self.idle.values
        self.idle = [:]
        self.idleCount = 0
        for connection in lists.joined() {
            connection.isIdle = false
            connection.close()
        }
        self.sweepTask?.cancel()
        self.sweepTask = nil
    }

    // MARK: - Client connections

    /// Records a new client connection; one that arrives while draining is closed at once.
    func register(_ client: ProxyConnectionHandler) {
        if self.isDraining {
            client.close()
            return
        }
        self.clients[ObjectIdentifier(client)] = client
    }

    /// Forgets a closed client connection.
    func unregister(_ client: ProxyConnectionHandler) {
        self.clients.removeValue(forKey: ObjectIdentifier(client))
        if self.isDraining, self.clients.isEmpty { self.finishDrain() }
    }

    /// Stops reusing upstream connections, asks every client connection to close after its current response and
    /// force-closes those still open after `grace`. Succeeds when every client connection is closed.
    func drain(grace: TimeAmount) -> EventLoopFuture<Void> {
        self.isDraining = true
        self.closeAllIdle()
        if self.clients.isEmpty { return self.eventLoop.makeSucceededVoidFuture() }
        let promise = self.eventLoop.makePromise(of: Void.self)
        self.drainPromise = promise
        for client in Array(self.clients.values) { client.quiesce() }
        if self.drainPromise != nil {
            self.drainDeadline = self.eventLoop.assumeIsolated().scheduleTask(in: grace) {
                for client in Array(self.clients.values) { client.close() }
                self.finishDrain()
            }
        }
        return promise.futureResult
    }

    private func finishDrain() {
        self.drainDeadline?.cancel()
        self.drainDeadline = nil
        let promise = self.drainPromise
        self.drainPromise = nil
        promise?.succeed()
    }
}

@available(*, unavailable)
extension LoopContext: Sendable {}
