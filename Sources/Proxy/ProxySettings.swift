import LoadBalancer

// MARK: - Hash key source

/// Where a request's consistent-hash key comes from. Only pools whose strategy is `.consistentHash` read it; a
/// request without the key (header or cookie absent) is placed at random, as `ConsistentHashStrategy` documents.
public enum HashKeySource: Sendable, Hashable {
    /// The value of this request header (case-insensitive name), e.g. `X-User-ID`. Repeated headers are joined with `,`.
    case header(String)
    /// The value of this cookie in the `Cookie` header.
    case cookie(String)
    /// The request path, without the query string.
    case path
    /// The client's IP address (the TCP peer, not `X-Forwarded-For`).
    case clientIP
    /// No key: consistent hashing degrades to a random pick.
    case none
}

// MARK: - Settings

/// How the reverse proxy listens, times out, pools upstream connections and retries.
///
/// Defaults suit an HTTP/1.1 load balancer in front of a few to a few hundred instances. The CLI maps flags and the
/// config file onto these fields and calls `validate()` at startup.
public struct ProxySettings: Sendable {
    /// A settings value `validate()` rejected.
    public struct ValidationError: Error, Hashable, Sendable, CustomStringConvertible {
        /// The settings field, as a dotted path (`lbSettings.panicThreshold`).
        public var field: String
        /// What is wrong with it.
        public var message: String

        /// `field: message`.
        public var description: String { "\(self.field): \(self.message)" }
    }

    /// The address to listen on. Default `127.0.0.1`; use `0.0.0.0` (or `::`) to serve other hosts.
    public var listenHost: String = "127.0.0.1"
    /// The TCP port to listen on. Default 8080; 0 picks a free port (read it from `HTTPProxy.localAddress`).
    public var listenPort: Int = 8080
    /// How long a request may wait for the upstream's response headers, counted from the moment the request head
    /// arrived (connecting and retries included). Default 30 s. On expiry the client gets 504 `upstream_timeout`.
    /// Response bodies are never cut: a Server-Sent Events stream may last for hours once its headers arrived.
    public var requestTimeout: Duration = .seconds(30)
    /// How long one TCP connect to an upstream may take. Default 1 s. A failed or timed-out connect counts against
    /// the endpoint (passive ejection) and is retried on the next endpoint.
    public var connectTimeout: Duration = .seconds(1)
    /// How long an unused keep-alive connection to an upstream stays open. Default 60 s. Longer saves connects on
    /// bursty traffic; it should stay below the upstream's own keep-alive timeout, or requests race its close
    /// (such a request is retried when it is idempotent).
    public var idleUpstreamTimeout: Duration = .seconds(60)
    /// The most idle connections kept per upstream endpoint and event loop. Default 64. Connections beyond it are
    /// closed when their response ends.
    public var maxIdlePerUpstream: Int = 64
    /// The largest request head (request line plus headers) accepted, in bytes. Default 64 KiB; larger heads get
    /// 400 `bad_request` and never reach a backend.
    public var maxHeaderBytes: Int = 64 * 1024
    /// How many times a failed request is retried on another endpoint (`Balancer.retryPick`). Default 1; 0 turns
    /// retries off. Connect failures are always retryable; other failures only for idempotent methods (GET, HEAD,
    /// PUT, DELETE, OPTIONS) whose body was not streamed yet, and only before any response byte arrived.
    public var retries: Int = 1
    /// Where a request's consistent-hash key comes from. Default `.none`.
    public var hashKey: HashKeySource = .none
    /// How long a client connection may stay open with no request in progress (keep-alive timeout), and how long
    /// a client may take to send a request head. Default 60 s.
    public var clientIdleTimeout: Duration = .seconds(60)
    /// On `shutdown()`, how long requests in progress may run before their connections are closed. Default 5 s.
    public var shutdownGracePeriod: Duration = .seconds(5)
    /// The load-balancing knobs every pool is created with (strategy, ejection, panic threshold, slow start).
    public var lbSettings = LoadBalancer.Settings()

    /// Creates the defaults.
    public init() {}

    /// Checks values that come from operators. Throws the first problem found.
    public func validate() throws(ValidationError) {
        func fail(_ field: String, _ message: String) -> ValidationError {
            ValidationError(field: field, message: message)
        }
        guard (0...65535).contains(self.listenPort) else { throw fail("listenPort", "must be in 0...65535") }
        guard self.requestTimeout > .zero else { throw fail("requestTimeout", "must be positive") }
        guard self.connectTimeout > .zero else { throw fail("connectTimeout", "must be positive") }
        guard self.idleUpstreamTimeout > .zero else { throw fail("idleUpstreamTimeout", "must be positive") }
        guard self.clientIdleTimeout > .zero else { throw fail("clientIdleTimeout", "must be positive") }
        guard self.shutdownGracePeriod >= .zero else { throw fail("shutdownGracePeriod", "must not be negative") }
        guard self.maxIdlePerUpstream >= 0 else { throw fail("maxIdlePerUpstream", "must not be negative") }
        guard self.maxHeaderBytes >= 1024 else { throw fail("maxHeaderBytes", "must be at least 1024") }
        guard self.retries >= 0 else { throw fail("retries", "must not be negative") }
        switch self.hashKey {
        case .header(let name) where name.isEmpty: throw fail("hashKey", "the header name must not be empty")
        case .cookie(let name) where name.isEmpty: throw fail("hashKey", "the cookie name must not be empty")
        default: break
        }
        do {
            try self.lbSettings.validate()
        } catch {
            throw fail("lbSettings.\(error.field)", error.message)
        }
    }
}

// MARK: - Duration helpers

extension Duration {
    /// The duration in whole nanoseconds (saturating), for NIO's `TimeAmount`.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = self.components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return scaled.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }
}
