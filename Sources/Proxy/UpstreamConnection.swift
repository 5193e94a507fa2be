import NIOCore
import NIOHTTP1

// MARK: - Upstream connection

/// The handler at the tail of one keep-alive connection to an upstream endpoint. It belongs to one event loop and
/// serves one exchange at a time: while leased it passes response parts to its `owner` (the client connection's
/// handler on the same loop) and lets the owner throttle its reads; while idle it sits in the loop's
/// `LoopContext` and leaves it when the upstream closes it.
final class UpstreamConnection: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    /// The endpoint the connection goes to (its statistics object also keys the idle list).
    let stats: EndpointStats
    /// The exchange using the connection; `nil` while idle.
    var owner: ProxyConnectionHandler?
    /// The loop's idle list, set when the connection is first leased.
    var loop: LoopContext?
    /// Whether the connection sits in its loop's idle list.
    var isIdle = false
    /// When it last became idle.
    var idleSince = ContinuousClock.now
    /// `false` once the connection is closing or closed.
    private(set) var isOpen = true
    private var context: ChannelHandlerContext?
    private var readPending = false

    private init(stats: EndpointStats) {
        self.stats = stats
    }

    /// Adds the HTTP/1.1 client codec and an `UpstreamConnection` to a new channel. The response decoder forwards
    /// informational (1xx) responses, so `Expect: 100-continue` works through the proxy.
    static func configure(_ channel: any Channel, stats: EndpointStats) throws {
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(HTTPRequestEncoder())
        try sync.addHandler(
            ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .forward))
        )
        try sync.addHandler(UpstreamConnection(stats: stats))
    }

    // MARK: - Used by the owner

    /// Whether writes would currently be buffered below the high watermark.
    var isWritable: Bool { self.context?.channel.isWritable ?? false }

    /// Writes a request part without flushing.
    func write(_ part: HTTPClientRequestPart) {
        self.context?.write(Self.wrapOutboundOut(part), promise: nil)
    }

    /// Flushes written parts.
    func flush() {
        self.context?.flush()
    }

    /// Forgets the owner and closes the connection.
    func close() {
        self.owner = nil
        guard self.isOpen else { return }
        self.isOpen = false
        self.context?.close(promise: nil)
    }

    /// Issues a read the owner held back while the client was not writable.
    func resumeReading() {
        guard self.readPending, let context = self.context else { return }
        self.readPending = false
        context.read()
    }

    // MARK: - Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let owner = self.owner else {
            // An idle upstream has nothing to say: the connection is out of sync.
            self.close()
            return
        }
        owner.upstreamRead(Self.unwrapInboundIn(data), from: self)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.owner?.upstreamReadComplete(from: self)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.isOpen = false
        if let owner = self.owner {
            self.owner = nil
            owner.upstreamClosed(self, error: nil)
        } else if self.isIdle {
            self.loop?.removeIdle(self)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let owner = self.owner {
            self.owner = nil
            owner.upstreamClosed(self, error: error)
        }
        self.close()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.owner?.upstreamWritabilityChanged(self)
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if let owner = self.owner, !owner.clientIsWritable {
            self.readPending = true
        } else {
            context.read()
        }
    }
}

@available(*, unavailable)
extension UpstreamConnection: Sendable {}
