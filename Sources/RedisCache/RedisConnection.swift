import CHiredis
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One blocking connection. Every method blocks the calling thread: use it from `RedisClient`, not from an
/// event loop or the cooperative thread pool.
///
/// Calls from several threads are serialised. After an I/O error or timeout the connection is broken for good
/// (`isBroken`), and every later call throws `.closed`: open a new one.
public final class RedisConnection: Sendable {
    /// `host:port` of the server, for messages.
    let address: String
    private let commandTimeout: Duration
    /// The hiredis context. `Mutex` is unconditionally `Sendable`, so no `@unchecked` is needed; every C call
    /// happens inside `withLock`.
    private let context: Mutex<UnsafeMutablePointer<redisContext>>
    private let broken = Atomic<Bool>(false)

    /// Connects, sends `AUTH` when the endpoint has a password (with the user name when it has one), and
    /// `SELECT`s the database when it is not 0.
    ///
    /// - Throws: `.connect` when the server cannot be reached within `connectTimeout`, `.auth` when it rejects
    ///   the credentials (or wants some and none are configured), `.server` when it rejects `SELECT`, and
    ///   `.io`/`.timeout` when the connection fails during these steps.
    public init(endpoint: RedisEndpoint, connectTimeout: Duration, commandTimeout: Duration) throws(RedisError) {
        Hiredis.sigpipeIgnored
        let address = endpoint.address
        guard
            let context = redisConnectWithTimeout(
                endpoint.host, Int32(clamping: endpoint.port), Hiredis.timeval(connectTimeout))
        else {
            throw RedisError(.connect, "cannot connect to redis at \(address): out of memory")
        }
        do throws(RedisError) {
            guard context.pointee.err == 0 else {
                throw RedisError(.connect, "cannot connect to redis at \(address): \(Hiredis.errorText(context))")
            }
            guard redisSetTimeout(context, Hiredis.timeval(commandTimeout)) == REDIS_OK,
                redisEnableKeepAlive(context) == REDIS_OK
            else {
                throw RedisError(
                    .connect, "cannot configure the connection to redis at \(address): \(Hiredis.errorText(context))")
            }
            try Self.handshake(context, endpoint: endpoint, timeout: commandTimeout)
        } catch {
            redisFree(context)
            throw error
        }
        self.address = address
        self.commandTimeout = commandTimeout
        self.context = Mutex(context)
    }

    deinit {
        context.withLock { redisFree($0) }
    }

    /// Whether an I/O error or timeout has made the connection unusable.
    public var isBroken: Bool { broken.load(ordering: .acquiring) }

    /// Sends one command and waits for its reply. An error reply comes back as `.error(...)`.
    ///
    /// - Throws: `.io`, `.timeout` or `.protocolError` (the connection is then broken), `.closed` when it
    ///   already was.
    public func command(_ args: [String]) throws(RedisError) -> RedisValue {
        try command(bytes: args.map { Array($0.utf8) })
    }

    /// Sends one command whose arguments are raw bytes and waits for its reply.
    public func command(bytes args: [[UInt8]]) throws(RedisError) -> RedisValue {
        try exchange([args])[0]
    }

    /// Sends all commands at once, then reads all their replies, in order.
    public func pipeline(_ commands: [[String]]) throws(RedisError) -> [RedisValue] {
        try exchange(commands.map { $0.map { Array($0.utf8) } })
    }

    /// Sends commands without reading replies, for the pub/sub mode of `RedisSubscriber`.
    func send(_ commands: [[String]]) throws(RedisError) {
        try withContext { context throws(RedisError) in
            for command in commands {
                guard Hiredis.append(context, command.map { Array($0.utf8) }) else {
                    throw failure(context, errno: errno)
                }
            }
            try flush(context)
        }
    }

    /// Returns the next reply the server sends, or `nil` when none is complete within `timeout`, so that a
    /// reader can check a stop flag between waits.
    func nextReply(within timeout: Duration) throws(RedisError) -> RedisValue? {
        try withContext { context throws(RedisError) -> RedisValue? in
            if let buffered = try bufferedReply(context) {
                return buffered
            }
            var descriptor = pollfd(fd: context.pointee.fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Hiredis.milliseconds(timeout))
            if ready < 0 {
                let code = errno
                guard code == EINTR else {
                    throw RedisError(.io, "cannot wait for redis at \(address): \(String(cString: strerror(code)))")
                }
                return nil
            }
            guard ready > 0 else { return nil }
            guard redisBufferRead(context) == REDIS_OK else {
                throw failure(context, errno: errno)
            }
            return try bufferedReply(context)
        }
    }

    // MARK: - Internals

    /// Appends every command, then reads one reply per command.
    private func exchange(_ commands: [[[UInt8]]]) throws(RedisError) -> [RedisValue] {
        guard !commands.contains(where: \.isEmpty) else {
            throw RedisError(.protocolError, "cannot send an empty command to redis at \(address)")
        }
        guard !commands.isEmpty else { return [] }
        return try withContext { context throws(RedisError) in
            try Self.exchange(context, commands, address: address, timeout: commandTimeout)
        }
    }

    /// Runs `body` on the context under the lock; any error it throws marks the connection broken.
    private func withContext<T: Sendable>(
        _ body: (UnsafeMutablePointer<redisContext>) throws(RedisError) -> T
    ) throws(RedisError) -> T {
        try context.withLock { context throws(RedisError) -> T in
            guard !isBroken else {
                throw RedisError(.closed, "the connection to redis at \(address) is broken by an earlier error")
            }
            do throws(RedisError) {
                return try body(context)
            } catch {
                broken.store(true, ordering: .releasing)
                throw error
            }
        }
    }

    private func flush(_ context: UnsafeMutablePointer<redisContext>) throws(RedisError) {
        var done: Int32 = 0
        while done == 0 {
            guard redisBufferWrite(context, &done) == REDIS_OK else {
                throw failure(context, errno: errno)
            }
        }
    }

    /// A reply already read from the socket, if hiredis holds a complete one.
    private func bufferedReply(_ context: UnsafeMutablePointer<redisContext>) throws(RedisError) -> RedisValue? {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReplyFromReader(context, &raw) == REDIS_OK else {
            throw failure(context, errno: errno)
        }
        guard let raw else { return nil }
        defer { freeReplyObject(raw) }
        return try Hiredis.value(of: raw.assumingMemoryBound(to: redisReply.self))
    }

    private func failure(_ context: UnsafeMutablePointer<redisContext>, errno code: Int32) -> RedisError {
        Self.failure(context, errno: code, address: address, timeout: commandTimeout)
    }

    private static func exchange(
        _ context: UnsafeMutablePointer<redisContext>,
        _ commands: [[[UInt8]]],
        address: String,
        timeout: Duration
    ) throws(RedisError) -> [RedisValue] {
        for command in commands {
            guard Hiredis.append(context, command) else {
                throw failure(context, errno: errno, address: address, timeout: timeout)
            }
        }
        var replies: [RedisValue] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            let status = redisGetReply(context, &raw)
            let code = errno
            guard status == REDIS_OK, let raw else {
                throw failure(context, errno: code, address: address, timeout: timeout)
            }
            defer { freeReplyObject(raw) }
            replies.append(try Hiredis.value(of: raw.assumingMemoryBound(to: redisReply.self)))
        }
        return replies
    }

    /// Turns the context's error flags (and `errno`, read right after the failing call) into a `RedisError`.
    private static func failure(
        _ context: UnsafeMutablePointer<redisContext>,
        errno code: Int32,
        address: String,
        timeout: Duration
    ) -> RedisError {
        let text = Hiredis.errorText(context)
        switch context.pointee.err {
        case REDIS_ERR_IO where code == EAGAIN || code == EWOULDBLOCK:
            return RedisError(.timeout, "redis at \(address) did not answer within \(timeout)")
        case REDIS_ERR_EOF:
            return RedisError(.io, "redis at \(address) closed the connection")
        case REDIS_ERR_PROTOCOL:
            return RedisError(.protocolError, "protocol error from redis at \(address): \(text)")
        default:
            return RedisError(.io, "I/O error talking to redis at \(address): \(text)")
        }
    }

    /// Logs in and selects the database on a fresh context.
    private static func handshake(
        _ context: UnsafeMutablePointer<redisContext>,
        endpoint: RedisEndpoint,
        timeout: Duration
    ) throws(RedisError) {
        let address = endpoint.address
        if let password = endpoint.password {
            let auth = ["AUTH"] + (endpoint.username.map { [$0] } ?? []) + [password]
            let reply = try exchange(context, [auth.map { Array($0.utf8) }], address: address, timeout: timeout)[0]
            if case .error(let message) = reply {
                let who = endpoint.username.map { " for user '\($0)'" } ?? ""
                throw RedisError(.auth, "redis at \(address) rejected the password\(who): \(message)")
            }
        }
        if endpoint.database != 0 {
            let select = ["SELECT", String(endpoint.database)].map { Array($0.utf8) }
            let reply = try exchange(context, [select], address: address, timeout: timeout)[0]
            if let error = RedisError(setupReply: reply, address: address, step: "SELECT \(endpoint.database)") {
                throw error
            }
        }
    }
}

extension RedisError {
    /// The error for an error reply to a command sent while setting up a connection: `.auth` when the server
    /// wants a password (`NOAUTH`), `.server` otherwise; `nil` when the reply is not an error.
    init?(setupReply reply: RedisValue, address: String, step: String) {
        guard case .error(let message) = reply else { return nil }
        if message.hasPrefix("NOAUTH") {
            self.init(.auth, "redis at \(address) requires a password: \(message)")
        } else {
            self.init(.server, "redis at \(address) rejected \(step): \(message)")
        }
    }
}
