import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A small in-process HTTP/1.1 backend on 127.0.0.1 with a free port.
///
/// Paths: `/sse` streams three Server-Sent Events 300 ms apart and ends; `/hang` never answers; `/echo` answers
/// with the number of body bytes received; `/headers` answers with the request headers, one `name: value` line
/// each (names lowercased); anything else answers with the backend's id. Every answer carries `X-Backend: <id>`.
final class Backend: Sendable {
    let id: String
    /// Request heads received.
    let requests = Atomic<Int>(0)
    /// Connections accepted.
    let connections = Atomic<Int>(0)
    private let children = Mutex<[ObjectIdentifier: any Channel]>([:])
    private let server = Mutex<(any Channel)?>(nil)

    private init(id: String) {
        self.id = id
    }

    /// Starts a backend.
    static func start(id: String) async throws -> Backend {
        let backend = Backend(id: id)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    backend.track(channel)
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(BackendHandler(backend: backend))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        backend.server.withLock { $0 = channel }
        return backend
    }

    /// The listening port (0 once stopped).
    var port: Int {
        self.server.withLock { $0?.localAddress?.port ?? 0 }
    }

    /// Connections open now.
    var openConnections: Int {
        self.children.withLock { $0.count }
    }

    /// Closes the listener and every open connection, like a crashed process.
    func stop() async {
        let server = self.server.withLock { $0 }
        try? await server?.close()
        let children = self.children.withLock { Array($0.values) }
        for child in children { try? await child.close() }
    }

    private func track(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        self.children.withLock { $0[key] = channel }
        channel.closeFuture.whenComplete { _ in
            self.children.withLock { _ = $0.removeValue(forKey: key) }
        }
    }
}

/// Answers one request at a time on a backend connection.
private final class BackendHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let backend: Backend
    private var head: HTTPRequestHead?
    private var bodyBytes = 0

    init(backend: Backend) {
        self.backend = backend
    }

    func channelActive(context: ChannelHandlerContext) {
        self.backend.connections.add(1, ordering: .relaxed)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.backend.requests.add(1, ordering: .relaxed)
            self.head = head
            self.bodyBytes = 0
        case .body(let buffer):
            self.bodyBytes += buffer.readableBytes
        case .end:
            guard let head = self.head else { return }
            self.respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        switch path {
        case "/hang":
            return
        case "/sse":
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "text/event-stream")
            headers.add(name: "Cache-Control", value: "no-cache")
            headers.add(name: "X-Backend", value: self.backend.id)
            context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            self.sendEvent(1, of: 3, context: context)
        case "/echo":
            self.send("\(self.bodyBytes)", context: context)
        case "/headers":
            let lines = head.headers.map { "\($0.name.lowercased()): \($0.value)\n" }.joined()
            self.send(lines, context: context)
        default:
            self.send(self.backend.id, context: context)
        }
    }

    private func sendEvent(_ number: Int, of count: Int, context: ChannelHandlerContext) {
        let event = context.channel.allocator.buffer(string: "data: \(number)\n\n")
        context.writeAndFlush(Self.wrapOutboundOut(.body(.byteBuffer(event))), promise: nil)
        if number == count {
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
            return
        }
        context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(300)) {
            self.sendEvent(number + 1, of: count, context: context)
        }
    }

    private func send(_ body: String, context: ChannelHandlerContext) {
        let buffer = context.channel.allocator.buffer(string: body)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: "\(buffer.readableBytes)")
        headers.add(name: "X-Backend", value: self.backend.id)
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
    }
}
