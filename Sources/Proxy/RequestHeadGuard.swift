import NIOCore
import NIOHTTP1

// MARK: - Request head guard

/// Bounds the bytes a client may send before its request head is complete. NIO's decoder limits header names and
/// values but buffers a request line of any length; this handler, placed before the decoder, counts raw bytes while
/// a head is awaited and raises `HTTPParserError.headerOverflow` (answered with 400) once they pass the limit.
final class RequestHeadGuard: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let limit: Int
    private var awaitingHead = true
    private var received = 0
    private var tripped = false

    init(limit: Int) {
        self.limit = limit
    }

    /// The proxy handler saw a request head.
    func headReceived() {
        self.awaitingHead = false
    }

    /// The proxy handler saw a request end: the next bytes belong to a new head.
    func requestEnded() {
        self.awaitingHead = true
        self.received = 0
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.tripped else { return }
        guard self.awaitingHead else {
            context.fireChannelRead(data)
            return
        }
        self.received += Self.unwrapInboundIn(data).readableBytes
        // Decoding may complete the head (and clear `awaitingHead`) while the bytes pass through.
        context.fireChannelRead(data)
        if self.awaitingHead, self.received > self.limit {
            self.tripped = true
            context.fireErrorCaught(HTTPParserError.headerOverflow)
        }
    }
}

@available(*, unavailable)
extension RequestHeadGuard: Sendable {}
