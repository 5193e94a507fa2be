import Logging
import NIOCore
import NIOPosix
import Synchronization

// MARK: - HTTP proxy

/// The HTTP/1.1 reverse proxy of `gossamer lb`: routes each request by path prefix to an `UpstreamPool`, picks an
/// endpoint with the pool's `Balancer`, and streams the exchange both ways over keep-alive connections.
///
/// The request path is pure NIO: one `ProxyConnectionHandler` per client connection drives each exchange with
/// futures and channel events on the connection's event loop, where its upstream connections live too, so nothing
/// on the hot path takes a lock except the balancer's pick, and no `Task` is created per request.
/// Errors reach clients as `{"error":{"code","message"}}`: 400 `bad_request`, 502 `bad_gateway`,
/// 503 `no_upstream`, 504 `upstream_timeout`. `GET /_lb/upstreams` and `GET /_lb/metrics` are answered by the
/// proxy itself.
public final class HTTPProxy: Sendable {
    private enum Phase: Sendable {
        case ready
        case starting
        case running(any Channel)
        case stopping
        case stopped
    }

    private struct RunState: Sendable {
        var phase = Phase.ready
        var localAddress: SocketAddress?
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let shared: ProxyShared
    private let state = Mutex(RunState())

    /// Creates a proxy. Nothing is bound until `run()`.
    ///
    /// - Parameters:
    ///   - settings: listening, timeouts, pooling and retries.
    ///   - routes: path prefixes and their pools; the longest matching prefix wins.
    ///   - logger: where the proxy logs (at `info` and below).
    public init(settings: ProxySettings, routes: [Route], logger: Logger) {
        self.shared = ProxyShared(settings: settings, routes: RouteTable(routes), logger: logger)
    }

    /// The address the proxy listens on, once `run()` has bound it; `nil` before and after.
    public var localAddress: SocketAddress? {
        self.state.withLock { $0.localAddress }
    }

    /// Binds `listenHost:listenPort` and serves until the task is cancelled or `shutdown()` is called; then stops
    /// accepting, lets requests in progress finish for up to `shutdownGracePeriod`, closes every connection and
    /// returns. Returns at once if `shutdown()` came first.
    ///
    /// - Throws: `ProxyError` with code `.bind` if the address cannot be bound, `.alreadyStarted` if the proxy is
    ///   already running.
    public func run() async throws {
        let claimed: Bool? = self.state.withLock { state in
            switch state.phase {
            case .ready:
                state.phase = .starting
                return true
            case .stopped: return nil
            case .starting, .running, .stopping: return false
            }
        }
        guard let claimed else { return }
        guard claimed else {
            throw ProxyError(code: .alreadyStarted, message: "the proxy is already running")
        }
        let group = MultiThreadedEventLoopGroup.singleton
        var loops: [LoopHandle] = []
        for eventLoop in group.makeIterator() {
            let shared = self.shared
            let context = try await eventLoop.submit {
                NIOLoopBound(LoopContext(eventLoop: eventLoop, shared: shared), eventLoop: eventLoop)
            }.get()
            loops.append(LoopHandle(eventLoop: eventLoop, context: context))
        }

        let channel: any Channel
        do {
            channel = try await self.bind(group: group, loops: loops)
        } catch {
            self.finish()
            let settings = self.shared.settings
            throw ProxyError(
                code: .bind,
                message: "cannot listen on \(settings.listenHost):\(settings.listenPort) (\(error)); is the port in use?",
                cause: error
            )
        }
        let stopAtOnce = self.state.withLock { state in
            if case .stopping = state.phase { return true }
            state.phase = .running(channel)
            state.localAddress = channel.localAddress
            return false
        }
        if stopAtOnce { channel.close(promise: nil) }
        self.shared.logger.info(
            "load balancer listening",
            metadata: ["lb.address": "\(channel.localAddress.map { "\($0)" } ?? "?")", "lb.routes": "\(self.shared.routes.routes.count)"]
        )
        await withTaskCancellationHandler {
            try? await channel.closeFuture.get()
        } onCancel: {
            channel.close(promise: nil)
        }

        // Drain: every loop stops reusing connections, quiesces its clients and force-closes after the grace period.
        let grace = TimeAmount.nanoseconds(self.shared.settings.shutdownGracePeriod.nanoseconds)
        let drains = loops.map { loop in
            loop.eventLoop.flatSubmit { loop.context.value.drain(grace: grace) }
        }
        try? await EventLoopFuture.andAllComplete(drains, on: group.next()).get()
        self.shared.logger.info("load balancer stopped")
        self.finish()
    }

    /// Stops the proxy as `run()` describes and waits until `run()` has closed every connection. Safe to call more
    /// than once, and before `run()`.
    public func shutdown() async {
        let channel: (any Channel)? = self.state.withLock { state in
            switch state.phase {
            case .ready:
                state.phase = .stopped
                return nil
            case .starting:
                state.phase = .stopping
                return nil
            case .running(let channel):
                state.phase = .stopping
                return channel
            case .stopping, .stopped:
                return nil
            }
        }
        channel?.close(promise: nil)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = self.state.withLock { state in
                if case .stopped = state.phase { return true }
                state.waiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    // MARK: - Internals

    private func bind(group: MultiThreadedEventLoopGroup, loops: [LoopHandle]) async throws -> any Channel {
        let shared = self.shared
        var contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>] = [:]
        for loop in loops { contexts[ObjectIdentifier(loop.eventLoop)] = loop.context }
        let byLoop = contexts
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let context = byLoop[ObjectIdentifier(channel.eventLoop)] else {
                        throw ChannelError.ioOnClosedChannel
                    }
                    try ProxyConnectionHandler.configure(channel, loop: context.value, shared: shared)
                }
            }
            .bind(host: shared.settings.listenHost, port: shared.settings.listenPort)
            .get()
    }

    /// Marks the proxy stopped and wakes every `shutdown()` caller.
    private func finish() {
        let waiters = self.state.withLock { state in
            state.phase = .stopped
            state.localAddress = nil
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// One event loop and its context.
private struct LoopHandle: Sendable {
    let eventLoop: any EventLoop
    let context: NIOLoopBound<LoopContext>
}

// MARK: - Shared configuration

/// What every connection handler of one proxy reads: settings, routes and values derived from them once.
final class ProxyShared: Sendable {
    let settings: ProxySettings
    let routes: RouteTable
    let logger: Logger
    /// `settings.connectTimeout` for NIO.
    let connectTimeout: TimeAmount
    /// How often a client connection's timer wakes at most while a deadline is pending: the shorter of the request
    /// and client idle timeouts, so a deadline set at any time is never later than the timer's next wake-up.
    let timerPeriod: Duration
    /// How often a loop looks for upstream connections idle for too long.
    let sweepInterval: TimeAmount

    init(settings: ProxySettings, routes: RouteTable, logger: Logger) {
        self.settings = settings
        self.routes = routes
        self.logger = logger
        self.connectTimeout = .nanoseconds(settings.connectTimeout.nanoseconds)
        self.timerPeriod = min(settings.requestTimeout, settings.clientIdleTimeout)
        let sweep = min(max(settings.idleUpstreamTimeout / 4, .milliseconds(10)), .seconds(5))
        self.sweepInterval = .nanoseconds(sweep.nanoseconds)
    }
}
