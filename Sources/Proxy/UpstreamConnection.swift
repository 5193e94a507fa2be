import NIOCore

// MARK: - Upstream connection

/// The handler at the tail of one keep-alive connection to an upstream endpoint. It belongs to one event loop and
/// serves one exchange at a time: while leased it passes response parts to its `owner` (the client connection's
/// handler on the same loop) and lets the owner throttle its reads; while idle it sits in the loop's
/// `LoopContext` and leaves it when the upstream closes it.
///
/// Responses are read as bytes (`HTTPWire`): the head is parsed in place, the body is passed on as it arrives.
final class UpstreamConnection: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

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
    private var decoder: WireDecoder
    /// The current request is a HEAD request: its response has no body.
    private var expectNoBody = false
    /// Chunk data is passed on without its framing (for an HTTP/1.0 client).
    private var dechunk = false
    /// An informational (1xx) head was passed on: the end that follows it is not the response's.
    private var afterInformational = false
    private var isDelivering = false

    private init(stats: EndpointStats, maxHeadBytes: Int) {
        self.stats = stats
        self.decoder = WireDecoder(maxHeadBytes: maxHeadBytes)
    }

    /// Adds an `UpstreamConnection` to a new channel; it reads and writes bytes. Informational (1xx) responses are
    /// passed on, so `Expect: 100-continue` works through the proxy.
    static func configure(_ channel: any Channel, stats: EndpointStats, maxHeadBytes: Int) throws {
        try channel.pipeline.syncOperations.addHandler(UpstreamConnection(stats: stats, maxHeadBytes: maxHeadBytes))
    }

    // MARK: - Used by the owner

    /// Whether writes would currently be buffered below the high watermark.
    var isWritable: Bool { self.context?.channel.isWritable ?? false }

    /// Writes request bytes without flushing.
    func write(_ bytes: ByteBuffer) {
        self.context?.write(Self.wrapOutboundOut(bytes), promise: nil)
    }

    /// Prepares for the response to a new request.
    func beginExchange(isHead: Bool, dechunk: Bool) {
        self.expectNoBody = isHead
        self.dechunk = dechunk
        self.afterInformational = false
    }

    /// Whether the connection can carry another exchange: open, and nothing arrived beyond the last response.
    var isReusable: Bool { self.isOpen && self.decoder.bufferedBytes == 0 }

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
        guard self.owner != nil else {
            // An idle upstream has nothing to say: the connection is out of sync.
            self.close()
            return
        }
        self.decoder.append(Self.unwrapInboundIn(data))
        self.deliver()
    }

    /// Passes the response's parts to the owner as they are cut.
    private func deliver() {
        guard !self.isDelivering else { return }
        self.isDelivering = true
        defer { self.isDelivering = false }
        while let owner = self.owner {
            let part: WirePart<HTTPWire.ResponseHead>?
            do {
                let noBody = self.expectNoBody
                part = try self.decoder.next(dechunk: self.dechunk) { bytes throws(HTTPWire.ParseError) in
                    let head = try HTTPWire.parseResponse(bytes, noBody: noBody)
                    return (head, head.framing)
                }
            } catch {
                self.owner = nil
                owner.upstreamClosed(self, error: error)
                self.close()
                return
            }
            guard let part else { return }
            switch part {
            case .head(let head) where head.status < 200 && head.status != 101:
                self.afterInformational = true
            case .end where self.afterInformational:
                // The end of an informational response, not of the response the owner waits for.
                self.afterInformational = false
                continue
            default:
                break
            }
            owner.upstreamRead(part, from: self)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.owner?.upstreamReadComplete(from: self)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.isOpen = false
        if self.owner != nil, self.decoder.connectionClosed() {
            // A body that runs until the upstream closes has ended.
            self.deliver()
        }
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
