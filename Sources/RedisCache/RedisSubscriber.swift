import Logging
import Synchronization

import class Foundation.Thread

/// A message received on a subscribed channel.
public struct RedisMessage: Sendable, Equatable {
    /// The channel it was published on.
    public var channel: String
    /// The published bytes.
    public var payload: [UInt8]
    /// The pattern that matched the channel, for messages received through a pattern subscription.
    public var pattern: String?

    /// Creates a message.
    public init(channel: String, payload: [UInt8], pattern: String? = nil) {
        self.channel = channel
        self.payload = payload
        self.pattern = pattern
    }

    /// The payload as text, if it is valid UTF-8.
    public var text: String? { String(validating: payload, as: UTF8.self) }
}

/// A pub/sub subscriber on its own connection and its own thread.
///
/// It subscribes to the channels (`SUBSCRIBE`) and patterns (`PSUBSCRIBE`) and yields what is published on
/// them to `messages`. When the connection drops it reconnects with exponential backoff (100 ms doubling to
/// 5 s) and subscribes again; messages published in between are lost, as always with Redis pub/sub.
///
/// It stops when `cancel()` is called, when the subscriber is dropped, or when the consumer of `messages`
/// stops iterating: `messages` finishes at once, and the thread closes its connection and exits within about
/// 100 ms (or the connect timeout of 2 s, when it is connecting).
public final class RedisSubscriber: Sendable {
    /// How many undelivered messages are kept for a slow consumer; beyond that the oldest are dropped.
    private static let bufferLimit = 10_000

    /// The messages received, in order. Iterate it from one task only. Up to 10,000 messages wait for a slow
    /// consumer; beyond that the oldest are dropped (and a warning is logged).
    public let messages: AsyncStream<RedisMessage>
    private let continuation: AsyncStream<RedisMessage>.Continuation
    private let stopFlag: StopFlag

    /// Starts a thread that connects and subscribes. Connection failures are logged and retried, never thrown.
    ///
    /// - Parameters:
    ///   - channels: exact channel names to subscribe to.
    ///   - patterns: glob-style patterns (`news.*`) to subscribe to; at least one channel or pattern is needed.
    public init(
        endpoint: RedisEndpoint,
        channels: [String],
        patterns: [String] = [],
        logger: Logger = Logger(label: "gossamer.redis")
    ) {
        precondition(!channels.isEmpty || !patterns.isEmpty, "a RedisSubscriber needs a channel or a pattern")
        let (messages, continuation) = AsyncStream.makeStream(
            of: RedisMessage.self, bufferingPolicy: .bufferingNewest(Self.bufferLimit))
        let stopFlag = StopFlag()
        continuation.onTermination = { _ in stopFlag.stop() }
        self.messages = messages
        self.continuation = continuation
        self.stopFlag = stopFlag

        var logger = logger
        logger[metadataKey: "redis"] = "\(endpoint)"
        let commands = [(channels, "SUBSCRIBE"), (patterns, "PSUBSCRIBE")]
            .filter { !$0.0.isEmpty }
            .map { names, command in [command] + names }
        let loop = SubscriptionLoop(
            endpoint: endpoint, commands: commands, logger: logger, stopFlag: stopFlag, continuation: continuation)
        Thread.detachNewThread {
            var loop = loop
            loop.run()
        }
    }

    deinit {
        cancel()
    }

    /// Stops the subscriber and finishes `messages`. Calling it again does nothing.
    public func cancel() {
        stopFlag.stop()
        continuation.finish()
    }
}

/// Tells the subscriber's thread to stop.
private final class StopFlag: Sendable {
    private let stopped = Atomic(false)

    var isStopped: Bool { stopped.load(ordering: .acquiring) }

    func stop() {
        stopped.store(true, ordering: .releasing)
    }
}

/// The body of a subscriber's thread: connect, subscribe, read, and start over after a failure.
private struct SubscriptionLoop: Sendable {
    private static let connectTimeout: Duration = .seconds(2)
    private static let commandTimeout: Duration = .seconds(2)
    /// How long one read waits before the stop flag is checked again.
    private static let pollInterval: Duration = .milliseconds(100)

    let endpoint: RedisEndpoint
    let commands: [[String]]
    let logger: Logger
    let stopFlag: StopFlag
    let continuation: AsyncStream<RedisMessage>.Continuation

    private var backoff = Backoff()
    /// Whether the connection failed since the last successful subscription.
    private var recovering = false
    /// Whether the last message was dropped because the consumer is too slow.
    private var dropping = false

    init(
        endpoint: RedisEndpoint,
        commands: [[String]],
        logger: Logger,
        stopFlag: StopFlag,
        continuation: AsyncStream<RedisMessage>.Continuation
    ) {
        self.endpoint = endpoint
        self.commands = commands
        self.logger = logger
        self.stopFlag = stopFlag
        self.continuation = continuation
    }

    mutating func run() {
        while !stopFlag.isStopped {
            do throws(RedisError) {
                try listen()
            } catch {
                guard !stopFlag.isStopped else { break }
                let delay = backoff.next()
                recovering = true
                logger.warning(
                    "redis subscriber lost its connection", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
                pause(delay)
            }
        }
        continuation.finish()
    }

    /// Connects, subscribes and handles replies until stopped; throws when the connection fails.
    private mutating func listen() throws(RedisError) {
        let connection = try RedisConnection(
            endpoint: endpoint, connectTimeout: Self.connectTimeout, commandTimeout: Self.commandTimeout)
        try connection.send(commands)
        while !stopFlag.isStopped {
            guard let reply = try connection.nextReply(within: Self.pollInterval) else { continue }
            if let error = RedisError(setupReply: reply, address: connection.address, step: "the subscription") {
                throw error
            }
            handle(reply)
        }
    }

    private mutating func handle(_ reply: RedisValue) {
        guard let parts = reply.array, let kind = parts.first?.string else { return }
        switch (kind, parts.count) {
        case ("message", 3):
            deliver(RedisMessage(channel: Self.text(parts[1]), payload: Self.bytes(parts[2])))
        case ("pmessage", 4):
            deliver(
                RedisMessage(channel: Self.text(parts[2]), payload: Self.bytes(parts[3]), pattern: Self.text(parts[1])))
        case ("subscribe", _), ("psubscribe", _):
            if recovering {
                logger.info("redis subscriber subscribed again")
                recovering = false
            }
            backoff.reset()
        default:
            break
        }
    }

    private mutating func deliver(_ message: RedisMessage) {
        switch continuation.yield(message) {
        case .enqueued:
            dropping = false
        case .dropped:
            if !dropping {
                logger.warning("redis subscriber is dropping messages: the consumer is too slow")
                dropping = true
            }
        case .terminated:
            stopFlag.stop()
        @unknown default:
            break
        }
    }

    /// Sleeps for `duration`, waking early when stopped.
    private func pause(_ duration: Duration) {
        let deadline = ContinuousClock.now + duration
        while !stopFlag.isStopped, ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    private static func text(_ value: RedisValue) -> String {
        String(decoding: bytes(value), as: UTF8.self)
    }

    private static func bytes(_ value: RedisValue) -> [UInt8] {
        if case .bulk(let bytes) = value { bytes } else { [] }
    }
}
