import ConfigCenter
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTPTypes
import Registry

/// The agent's hottest requests, answered on the connection's event loop before they reach Hummingbird's router:
/// `GET /v1/kv/<key>` and `?raw` of a live key in the store's read cache, service lookups (`GET /v1/services/<name>`
/// with `passing`, `tag`, `zone`), and plain writes (`PUT /v1/kv/<key>`, with `cas` and `type` only).
///
/// Through the router a cached read costs about 50 µs of CPU and a put about 110, most of it in handing the request
/// to a task on the cooperative pool and the response back to the event loop. This path makes the same answers
/// (`KVController.found` and `written`, `RegistryController.lookupAnswer`, `APIError.rendered`, the headers the
/// middlewares add, counted in the same HTTP metrics) and takes only what it can answer exactly like the router
/// would: anything else — other paths or parameters, blocking queries, write concerns, escapes, a missing or deleted
/// key, a key the cache does not hold, a body without `Content-Length` or over the value limit, a reserved key,
/// `Expect`, `Connection: close` — goes on to the router unchanged. A put is committed with the other writes of its
/// group commit (`ConfigStore.put(_:value:contentType:cas:origin:completion:)`), so it is as durable as through the
/// router, and answered once committed.
public struct FastPath: Sendable {
    let store: ConfigStore
    let registry: RegistryRoutes?
    let node: String
    let serverName: String?
    let metrics: HTTPMetricsCache?

    /// The fast path for an agent's API; nil when requests are logged at debug level (only the router logs them).
    /// `registry` must be the one the router serves, so both share its encoded lookup answers.
    public init?(
        store: ConfigStore, registry: RegistryRoutes?, settings: ServerSettings, serverName: String?, metrics: HTTPMetricsCache?
    ) {
        guard settings.logger.logLevel > .debug else { return nil }
        self.store = store
        self.registry = registry
        self.node = settings.nodeName
        self.serverName = serverName
        self.metrics = metrics
    }

    /// A handler for one connection's pipeline (Hummingbird's `additionalChannelHandlers`).
    public func channelHandler() -> any RemovableChannelHandler {
        FastPathHandler(fast: self)
    }

    /// The answer to `head` and the route it counts under, or nil when the router must handle the request.
    func answer(_ head: HTTPRequest) -> (headers: HTTPFields, body: ByteBuffer, route: String)? {
        guard head.method == .get, let (path, query) = Self.plainTarget(head) else { return nil }
        let answer: (HTTPFields, ByteBuffer)?
        let route: String
        if path.utf8.starts(with: Self.kvPrefix.utf8) {
            answer = self.kv(key: path.dropFirst(Self.kvPrefix.utf8.count), query: query)
            route = Self.kvRoute
        } else if path.utf8.starts(with: Self.servicesPrefix.utf8), let registry = self.registry {
            answer = self.lookup(service: path.dropFirst(Self.servicesPrefix.utf8.count), query: query, registry: registry)
            route = Self.lookupRoute
        } else {
            return nil
        }
        guard let (headers, body) = answer else { return nil }
        return (headers, body, route)
    }

    /// The path and query of a request target the router would read as written: the router decodes escapes (and
    /// may read `+` as a space) and cuts off a fragment, so targets with those are left to it.
    private static func plainTarget(_ head: HTTPRequest) -> (path: Substring, query: Substring?)? {
        guard let target = head.path,
            !target.utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "#") || $0 == UInt8(ascii: "+") })
        else { return nil }
        guard let question = target.firstIndex(of: "?") else { return (Substring(target), nil) }
        return (target[..<question], target[target.index(after: question)...])
    }

    /// A `PUT /v1/kv/<key>` this path can take (see the type's documentation), ready to collect its body.
    func acceptPut(_ head: HTTPRequest, start: UInt64) -> FastPut? {
        guard head.method == .put, let (path, query) = Self.plainTarget(head), path.utf8.starts(with: Self.kvPrefix.utf8) else {
            return nil
        }
        let key = String(path.dropFirst(Self.kvPrefix.utf8.count))
        guard !key.isEmpty, (try? KVController.refuseReserved(key)) != nil else { return nil }
        let fields = head.headerFields
        guard let length = fields[.contentLength].flatMap({ Int($0) }), length >= 0, length <= self.store.settings.maxValueBytes,
            fields[.transferEncoding] == nil, fields[.expect] == nil, !Self.closes(fields)
        else { return nil }
        var cas: Int?
        var type: String?
        for parameter in query?.split(separator: "&", omittingEmptySubsequences: false) ?? [] {
            let pair = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pair.count == 2, !pair[1].isEmpty else { return nil }
            switch pair[0] {
            case "cas" where cas == nil && pair[1].utf8.count <= 18 && pair[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }):
                cas = Int(pair[1])
            case "type" where type == nil:
                type = String(pair[1])
            default:
                return nil
            }
        }
        return FastPut(
            key: key, contentType: type ?? KVController.contentType(fromMediaType: fields[.contentType]), cas: cas,
            author: fields[.gossamerAuthor].map { String($0.prefix(256)) }, length: length, start: start)
    }

    /// Commits `put` with `value`; `completion` gets the answer the router would send (status, headers, body).
    func write(
        _ put: FastPut, value: Data, client: String?,
        completion: @escaping @Sendable (HTTPResponse.Status, HTTPFields, ByteBuffer) -> Void
    ) {
        let origin = WriteOrigin(author: put.author, client: client)
        self.store.put(put.key, value: value, contentType: put.contentType, cas: put.cas, origin: origin) { result in
            switch result {
            case .success(let version):
                let (headers, body) = KVController.written(version)
                completion(.ok, headers, body)
            case .failure(let error):
                let api = error.apiError
                let (headers, body) = (try? api.rendered()) ?? ([.contentType: "application/json"], ByteBuffer())
                completion(api.status, headers, body)
            }
        }
    }

    /// Whether the request asks to close the connection after its response.
    static func closes(_ fields: HTTPFields) -> Bool {
        fields[.connection].map { $0.lowercased().contains("close") } ?? false
    }

    /// The headers every answer of this path carries besides its own: length, the agent's, `Date` and `Server`.
    func complete(_ headers: inout HTTPFields, bodyLength: Int, date: inout HTTPDate) {
        headers[.contentLength] = String(bodyLength)
        ResponseMiddleware<AgentRequestContext>.addAgentHeaders(to: &headers, node: self.node, feed: self.store.feed)
        headers[.date] = date.now()
        if let server = self.serverName { headers[.server] = server }
    }

    /// `GET /v1/kv/<key>` or `?raw`, of a live key the read cache holds.
    private func kv(key: Substring, query: Substring?) -> (HTTPFields, ByteBuffer)? {
        guard query == nil || query == "raw" || query == "raw=" else { return nil }
        let name = String(key)
        guard (try? ConfigKey.validate(name)) != nil, let version = self.store.cachedCurrent(name), !version.tombstone else {
            return nil
        }
        return KVController.found(version, raw: query != nil)
    }

    /// `GET /v1/services/<name>` with `passing`, `tag=` and `zone=` (no blocking query).
    private func lookup(service: Substring, query: Substring?, registry: RegistryRoutes) -> (HTTPFields, ByteBuffer)? {
        guard !service.contains("/"), let name = try? RegistryController.validServiceName(String(service)) else { return nil }
        var filter = LookupFilter()
        for parameter in query?.split(separator: "&", omittingEmptySubsequences: false) ?? [] {
            let pair = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            switch (pair[0], pair.count) {
            case ("passing", _): filter.passingOnly = true
            case ("tag", 2): filter.tags.append(String(pair[1]))
            case ("zone", 2): filter.zone = String(pair[1])
            default: return nil
            }
        }
        return try? RegistryController.lookupAnswer(registry.registry, registry.answers, service: name, filter: filter)
    }

    static let kvPrefix = "/v1/kv/"
    static let servicesPrefix = "/v1/services/"
    /// The route patterns the router counts these requests under.
    static let kvRoute = "/v1/kv/**"
    static let lookupRoute = "/v1/services/{service}"
}

/// A `PUT` taken by `FastPath`: what it writes, and when it arrived.
struct FastPut {
    var key: String
    var contentType: String?
    var cas: Int?
    var author: String?
    /// The body's `Content-Length`.
    var length: Int
    var start: UInt64
}

/// Sits after Hummingbird's HTTP codec: answers what `FastPath` can, passes everything else on.
///
/// Responses stay in request order: a request is only taken here when every request passed on before it has been
/// answered (the router's responses pass back through this handler, which counts their ends); while a put taken
/// here is being committed, the parts of later requests wait in the handler, and reading stops until it is answered.
final class FastPathHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let fast: FastPath
    /// Requests passed on to the router whose response has not ended yet.
    private var passedOn = 0
    /// The rest of a request answered here (its end) is dropped.
    private var answered = false
    /// A put taken here whose body is arriving.
    private var put: FastPut?
    private var putBody = ByteBuffer()
    /// A put taken here is being committed.
    private var writing = false
    /// Parts that arrived while a put was being committed, handled once it is answered.
    private var held = CircularBuffer<HTTPRequestPart>()
    private var readHeld = false
    private var isActive = true
    private var needsFlush = false
    private var date = HTTPDate()

    init(fast: FastPath) {
        self.fast = fast
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = Self.unwrapInboundIn(data)
        if self.writing || !self.held.isEmpty {
            self.held.append(part)
            return
        }
        self.handle(part, context: context)
    }

    private func handle(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            let start = DispatchTime.now().uptimeNanoseconds
            if self.passedOn == 0, Self.isPlain(head), let (fields, body, route) = self.fast.answer(head) {
                self.answered = true
                self.respond(.ok, headers: fields, body: body, method: "GET", route: route, start: start, context: context)
                return
            }
            if self.passedOn == 0, let put = self.fast.acceptPut(head, start: start) {
                self.put = put
                self.putBody = context.channel.allocator.buffer(capacity: put.length)
                return
            }
            self.passedOn += 1
            context.fireChannelRead(Self.wrapInboundOut(part))
        case .body(var buffer):
            if self.put != nil {
                self.putBody.writeBuffer(&buffer)
            } else if !self.answered {
                context.fireChannelRead(Self.wrapInboundOut(part))
            }
        case .end:
            if let put = self.put {
                self.put = nil
                self.commit(put, context: context)
            } else if self.answered {
                self.answered = false
            } else {
                context.fireChannelRead(Self.wrapInboundOut(part))
            }
        }
    }

    private func commit(_ put: FastPut, context: ChannelHandlerContext) {
        self.writing = true
        let value = Data(buffer: self.putBody)
        self.putBody = ByteBuffer()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.fast.write(put, value: value, client: context.channel.remoteAddress?.ipAddress) { status, headers, body in
            bound.eventLoop.execute {
                let (handler, context) = bound.value
                handler.written(put, status: status, headers: headers, body: body, context: context)
            }
        }
    }

    /// Answers a committed (or refused) put, then handles what arrived meanwhile.
    private func written(_ put: FastPut, status: HTTPResponse.Status, headers: HTTPFields, body: ByteBuffer, context: ChannelHandlerContext) {
        self.writing = false
        guard self.isActive else { return }
        self.respond(status, headers: headers, body: body, method: "PUT", route: FastPath.kvRoute, start: put.start, context: context)
        var replayed = false
        while !self.writing, let part = self.held.popFirst() {
            self.handle(part, context: context)
            replayed = true
        }
        // Parts passed on are delivered by the next handler at the end of a read burst: close the replayed one.
        if replayed { context.fireChannelReadComplete() }
        if self.needsFlush {
            self.needsFlush = false
            context.flush()
        }
        if !self.writing, self.readHeld {
            self.readHeld = false
            context.read()
        }
    }

    private func respond(
        _ status: HTTPResponse.Status, headers: HTTPFields, body: ByteBuffer, method: String, route: String, start: UInt64,
        context: ChannelHandlerContext
    ) {
        var headers = headers
        self.fast.complete(&headers, bodyLength: body.readableBytes, date: &self.date)
        context.write(Self.wrapOutboundOut(.head(HTTPResponse(status: status, headerFields: headers))), promise: nil)
        context.write(Self.wrapOutboundOut(.body(body)), promise: nil)
        context.write(Self.wrapOutboundOut(.end(nil)), promise: nil)
        self.needsFlush = true
        self.fast.metrics?.record(
            method: method, route: route, status: Int(status.code), nanoseconds: DispatchTime.now().uptimeNanoseconds &- start)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if self.needsFlush {
            self.needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.isActive = false
        self.held.removeAll()
        context.fireChannelInactive()
    }

    func read(context: ChannelHandlerContext) {
        if self.writing || !self.held.isEmpty {
            self.readHeld = true
        } else {
            context.read()
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = Self.unwrapOutboundIn(data) { self.passedOn -= 1 }
        context.write(data, promise: promise)
    }

    /// A request a read may be answered for: no body, and a connection that stays open after it.
    private static func isPlain(_ head: HTTPRequest) -> Bool {
        if head.headerFields[.contentLength].map({ $0 != "0" }) ?? false { return false }
        if head.headerFields[.transferEncoding] != nil { return false }
        return !FastPath.closes(head.headerFields)
    }
}

@available(*, unavailable)
extension FastPathHandler: Sendable {}

/// The `Date` header's IMF-fixdate, formatted once per second.
struct HTTPDate {
    private var second = 0
    private var text = ""

    mutating func now() -> String {
        let now = time(nil)
        if now != self.second || self.text.isEmpty {
            self.second = now
            self.text = Self.format(now)
        }
        return self.text
    }

    /// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 §5.6.7), without locale or ICU.
    static func format(_ seconds: Int) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : String(value) }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
