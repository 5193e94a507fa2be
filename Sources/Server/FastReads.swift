import ConfigCenter
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOHTTPTypes

/// The agent's hottest read — `GET /v1/kv/<key>` and `GET /v1/kv/<key>?raw` of a live key in the store's read cache
/// — answered on the connection's event loop, before the request reaches Hummingbird's router.
///
/// Through the router a cached read costs about 50 µs of CPU, most of it in handing the request to a task on the
/// cooperative pool and the response back to the event loop; the answer itself is a cache lookup. This path makes
/// the same answer (`KVController.found`, the same headers the middlewares add, counted in the same HTTP metrics)
/// and takes only what it can answer exactly like the router would: anything else — other paths or parameters,
/// percent-escapes, a missing or deleted key, a key the cache does not hold, a request with a body or
/// `Connection: close` — goes on to the router unchanged.
public struct FastReads: Sendable {
    let store: ConfigStore
    let node: String
    let serverName: String?
    let metrics: HTTPMetricsCache?

    /// The fast path for an agent's API; nil when requests are logged at debug level (only the router logs them).
    public init?(store: ConfigStore, settings: ServerSettings, serverName: String?, metrics: HTTPMetricsCache?) {
        guard settings.logger.logLevel > .debug else { return nil }
        self.store = store
        self.node = settings.nodeName
        self.serverName = serverName
        self.metrics = metrics
    }

    /// A handler for one connection's pipeline (Hummingbird's `additionalChannelHandlers`).
    public func channelHandler() -> any RemovableChannelHandler {
        FastReadHandler(reads: self)
    }

    /// The answer to `head`, or nil when the router must handle the request.
    func answer(_ head: HTTPRequest) -> (HTTPFields, ByteBuffer)? {
        guard head.method == .get, let target = head.path, target.utf8.starts(with: Self.kvPrefix) else { return nil }
        var key = Substring(target).dropFirst(Self.kvPrefix.count)
        var raw = false
        if let question = key.utf8.firstIndex(of: UInt8(ascii: "?")) {
            let query = key[key.index(after: question)...]
            guard query == "raw" || query == "raw=" else { return nil }
            raw = true
            key = key[..<question]
        }
        // Escapes are decoded, and a fragment is cut off, by the router: leave those to it.
        guard !key.utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "#") }) else { return nil }
        let name = String(key)
        guard (try? ConfigKey.validate(name)) != nil, let version = self.store.cachedCurrent(name), !version.tombstone else {
            return nil
        }
        var (headers, body) = KVController.found(version, raw: raw)
        headers[.contentLength] = String(body.readableBytes)
        headers[.gossamerNode] = self.node
        headers[.gossamerRevision] = String(self.store.feed.revision)
        return (headers, body)
    }

    static let kvPrefix = "/v1/kv/".utf8
    /// The route pattern the router counts these requests under.
    static let kvRoute = "/v1/kv/**"
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
            if self.passedOn == 0, Self.isPlain(head), let (fields, body) = self.reads.answer(head) {
                var headers = fields
                headers[.date] = self.date.now()
                if let server = self.reads.serverName { headers[.server] = server }
                self.answered = true
                context.write(Self.wrapOutboundOut(.head(HTTPResponse(status: .ok, headerFields: headers))), promise: nil)
                context.write(Self.wrapOutboundOut(.body(body)), promise: nil)
                context.write(Self.wrapOutboundOut(.end(nil)), promise: nil)
                self.needsFlush = true
                self.reads.metrics?.record(
                    method: "GET", route: FastReads.kvRoute, status: 200, nanoseconds: DispatchTime.now().uptimeNanoseconds &- start)
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
