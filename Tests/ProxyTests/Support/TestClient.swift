import NIOCore
import NIOHTTP1
import NIOPosix

/// A response as the test client saw it.
struct TestResponse: Sendable {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: String
}

/// The test client could not finish in time.
struct TestTimeout: Error {}

/// Runs `body`, failing with `TestTimeout` after `seconds`. Every real-socket test goes through this.
func within<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            throw TestTimeout()
        }
        defer { group.cancelAll() }
        guard let result = try await group.next() else { throw TestTimeout() }
        return result
    }
}

/// One keep-alive HTTP/1.1 client connection, used inside `withHTTPConnection`.
final class HTTPConnection {
    private var inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>

    fileprivate init(
        inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>,
        outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>
    ) {
        self.inbound = inbound.makeAsyncIterator()
        self.outbound = outbound
    }

    /// Sends a request and reads its whole response.
    func send(
        _ uri: String, method: HTTPMethod = .GET, headers: [(String, String)] = [], body: String? = nil
    ) async throws -> TestResponse {
        try await self.sendHead(uri, method: method, headers: headers, body: body)
        guard case .head(let head) = try await self.next() else { throw TestTimeout() }
        var text = ""
        while true {
            switch try await self.next() {
            case .body(let buffer): text += String(buffer: buffer)
            case .end: return TestResponse(status: head.status, headers: head.headers, body: text)
            case .head: throw TestTimeout()
            }
        }
    }

    /// Sends a request without reading the response.
    func sendHead(_ uri: String, method: HTTPMethod = .GET, headers: [(String, String)] = [], body: String? = nil) async throws {
        var fields = HTTPHeaders(headers)
        if !fields.contains(name: "host") { fields.add(name: "Host", value: "test") }
        if let body { fields.add(name: "Content-Length", value: "\(body.utf8.count)") }
        try await self.outbound.write(.head(HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: fields)))
        if let body { try await self.outbound.write(.body(.byteBuffer(ByteBuffer(string: body)))) }
        try await self.outbound.write(.end(nil))
    }

    /// The next response part.
    func next() async throws -> HTTPClientResponsePart {
        guard let part = try await self.inbound.next() else { throw TestTimeout() }
        return part
    }
}

/// Opens an HTTP/1.1 connection to `127.0.0.1:port`, runs `body` with it and closes it.
func withHTTPConnection<T: Sendable>(port: Int, _ body: (HTTPConnection) async throws -> T) async throws -> T {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
            }
        }
    return try await channel.executeThenClose { inbound, outbound in
        try await body(HTTPConnection(inbound: inbound, outbound: outbound))
    }
}

/// Writes raw bytes to `127.0.0.1:port` and returns everything the server sends until it closes the connection.
func rawExchange(port: Int, _ request: String) async throws -> String {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    return try await channel.executeThenClose { inbound, outbound in
        do {
            try await outbound.write(ByteBuffer(string: request))
        } catch {
            // The server may close before it read everything; its answer is still readable.
        }
        var response = ""
        do {
            for try await chunk in inbound { response += String(buffer: chunk) }
        } catch {
            // A reset after the answer still leaves the answer.
        }
        return response
    }
}
