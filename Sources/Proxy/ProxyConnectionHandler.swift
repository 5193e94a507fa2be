import LoadBalancer
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

// MARK: - Client connection handler

/// Drives the exchanges of one client connection, one request at a time, entirely on the connection's event loop.
///
/// An exchange: route the request head, pick an endpoint, lease an idle upstream connection or connect a new one,
/// stream the request up and the response down with backpressure both ways, then return the upstream connection
/// to the loop's idle list. A failed attempt counts against its endpoint and may be retried on the next one. One
/// timer per connection serves both the request timeout (no response head in time) and the client idle timeout.
///
/// Messages travel as bytes (`HTTPWire`): the request head is parsed in place and rewritten by copying its field
/// lines, bodies and responses are forwarded as the slices that arrived. Pipelined requests stay unparsed in the
/// decoder until the response before them has ended; reads stop only while such bytes wait.
final class ProxyConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        /// Waiting for a request head.
        case idle
        /// An admin request, answered when it ends.
        case admin(AdminEndpoints.Target)
        /// An exchange with an upstream is in progress.
        case proxying
        /// The response is complete; the rest of the request body is dropped.
        case discarding
        /// The connection is closing.
        case closed
    }

    /// Why an attempt failed.
    private enum Failure {
        /// The TCP connect failed or timed out: nothing was sent.
        case connect
        /// The connection failed or closed before the response head.
        case connection
        /// No response head within `requestTimeout`.
        case timeout
    }

    private let shared: ProxyShared
    private let loop: LoopContext
    private var decoder: WireDecoder
    private var isDecoding = false
    private var context: ChannelHandlerContext?
    private var state = State.idle
    private var clientIP: String?

    // Request (client side).
    /// 0 for an HTTP/1.0 client, 1 for HTTP/1.1.
    private var clientMinor = 1
    private var clientKeepAlive = true
    private var requestIsHead = false
    private var requestEnded = false
    private var closeAfterResponse = false
    private var readPending = false
    /// Set by graceful shutdown: close once the current response ends.
    private var quiescing = false

    // Exchange (upstream side).
    private var pool: UpstreamPool?
    private var upstreamHead: ByteBuffer?
    private var isIdempotent = false
    private var retriesLeft = 0
    private var pick: Pick?
    private var endpoint: EndpointStats?
    private var upstream: UpstreamConnection?
    /// Bumped by every attempt and by the end of an exchange, so a late connect result is recognised.
    private var attempt: UInt64 = 0
    private var attemptStart = ContinuousClock.now
    private var pendingBody = CircularBuffer<ByteBuffer>(initialCapacity: 4)
    private var headWritten = false
    private var bodyWritten = false
    private var endWritten = false
    private var upstreamNeedsFlush = false
    private var clientNeedsFlush = false
    private var upstreamKeepAlive = true
    private var responseStarted = false
    private var statsCache: (pool: ObjectIdentifier, stats: SnapshotStats)?

    // Timer.
    private var deadline: ContinuousClock.Instant?
    private var timer: Scheduled<Void>?

    private init(shared: ProxyShared, loop: LoopContext) {
        self.shared = shared
        self.loop = loop
        self.decoder = WireDecoder(maxHeadBytes: shared.settings.maxHeaderBytes)
    }

    /// Sets up a client connection: this handler alone, reading and writing bytes.
    static func configure(_ channel: any Channel, loop: LoopContext, shared: ProxyShared) throws {
        try channel.pipeline.syncOperations.addHandler(ProxyConnectionHandler(shared: shared, loop: loop))
    }

    // MARK: - Used by the loop and upstream connections

    /// Whether the client connection accepts writes without buffering past the high watermark.
    var clientIsWritable: Bool { self.context?.channel.isWritable ?? true }

    /// Asks the connection to close after its current response, or now when it is idle (graceful shutdown).
    func quiesce() {
        self.quiescing = true
        if case .idle = self.state, self.decoder.bufferedBytes == 0 {
            self.state = .closed
            self.context?.close(promise: nil)
        } else {
            self.closeAfterResponse = true
        }
    }

    /// Closes the client connection now.
    func close() {
        self.context?.close(promise: nil)
    }

    // MARK: - Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        self.loop.register(self)
        let now = ContinuousClock.now
        self.setDeadline(now + self.shared.settings.clientIdleTimeout, now: now)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.state = .closed
        self.timer?.cancel()
        self.timer = nil
        self.deadline = nil
        self.decoder.breakDown()
        self.abandonExchange()
        self.loop.unregister(self)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.decoder.append(Self.unwrapInboundIn(data))
        self.decodeRequests()
    }

    /// Cuts and handles request parts while the current exchange can take them: a request that follows one whose
    /// response has not ended stays in the decoder, unparsed, until that response ends.
    private func decodeRequests() {
        guard !self.isDecoding, let context = self.context else { return }
        self.isDecoding = true
        defer { self.isDecoding = false }
        while true {
            switch self.state {
            case .closed:
                return
            case .proxying, .admin:
                if self.requestEnded {
                    self.resumeClientReads()
                    return
                }
            case .idle, .discarding:
                break
            }
            let part: WirePart<HTTPWire.RequestHead>?
            do {
                part = try self.decoder.next { bytes throws(HTTPWire.ParseError) in
                    let head = try HTTPWire.parseRequest(bytes)
                    return (head, head.framing)
                }
            } catch {
                self.decoder.breakDown()
                self.malformedRequest(error, context: context)
                return
            }
            guard let part else { break }
            switch part {
            case .head(let head): self.requestHead(head, context: context)
            case .body(let buffer): self.requestBody(buffer)
            case .end: self.requestEnd(context: context)
            }
        }
        self.resumeClientReads()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.flushUpstreamIfNeeded()
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A socket error: the connection is gone.
        context.close(promise: nil)
    }

    /// Answers a request the decoder rejected with 400 and closes the connection.
    private func malformedRequest(_ error: any Error, context: ChannelHandlerContext) {
        switch self.state {
        case .closed:
            return
        case .discarding:
            // This request was answered already; a second response would be out of step.
            self.state = .closed
            context.close(promise: nil)
            return
        case .idle, .admin, .proxying:
            break
        }
        // Malformed request: nothing unflushed may reach the upstream, and the connection cannot be trusted after.
        self.abandonExchange()
        if self.responseStarted {
            self.state = .closed
            context.close(promise: nil)
            return
        }
        self.closeAfterResponse = true
        self.respond(status: .badRequest, code: "bad_request", message: "malformed HTTP request: \(error)")
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { self.upstream?.resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if self.shouldHoldClientReads {
            self.readPending = true
        } else {
            context.read()
        }
    }

    // MARK: - Request parts

    private func requestHead(_ head: HTTPWire.RequestHead, context: ChannelHandlerContext) {
        guard case .idle = self.state else { return }
        self.clientMinor = head.head.minorVersion
        self.clientKeepAlive = head.keepAlive
        self.requestIsHead = head.method == "HEAD"
        self.requestEnded = false
        self.closeAfterResponse = self.quiescing
        self.responseStarted = false
        if head.method == "CONNECT" {
            self.state = .discarding
            self.closeAfterResponse = true
            self.respond(status: .methodNotAllowed, code: "method_not_allowed", message: "CONNECT is not supported")
            return
        }
        if head.isUpgrade {
            // Upgrades are not proxied (the fields are hop-by-hop); the connection serves no further request, as a
            // client that asked to switch protocols may send anything next.
            self.closeAfterResponse = true
        }
        let now = ContinuousClock.now
        if AdminEndpoints.isAdmin(head.uri) {
            self.state = .admin(AdminEndpoints.target(method: head.method, uri: head.uri))
            return
        }
        guard let route = self.shared.routes.match(head.uri) else {
            self.state = .discarding
            self.respond(status: .notFound, code: "not_found", message: "no route for this path")
            return
        }
        self.state = .proxying
        self.pool = route.pool
        let clientIP = self.clientAddress(context)
        let uri = route.stripPrefix ? RouteTable.strip(prefix: route.pathPrefix, from: head.uri) : head.uri
        self.upstreamHead = HeaderRewriting.upstreamRequest(
            head, uri: uri, clientIP: clientIP, allocator: context.channel.allocator)
        switch head.method {
        case "GET", "HEAD", "PUT", "DELETE", "OPTIONS": self.isIdempotent = true
        default: self.isIdempotent = false
        }
        self.retriesLeft = self.shared.settings.retries
        self.bodyWritten = false
        self.setDeadline(now + self.shared.settings.requestTimeout, now: now)
        let hashKey =
            route.pool.settings.strategy == .consistentHash
            ? HeaderRewriting.hashKey(self.shared.settings.hashKey, request: head, clientIP: clientIP) : nil
        guard let pick = route.pool.pick(hashKey: hashKey, now: now) else {
            route.pool.recordNoUpstream()
            self.respond(
                status: .serviceUnavailable, code: "no_upstream",
                message: "pool \(route.pool.name) has no available upstream")
            return
        }
        self.startAttempt(pick, now: now, flush: false)
    }

    private func requestBody(_ buffer: ByteBuffer) {
        guard case .proxying = self.state else { return }
        if let upstream = self.upstream, self.headWritten {
            upstream.write(buffer)
            self.bodyWritten = true
            self.upstreamNeedsFlush = true
        } else {
            self.pendingBody.append(buffer)
        }
    }

    private func requestEnd(context: ChannelHandlerContext) {
        self.requestEnded = true
        switch self.state {
        case .proxying:
            // The body's bytes (chunk framing and trailers included) are written already: the end adds none.
            if self.upstream != nil, self.headWritten { self.endWritten = true }
            // Flush now: a pipelined request is decoded when a response ends, with no read-complete to follow.
            self.flushUpstreamIfNeeded()
        case .discarding:
            self.becomeIdle()
        case .admin(let target):
            let (status, contentType, body) = AdminEndpoints.response(for: target, pools: self.shared.routes.pools)
            self.respond(status: status, contentType: contentType, body: body)
        case .idle, .closed:
            break
        }
    }

    // MARK: - Attempts

    private func startAttempt(_ pick: Pick, now: ContinuousClock.Instant, flush: Bool) {
        guard let pool = self.pool else { return }
        self.attempt &+= 1
        self.pick = pick
        let endpoint = self.stats(for: pick, pool: pool)
        self.endpoint = endpoint
        pick.counter.increment()
        self.attemptStart = now
        self.headWritten = false
        self.endWritten = false
        if let connection = self.loop.takeIdle(for: endpoint) {
            self.attach(connection, flush: flush)
        } else {
            self.connect(to: endpoint)
        }
    }

    private func connect(to endpoint: EndpointStats) {
        guard let context = self.context else { return }
        let attempt = self.attempt
        let maxHeadBytes = self.shared.settings.maxHeaderBytes
        let bootstrap = ClientBootstrap(group: context.eventLoop)
            .connectTimeout(self.shared.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try UpstreamConnection.configure(channel, stats: endpoint, maxHeadBytes: maxHeadBytes)
                }
            }
        let connected =
            endpoint.socketAddress.map { bootstrap.connect(to: $0) }
            ?? bootstrap.connect(host: endpoint.address.host, port: endpoint.address.port)
        connected.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let channel):
                guard let connection = try? channel.pipeline.syncOperations.handler(type: UpstreamConnection.self) else {
                    channel.close(promise: nil)
                    return
                }
                if attempt == self.attempt, case .proxying = self.state {
                    self.attach(connection, flush: true)
                } else {
                    // The exchange moved on; the fresh connection is still good for the next one.
                    self.loop.release(connection)
                }
            case .failure(let error):
                guard attempt == self.attempt, case .proxying = self.state else { return }
                self.attemptFailed(.connect, error: error)
            }
        }
    }

    /// Gives the exchange its upstream connection and sends what the client has sent so far.
    private func attach(_ connection: UpstreamConnection, flush: Bool) {
        guard let head = self.upstreamHead else { return }
        self.upstream = connection
        connection.owner = self
        connection.loop = self.loop
        connection.beginExchange(isHead: self.requestIsHead, dechunk: self.clientMinor == 0)
        connection.write(head)
        self.headWritten = true
        while let body = self.pendingBody.popFirst() {
            connection.write(body)
            self.bodyWritten = true
        }
        if self.requestEnded { self.endWritten = true }
        self.upstreamNeedsFlush = true
        if flush { self.flushUpstreamIfNeeded() }
        self.resumeClientReads()
    }

    /// Counts the failure against the endpoint, then retries on the next endpoint when allowed or answers 502/504.
    private func attemptFailed(_ failure: Failure, error: (any Error)?) {
        let now = ContinuousClock.now
        if let upstream = self.upstream {
            self.upstream = nil
            upstream.close()
        }
        guard let pool = self.pool, let endpoint = self.endpoint else { return }
        pool.recordFailure(endpoint, now: now)
        let previous = self.pick
        self.pick?.counter.decrement()
        self.pick = nil
        self.shared.logger.debug(
            "upstream attempt failed",
            metadata: [
                "lb.pool": "\(pool.name)", "lb.endpoint": "\(endpoint.id)", "lb.failure": "\(failure)",
                "lb.error": "\(error.map { "\($0)" } ?? "closed")",
            ]
        )
        let retryable: Bool
        switch failure {
        case .connect: retryable = true
        case .connection: retryable = self.isIdempotent && !self.bodyWritten
        case .timeout: retryable = false
        }
        if retryable, self.retriesLeft > 0, let previous, let next = pool.balancer.retryPick(after: previous) {
            self.retriesLeft -= 1
            self.startAttempt(next, now: now, flush: true)
            return
        }
        switch failure {
        case .timeout:
            endpoint.recordResponse(status: 504)
            self.respond(status: .gatewayTimeout, code: "upstream_timeout", message: "the upstream did not answer in time")
        case .connect:
            endpoint.recordResponse(status: 502)
            self.respond(status: .badGateway, code: "bad_gateway", message: "cannot connect to the upstream")
        case .connection:
            endpoint.recordResponse(status: 502)
            self.respond(status: .badGateway, code: "bad_gateway", message: "the upstream closed the connection before responding")
        }
    }

    // MARK: - Upstream events

    /// A response part from the exchange's upstream connection.
    func upstreamRead(_ part: WirePart<HTTPWire.ResponseHead>, from connection: UpstreamConnection) {
        guard connection === self.upstream, let context = self.context else { return }
        switch part {
        case .head(let head):
            if head.status < 200, head.status != 101 {
                // Informational (100 Continue): pass it on (never to HTTP/1.0 clients) and wait for the final head.
                if self.clientMinor > 0 {
                    let informational = HeaderRewriting.clientResponse(
                        head, minorVersion: self.clientMinor, close: false, dechunk: false, allocator: context.channel.allocator)
                    context.writeAndFlush(Self.wrapOutboundOut(informational), promise: nil)
                }
                return
            }
            let now = ContinuousClock.now
            self.responseStarted = true
            self.deadline = nil
            if let endpoint = self.endpoint {
                endpoint.recordLatency(self.attemptStart.duration(to: now))
                endpoint.recordResponse(status: UInt(head.status))
                self.pool?.recordSuccess(endpoint, now: now)
            }
            // After a 101 the upstream speaks another protocol: neither connection can carry another request.
            self.upstreamKeepAlive = head.keepAlive && head.status != 101
            // A body that ends when the upstream closes reaches the client the same way; an HTTP/1.0 client gets a
            // chunked body without its framing, which also ends with the connection.
            let dechunk = self.clientMinor == 0 && head.framing == .chunked
            if !self.clientKeepAlive || head.status == 101 || head.framing == .untilClose || dechunk {
                self.closeAfterResponse = true
            }
            let response = HeaderRewriting.clientResponse(
                head, minorVersion: self.clientMinor, close: self.closeAfterResponse, dechunk: dechunk,
                allocator: context.channel.allocator)
            context.write(Self.wrapOutboundOut(response), promise: nil)
            self.clientNeedsFlush = true
        case .body(let buffer):
            context.write(Self.wrapOutboundOut(buffer), promise: nil)
            self.clientNeedsFlush = true
        case .end:
            self.upstreamResponseEnded()
        }
    }

    /// The upstream connection finished a read burst: push what it produced to the client.
    func upstreamReadComplete(from connection: UpstreamConnection) {
        guard connection === self.upstream, self.clientNeedsFlush else { return }
        self.clientNeedsFlush = false
        self.context?.flush()
    }

    /// The upstream connection failed or closed before the response ended.
    func upstreamClosed(_ connection: UpstreamConnection, error: (any Error)?) {
        guard connection === self.upstream, case .proxying = self.state else { return }
        self.upstream = nil
        if !self.responseStarted {
            self.attemptFailed(.connection, error: error)
            return
        }
        // Mid-body: the response cannot be completed, so the client connection is closed to signal it.
        if let pool = self.pool, let endpoint = self.endpoint { pool.recordFailure(endpoint, now: .now) }
        self.pick?.counter.decrement()
        self.pick = nil
        self.state = .closed
        self.context?.close(promise: nil)
    }

    /// The upstream connection's writability changed: resume the client's request body when it can take more.
    func upstreamWritabilityChanged(_ connection: UpstreamConnection) {
        guard connection === self.upstream, connection.isWritable else { return }
        self.resumeClientReads()
    }

    private func upstreamResponseEnded() {
        if let connection = self.upstream {
            self.upstream = nil
            if self.upstreamKeepAlive, self.endWritten, connection.isReusable {
                self.loop.release(connection)
            } else {
                connection.close()
            }
        }
        self.pick?.counter.decrement()
        self.pick = nil
        self.writeResponseEnd()
    }

    // MARK: - Responses

    /// Answers the current request with a proxy-generated response (JSON error or admin page) when no response has
    /// started; otherwise closes the connection.
    private func respond(status: HTTPResponseStatus, code: String, message: String) {
        self.respond(status: status, contentType: "application/json", body: ErrorBody.json(code: code, message: message))
    }


    private func respond(status: HTTPResponseStatus, contentType: String, body: String) {
        guard let context = self.context, !self.responseStarted else {
            self.state = .closed
            self.context?.close(promise: nil)
            return
        }
        if let upstream = self.upstream {
            self.upstream = nil
            upstream.close()
        }
        self.pick?.counter.decrement()
        self.pick = nil
        self.responseStarted = true
        self.deadline = nil
        if !self.clientKeepAlive { self.closeAfterResponse = true }
        let response = HeaderRewriting.localResponse(
            minorVersion: self.clientMinor, status: Int(status.code), reason: status.reasonPhrase, contentType: contentType,
            body: body, close: self.closeAfterResponse, omitBody: self.requestIsHead, allocator: context.channel.allocator)
        context.write(Self.wrapOutboundOut(response), promise: nil)
        self.writeResponseEnd()
    }

    /// Ends the response to the client and moves on: idle for the next request (handling any it already sent),
    /// discarding the rest of this one, or closing.
    private func writeResponseEnd() {
        guard let context = self.context else { return }
        let close = self.closeAfterResponse
        self.clientNeedsFlush = false
        self.endExchange()
        if close {
            self.state = .closed
            self.decoder.breakDown()
            let written = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer()), promise: written)
            written.futureResult.assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
            return
        }
        context.flush()
        if self.requestEnded {
            self.becomeIdle()
        } else {
            self.state = .discarding
            self.setDeadline(ContinuousClock.now + self.shared.settings.clientIdleTimeout, now: .now)
            self.resumeClientReads()
        }
    }

    // MARK: - Exchange bookkeeping

    /// Clears the exchange's fields after its response ended.
    private func endExchange() {
        self.attempt &+= 1
        self.pool = nil
        self.upstreamHead = nil
        self.endpoint = nil
        self.pendingBody.removeAll(keepingCapacity: true)
        self.upstreamNeedsFlush = false
        self.responseStarted = false
    }

    /// Drops an exchange the client abandoned (closed, or sent garbage): closes its upstream connection and
    /// releases its in-flight count without blaming the endpoint.
    private func abandonExchange() {
        self.attempt &+= 1
        if let upstream = self.upstream {
            self.upstream = nil
            upstream.close()
        }
        self.pick?.counter.decrement()
        self.pick = nil
        self.pendingBody.removeAll()
        self.upstreamNeedsFlush = false
    }

    private func becomeIdle() {
        if self.quiescing {
            self.state = .closed
            self.context?.close(promise: nil)
            return
        }
        self.state = .idle
        self.setDeadline(ContinuousClock.now + self.shared.settings.clientIdleTimeout, now: .now)
        self.decodeRequests()
    }

    private func flushUpstreamIfNeeded() {
        guard self.upstreamNeedsFlush else { return }
        self.upstreamNeedsFlush = false
        self.upstream?.flush()
    }

    /// Reads wait while a pipelined request waits in the decoder, and while the request body has no writable upstream
    /// connection to go to.
    private var shouldHoldClientReads: Bool {
        switch self.state {
        case .proxying, .admin:
            // The next request waits in the decoder until this response ends.
            if self.requestEnded { return self.decoder.bufferedBytes > 0 }
        case .idle, .discarding, .closed:
            return false
        }
        guard case .proxying = self.state else { return false }
        guard let upstream = self.upstream else { return true }
        return !upstream.isWritable
    }

    private func resumeClientReads() {
        guard self.readPending, !self.shouldHoldClientReads, let context = self.context else { return }
        self.readPending = false
        context.read()
    }

    /// The statistics of the picked endpoint, from a per-connection cache of the pool's current snapshot.
    private func stats(for pick: Pick, pool: UpstreamPool) -> EndpointStats {
        let id = ObjectIdentifier(pool)
        if let cache = self.statsCache, cache.pool == id, cache.stats.generation == pick.snapshot.generation {
            return cache.stats.stats[pick.index]
        }
        let stats = pool.stats(for: pick.snapshot)
        self.statsCache = (id, stats)
        return stats.stats[pick.index]
    }

    private func clientAddress(_ context: ChannelHandlerContext) -> String {
        if let clientIP = self.clientIP { return clientIP }
        let address = context.channel.remoteAddress?.ipAddress ?? "unknown"
        self.clientIP = address
        return address
    }

    // MARK: - Timer

    /// Sets the pending deadline (request timeout or client idle timeout). The timer wakes at most every
    /// `timerPeriod`, which no deadline is shorter than, so a running timer always wakes before a new deadline.
    private func setDeadline(_ deadline: ContinuousClock.Instant, now: ContinuousClock.Instant) {
        self.deadline = deadline
        if self.timer == nil { self.armTimer(now: now) }
    }

    private func armTimer(now: ContinuousClock.Instant) {
        guard let deadline = self.deadline, let context = self.context else { return }
        let wake = min(deadline, now + self.shared.timerPeriod)
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(now.duration(to: wake).nanoseconds)) {
            self.timerFired()
        }
    }

    private func timerFired() {
        self.timer = nil
        let now = ContinuousClock.now
        if let deadline = self.deadline, deadline <= now {
            self.deadline = nil
            switch self.state {
            case .proxying where !self.responseStarted:
                self.attemptFailed(.timeout, error: nil)
            case .idle, .discarding, .admin:
                // Client idle timeout (or a request head / body that never completes).
                self.state = .closed
                self.context?.close(promise: nil)
            case .proxying, .closed:
                break
            }
        }
        if self.deadline != nil, self.timer == nil { self.armTimer(now: now) }
    }
}

@available(*, unavailable)
extension ProxyConnectionHandler: Sendable {}
