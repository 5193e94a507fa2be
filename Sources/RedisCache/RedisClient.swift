/// RedisCache: a small, general Redis client over the hiredis C library.
///
/// - `RedisEndpoint` says where the server is (`redis://[[user]:password@]host[:port][/db]`).
/// - `RedisConnection` is one blocking hiredis connection.
/// - `RedisClient` is what async code uses: a few connections whose blocking calls run on a dedicated
///   `NIOThreadPool`, reconnecting lazily with exponential backoff.
/// - `RedisSubscriber` receives pub/sub messages on its own connection and thread, and re-subscribes after a drop.
///
/// Replies are `RedisValue`s (RESP2); failures are typed `RedisError`s.
import Logging
import NIOPosix
import Synchronization

/// The async Redis client: a small pool of connections whose blocking calls run on a dedicated `NIOThreadPool`
/// (never on the cooperative pool or an event loop).
///
/// Connections open lazily, on the first command that needs one. When connecting fails, further attempts wait
/// for an exponential backoff (100 ms doubling to 5 s); until then commands fail at once with the last connect
/// error. A connection that fails (I/O error or timeout) is dropped and the next command reconnects; the failed
/// command is not retried, since Redis may or may not have run it.
///
/// Call `shutdown()` before dropping the client.
public final class RedisClient: Sendable {
    private let endpoint: RedisEndpoint
    private let connectTimeout: Duration
    private let commandTimeout: Duration
    private let logger: Logger
    private let threadPool: NIOThreadPool
    private let slots: ConnectionSlots
    private let reconnection = Mutex(Reconnection())
    /// The error of the last operation, `nil` if it succeeded.
    private let lastError = Mutex<String?>(nil)
    /// SHA1 of each script text passed to `eval`, as returned by `SCRIPT LOAD`.
    private let scriptHashes = Mutex<[String: String]>([:])

    /// Creates a client; it connects on first use (or `connect()`).
    ///
    /// - Parameters:
    ///   - connections: how many connections (and pool threads) to use; at least 1.
    ///   - connectTimeout: how long to wait for the TCP connection.
    ///   - commandTimeout: how long to wait for each reply; a command that takes longer fails with `.timeout`.
    public init(
        endpoint: RedisEndpoint,
        connections: Int = 2,
        connectTimeout: Duration = .seconds(2),
        commandTimeout: Duration = .seconds(2),
        logger: Logger = Logger(label: "gossamer.redis")
    ) {
        precondition(connections >= 1, "a RedisClient needs at least one connection")
        var logger = logger
        logger[metadataKey: "redis"] = "\(endpoint)"
        self.endpoint = endpoint
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.logger = logger
        self.threadPool = NIOThreadPool(numberOfThreads: connections)
        self.slots = ConnectionSlots(count: connections)
        threadPool.start()
    }

    /// Shuts the thread pool down if `shutdown()` was not called, so that it does not outlive the client.
    deinit {
        if slots.close() {
            threadPool.shutdownGracefully { _ in }
        }
    }

    /// Connects one connection now (ignoring any backoff) and sends `PING`.
    ///
    /// - Throws: the typed error, so that callers can report a wrong address (`.connect`) or password (`.auth`)
    ///   clearly at start-up.
    public func connect() async throws(RedisError) {
        try await withConnection(connectingNow: true) { connection throws(RedisError) in
            let reply = try connection.command(["PING"])
            if let error = RedisError(setupReply: reply, address: connection.address, step: "PING") {
                throw error
            }
        }
    }

    /// Sends one command, such as `command("SET", "key", "value")`. An error reply comes back as `.error(...)`.
    public func command(_ args: String...) async throws(RedisError) -> RedisValue {
        try await command(args)
    }

    /// Sends one command. An error reply comes back as `.error(...)`.
    public func command(_ args: [String]) async throws(RedisError) -> RedisValue {
        try await withConnection { connection throws(RedisError) in try connection.command(args) }
    }

    /// Sends one command whose arguments are raw bytes (for binary values).
    public func command(bytes args: [[UInt8]]) async throws(RedisError) -> RedisValue {
        try await withConnection { connection throws(RedisError) in try connection.command(bytes: args) }
    }

    /// Sends all commands in one write on one connection and returns their replies in order.
    public func pipeline(_ commands: [[String]]) async throws(RedisError) -> [RedisValue] {
        try await withConnection { connection throws(RedisError) in try connection.pipeline(commands) }
    }

    /// Runs a Lua script with `EVALSHA`, loading it with `SCRIPT LOAD` the first time and caching its SHA1.
    /// Falls back to `EVAL` when the server answers `NOSCRIPT` (after `SCRIPT FLUSH` or a restart).
    ///
    /// An error in the script (or its compilation) comes back as `.error(...)`.
    public func eval(script: String, keys: [String], args: [String]) async throws(RedisError) -> RedisValue {
        let cachedHash = scriptHashes.withLock { $0[script] }
        return try await withConnection { [self] connection throws(RedisError) in
            let arguments = [String(keys.count)] + keys + args
            let hash: String
            if let cachedHash {
                hash = cachedHash
            } else {
                let loaded = try connection.command(["SCRIPT", "LOAD", script])
                guard case .bulk = loaded, let loadedHash = loaded.string else { return loaded }
                scriptHashes.withLock { $0[script] = loadedHash }
                hash = loadedHash
            }
            let reply = try connection.command(["EVALSHA", hash] + arguments)
            if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
                return try connection.command(["EVAL", script] + arguments)
            }
            return reply
        }
    }

    /// Whether the last operation succeeded, and the last error text if not (for a "degraded" health check).
    /// Error replies count as successes: the server answered.
    public var status: (healthy: Bool, lastError: String?) {
        lastError.withLock { ($0 == nil, $0) }
    }

    /// Closes the connections and shuts the thread pool down, after the operations under way finish.
    /// Later operations throw `.closed`. Calling it again does nothing.
    public func shutdown() async {
        guard slots.close() else { return }
        do {
            try await threadPool.shutdownGracefully()
        } catch {
            logger.debug("redis thread pool shutdown failed", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Running operations

    /// Takes a free connection slot, runs `operation` on a pool thread (connecting first if the slot has no
    /// connection), gives the slot back, and records the outcome for `status`.
    private func withConnection<T: Sendable>(
        connectingNow: Bool = false,
        _ operation: @escaping @Sendable (RedisConnection) throws(RedisError) -> T
    ) async throws(RedisError) -> T {
        let result = await perform(connectingNow: connectingNow, operation)
        lastError.withLock { lastError in
            if case .failure(let error) = result {
                lastError = error.message
            } else {
                lastError = nil
            }
        }
        return try result.get()
    }

    private func perform<T: Sendable>(
        connectingNow: Bool,
        _ operation: @escaping @Sendable (RedisConnection) throws(RedisError) -> T
    ) async -> Result<T, RedisError> {
        guard let lease = await slots.acquire() else {
            return .failure(Self.shutDownError)
        }
        let outcome: (result: Result<T, RedisError>, lease: ConnectionSlots.Lease)
        do {
            outcome = try await threadPool.runIfActive {
                self.run(operation, on: lease, connectingNow: connectingNow)
            }
        } catch {
            // The work never ran: the pool is shut down, or the task was cancelled while it waited.
            let failure = slots.isClosed || !(error is CancellationError)
                ? Self.shutDownError
                : RedisError(.closed, "the redis operation was cancelled before it ran")
            outcome = (.failure(failure), lease)
        }
        slots.release(outcome.lease)
        return outcome.result
    }

    /// Runs on a pool thread: the blocking part of an operation.
    private func run<T: Sendable>(
        _ operation: (RedisConnection) throws(RedisError) -> T,
        on lease: ConnectionSlots.Lease,
        connectingNow: Bool
    ) -> (result: Result<T, RedisError>, lease: ConnectionSlots.Lease) {
        var lease = lease
        do throws(RedisError) {
            let connection: RedisConnection
            if let leased = lease.connection {
                connection = leased
            } else {
                connection = try openConnection(ignoringBackoff: connectingNow)
                lease.connection = connection
            }
            return (.success(try operation(connection)), lease)
        } catch {
            if let connection = lease.connection, connection.isBroken {
                logger.warning("redis connection failed; the next command reconnects", metadata: ["error": "\(error)"])
                lease.connection = nil
            }
            return (.failure(error), lease)
        }
    }

    /// Opens a connection, unless a recent failure's backoff has not expired (then throws that failure).
    private func openConnection(ignoringBackoff: Bool) throws(RedisError) -> RedisConnection {
        if !ignoringBackoff, let pending = reconnection.withLock({ $0.pendingFailure(at: .now) }) {
            throw pending
        }
        do {
            let connection = try RedisConnection(
                endpoint: endpoint, connectTimeout: connectTimeout, commandTimeout: commandTimeout)
            if reconnection.withLock({ $0.succeeded() }) {
                logger.info("reconnected to redis")
            }
            return connection
        } catch {
            let delay = reconnection.withLock { $0.failed(error, at: .now) }
            logger.warning("cannot connect to redis", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
            throw error
        }
    }

    private static let shutDownError = RedisError(.closed, "the redis client is shut down")
}

/// When the client may try to connect again after failures.
private struct Reconnection {
    private var backoff = Backoff()
    private var retryAt: ContinuousClock.Instant?
    private var lastFailure: RedisError?

    /// The last connect failure, if its backoff has not expired at `now`.
    func pendingFailure(at now: ContinuousClock.Instant) -> RedisError? {
        guard let retryAt, let lastFailure, now < retryAt else { return nil }
        return RedisError(lastFailure.kind, "\(lastFailure.message) (next attempt in \(retryAt - now))")
    }

    /// Records a failure; returns the delay before the next attempt.
    mutating func failed(_ error: RedisError, at now: ContinuousClock.Instant) -> Duration {
        let delay = backoff.next()
        retryAt = now + delay
        lastFailure = error
        return delay
    }

    /// Records a success; returns whether it ends a run of failures.
    mutating func succeeded() -> Bool {
        defer { self = Reconnection() }
        return lastFailure != nil
    }
}

/// The connection slots of a client and the tasks waiting for one. A slot holds no connection until it
/// connects, and again after its connection fails.
///
/// A task waiting for a slot is not woken by cancellation; the wait is bounded by the other operations'
/// timeouts.
private final class ConnectionSlots: Sendable {
    /// A slot taken by one operation.
    struct Lease: Sendable {
        var connection: RedisConnection?
    }

    private struct State {
        var idle: [Lease]
        var waiters: [CheckedContinuation<Lease?, Never>] = []
        var isClosed = false
    }

    private enum Acquisition {
        case ready(Lease?)
        case queued
    }

    private let state: Mutex<State>

    init(count: Int) {
        state = Mutex(State(idle: Array(repeating: Lease(), count: count)))
    }

    var isClosed: Bool { state.withLock { $0.isClosed } }

    /// Waits for a free slot; `nil` once the slots are closed.
    func acquire() async -> Lease? {
        await withCheckedContinuation { continuation in
            let acquisition = state.withLock { state -> Acquisition in
                if state.isClosed { return .ready(nil) }
                if let lease = state.idle.popLast() { return .ready(lease) }
                state.waiters.append(continuation)
                return .queued
            }
            if case .ready(let lease) = acquisition {
                continuation.resume(returning: lease)
            }
        }
    }

    /// Gives a slot back, to the longest waiting task if any. After `close()` its connection is dropped.
    func release(_ lease: Lease) {
        let waiter = state.withLock { state -> CheckedContinuation<Lease?, Never>? in
            if state.isClosed { return nil }
            if state.waiters.isEmpty {
                state.idle.append(lease)
                return nil
            }
            return state.waiters.removeFirst()
        }
        waiter?.resume(returning: lease)
    }

    /// Drops the idle connections and wakes the waiting tasks with `nil`. Returns `false` if already closed.
    func close() -> Bool {
        let waiters = state.withLock { state -> [CheckedContinuation<Lease?, Never>]? in
            guard !state.isClosed else { return nil }
            state.isClosed = true
            state.idle = []
            defer { state.waiters = [] }
            return state.waiters
        }
        guard let waiters else { return false }
        for waiter in waiters {
            waiter.resume(returning: nil)
        }
        return true
    }
}
