import Dispatch
import Hummingbird
import Metrics
import Synchronization

/// Counts every answered request as `gossamer_http_requests_total{method,route,status}` and times it in
/// `gossamer_http_request_duration_seconds{method,route}` (a histogram), through the given swift-metrics factory.
///
/// `route` is the matched route pattern (`/v1/kv/{key}`), never the raw path, so the label set stays bounded;
/// requests that match no route count under `route="unmatched"`. A streamed response (watch) is timed until its
/// last byte. Metric handles are cached per label set so a request takes no registry-wide lock.
struct HTTPMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let cache: HTTPMetricsCache

    init(cache: HTTPMetricsCache) {
        self.cache = cache
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        do {
            var response = try await next(request, context)
            let status = response.status.code
            let route = context.endpointPath ?? "unmatched"
            let method = request.method.rawValue
            let body = response.body
            let cache = self.cache
            response.body = ResponseBody(contentLength: body.contentLength) { writer in
                defer { cache.record(method: method, route: route, status: status, nanoseconds: DispatchTime.now().uptimeNanoseconds &- start) }
                try await body.write(writer)
            }
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            self.cache.record(
                method: request.method.rawValue, route: context.endpointPath ?? "unmatched", status: status,
                nanoseconds: DispatchTime.now().uptimeNanoseconds &- start)
            throw error
        }
    }
}

/// The counters and timers of ``HTTPMetricsMiddleware`` (and of ``FastPath``, which answers some requests before
/// the router), created once per label set.
public final class HTTPMetricsCache: Sendable {
    private let factory: any MetricsFactory
    private struct CounterKey: Hashable {
        var method: String
        var route: String
        var status: Int
    }

    private struct TimerKey: Hashable {
        var method: String
        var route: String
    }

    private let counters = Mutex<[CounterKey: Counter]>([:])
    private let timers = Mutex<[TimerKey: Metrics.Timer]>([:])

    public init(factory: any MetricsFactory) {
        self.factory = factory
    }

    func record(method: String, route: String, status: Int, nanoseconds: UInt64) {
        let counterKey = CounterKey(method: method, route: route, status: status)
        let counter = self.counters.withLock { counters in
            if let counter = counters[counterKey] { return counter }
            let counter = Counter(
                label: "gossamer_http_requests_total", dimensions: [("method", method), ("route", route), ("status", String(status))],
                factory: self.factory)
            counters[counterKey] = counter
            return counter
        }
        counter.increment()
        let timerKey = TimerKey(method: method, route: route)
        let timer = self.timers.withLock { timers in
            if let timer = timers[timerKey] { return timer }
            let timer = Metrics.Timer(
                label: "gossamer_http_request_duration_seconds", dimensions: [("method", method), ("route", route)], factory: self.factory)
            timers[timerKey] = timer
            return timer
        }
        timer.recordNanoseconds(Int64(clamping: nanoseconds))
    }
}
