import ConfigCenter
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOHTTPTypes
import Registry

/// The agent's hottest reads — `GET /v1/kv/<key>` and `?raw` of a live key in the store's read cache, and service
/// lookups (`GET /v1/services/<name>` with `passing`, `tag`, `zone`) — answered on the connection's event loop,
/// before the request reaches Hummingbird's router.
///
/// Through the router a cached read costs about 50 µs of CPU, most of it in handing the request to a task on the
/// cooperative pool and the response back to the event loop; the answer itself is a cache lookup. This path makes
/// the same answer (`KVController.found`, `RegistryController.lookupAnswer`, the headers the middlewares add,
/// counted in the same HTTP metrics) and takes only what it can answer exactly like the router would: anything
/// else — other paths or parameters, blocking queries, escapes, a missing or deleted key, a key the cache does not
/// hold, a request with a body or `Connection: close` — goes on to the router unchanged.
public struct FastReads: Sendable {
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
        FastReadHandler(reads: self)
    }

    /// The answer to `head` and the route it counts under, or nil when the router must handle the request.
    func answer(_ head: HTTPRequest) -> (headers: HTTPFields, body: ByteBuffer, route: String)? {
        guard head.method == .get, let target = head.path else { return nil }
        // The router decodes escapes (and may read `+` as a space) and cuts off a fragment: leave those to it.
        guard !target.utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "#") || $0 == UInt8(ascii: "+") }) else {
            return nil
        }
        let path: Substring
        let query: Substring?
        if let question = target.firstIndex(of: "?") {
            path = target[..<question]
            query = target[target.index(after: question)...]
        } else {
            path = Substring(target)
            query = nil
        }
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
        guard let (fields, body) = answer else { return nil }
        var headers = fields
        headers[.contentLength] = String(body.readableBytes)
        ResponseMiddleware<AgentRequestContext>.addAgentHeaders(to: &headers, node: self.node, feed: self.store.feed)
        return (headers, body, route)
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

/// Sits after Hummingbird's HTTP codec: answers what `FastReads` can, passes everything else on.
///
/// Responses stay in request order: a request is only answered here when every request passed on before it has
/// been answered (the router's responses pass back through this handler, which counts their ends).
final class FastReadHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let reads: FastReads
    /// Requests passed on to the router whose response has not ended yet.
    private var passedOn = 0
    /// The rest of a request answered here (its end) is dropped.
    private var answered = false
    private var needsFlush = false
    private var date = HTTPDate()

    init(reads: FastReads) {
        self.reads = reads
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            let start = DispatchTime.now().uptimeNanoseconds
            if self.passedOn == 0, Self.isPlain(head), let (fields, body, route) = self.reads.answer(head) {
                var headers = fields
                headers[.date] = self.date.now()
                if let server = self.reads.serverName { headers[.server] = server }
                self.answered = true
                context.write(Self.wrapOutboundOut(.head(HTTPResponse(status: .ok, headerFields: headers))), promise: nil)
                context.write(Self.wrapOutboundOut(.body(body)), promise: nil)
                context.write(Self.wrapOutboundOut(.end(nil)), promise: nil)
                self.needsFlush = true
                self.reads.metrics?.record(
                    method: "GET", route: route, status: 200, nanoseconds: DispatchTime.now().uptimeNanoseconds &- start)
                return
            }
            self.passedOn += 1
            context.fireChannelRead(data)
        case .body:
            if !self.answered { context.fireChannelRead(data) }
        case .end:
            if self.answered {
                self.answered = false
            } else {
                context.fireChannelRead(data)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if self.needsFlush {
            self.needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = Self.unwrapOutboundIn(data) { self.passedOn -= 1 }
        context.write(data, promise: promise)
    }

    /// A request this path may take: no body, and a connection that stays open after it.
    private static func isPlain(_ head: HTTPRequest) -> Bool {
        if head.headerFields[.contentLength].map({ $0 != "0" }) ?? false { return false }
        if head.headerFields[.transferEncoding] != nil { return false }
        if let connection = head.headerFields[.connection], connection.lowercased().contains("close") { return false }
        return true
    }
}

@available(*, unavailable)
extension FastReadHandler: Sendable {}

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
