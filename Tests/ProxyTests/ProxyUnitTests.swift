import LoadBalancer
import NIOHTTP1
import Testing

@testable import Proxy

/// Pure pieces of the proxy: routing, header rewriting, hash keys, settings, ring sampling.
@Suite struct ProxyUnitTests {
    @Test func test_routeTable_longestPrefixOnSegmentBoundary_wins() {
        // Given a default route and two nested prefixes
        let main = UpstreamPool(name: "main", settings: LoadBalancer.Settings())
        let api = UpstreamPool(name: "api", settings: LoadBalancer.Settings())
        let admin = UpstreamPool(name: "admin", settings: LoadBalancer.Settings())
        let table = RouteTable([
            Route(pathPrefix: "/", pool: main), Route(pathPrefix: "/api", pool: api),
            Route(pathPrefix: "/api/admin/", pool: admin),
        ])
        // Then
        #expect(table.match("/api")?.pool === api)
        #expect(table.match("/api?x=1")?.pool === api)
        #expect(table.match("/api/users")?.pool === api)
        #expect(table.match("/apix")?.pool === main)
        #expect(table.match("/api/admin/x")?.pool === admin)
        #expect(table.match("/")?.pool === main)
        #expect(table.pools.map(\.name) == ["main", "api", "admin"])
        #expect(RouteTable([Route(pathPrefix: "/api", pool: api)]).match("/other") == nil)
    }

    @Test(arguments: [
        ("/api", "/api/users?q=1", "/users?q=1"), ("/api", "/api", "/"), ("/api", "/api?q", "/?q"),
        ("/api/", "/api/users", "/users"), ("/", "/x", "/x"),
    ])
    func test_routeTable_stripPrefix_keepsALeadingSlash(prefix: String, uri: String, expected: String) {
        #expect(RouteTable.strip(prefix: prefix, from: uri) == expected)
    }

    @Test func test_upstreamRequest_hopByHopAndForwarding_rewritten() {
        // Given a chunked request with hop-by-hop fields and an earlier proxy
        let head = HTTPRequestHead(
            version: .http1_1, method: .POST, uri: "/x",
            headers: HTTPHeaders([
                ("Host", "h"), ("Connection", "close, X-Hop, Host"), ("X-Hop", "1"), ("TE", "trailers"),
                ("Transfer-Encoding", "chunked"), ("Upgrade", "websocket"), ("Proxy-Authorization", "p"),
                ("X-Forwarded-For", "10.0.0.1"), ("Via", "1.0 edge"),
            ]))
        // When it is rewritten for the upstream
        let upstream = HeaderRewriting.upstreamRequest(from: head, uri: "/y", clientIP: "192.0.2.7")
        // Then
        #expect(upstream.uri == "/y")
        #expect(upstream.headers["host"] == ["h"])
        for name in ["connection", "x-hop", "te", "upgrade", "proxy-authorization"] {
            #expect(!upstream.headers.contains(name: name), "\(name)")
        }
        #expect(upstream.headers["transfer-encoding"] == ["chunked"])
        #expect(upstream.headers["x-forwarded-for"] == ["10.0.0.1, 192.0.2.7"])
        #expect(upstream.headers["x-forwarded-proto"] == ["http"])
        #expect(upstream.headers["via"] == ["1.0 edge", "1.1 gossamer"])
        #expect(upstream.isKeepAlive)
    }

    @Test func test_clientResponse_http10Client_getsVersionAndConnection() {
        let head = HTTPResponseHead(
            version: .http1_1, status: .ok, headers: HTTPHeaders([("Content-Length", "2"), ("Keep-Alive", "timeout=5")]))
        let response = HeaderRewriting.clientResponse(from: head, version: .http1_0, close: false)
        #expect(response.version == .http1_0)
        #expect(response.headers["connection"] == ["keep-alive"])
        #expect(!response.headers.contains(name: "keep-alive"))
        #expect(response.headers["via"] == ["1.1 gossamer"])
        #expect(HeaderRewriting.clientResponse(from: head, version: .http1_1, close: true).headers["connection"] == ["close"])
    }

    @Test func test_hashKey_sources_readTheRightPart() {
        let head = HTTPRequestHead(
            version: .http1_1, method: .GET, uri: "/a/b?x=1",
            headers: HTTPHeaders([("X-User", "alice"), ("Cookie", "theme=dark; session=s1; other=2")]))
        #expect(HeaderRewriting.hashKey(.header("x-user"), head: head, clientIP: "ip") == StableHash.hash("alice"))
        #expect(HeaderRewriting.hashKey(.header("x-none"), head: head, clientIP: "ip") == nil)
        #expect(HeaderRewriting.hashKey(.cookie("session"), head: head, clientIP: "ip") == StableHash.hash("s1"))
        #expect(HeaderRewriting.hashKey(.cookie("nope"), head: head, clientIP: "ip") == nil)
        #expect(HeaderRewriting.hashKey(.path, head: head, clientIP: "ip") == StableHash.hash("/a/b"))
        #expect(HeaderRewriting.hashKey(.clientIP, head: head, clientIP: "192.0.2.1") == StableHash.hash("192.0.2.1"))
        #expect(HeaderRewriting.hashKey(.none, head: head, clientIP: "ip") == nil)
    }

    @Test func test_settings_validate_rejectsBadValues() {
        #expect(throws: Never.self) { try ProxySettings().validate() }
        var settings = ProxySettings()
        settings.retries = -1
        #expect(throws: ProxySettings.ValidationError.self) { try settings.validate() }
        settings = ProxySettings()
        settings.lbSettings.panicThreshold = 2
        do {
            try settings.validate()
            Issue.record("expected a validation error")
        } catch {
            #expect(error.field == "lbSettings.panicThreshold")
        }
    }

    @Test func test_movedKeys_removingOneOfThree_movesAboutAThird() {
        // Given rings over three and two endpoints
        var settings = LoadBalancer.Settings()
        settings.strategy = .consistentHash
        let endpoints = (0..<3).map { Endpoint(id: "e\($0)", address: Endpoint.Address(host: "127.0.0.1", port: 1000 + $0)) }
        let three = EndpointSnapshot(endpoints: endpoints, settings: settings)
        let two = EndpointSnapshot(endpoints: Array(endpoints.dropLast()), settings: settings)
        // Then only the removed endpoint's keys move, and none move without a change
        let moved = UpstreamPool.movedKeys(from: three, to: two)
        #expect(moved > 2_000 && moved < 4_700, "\(moved)")
        #expect(UpstreamPool.movedKeys(from: three, to: three) == 0)
    }

    @Test func test_upstreamPool_failures_ejectAndReport() throws {
        // Given a pool of three that ejects after two failures
        var settings = LoadBalancer.Settings()
        settings.outlierDetection.consecutiveFailures = 2
        settings.logger = quietLogger
        let pool = UpstreamPool(name: "p", settings: settings)
        let endpoints = (0..<3).map { Endpoint(id: "e\($0)", address: Endpoint.Address(host: "127.0.0.1", port: 1000 + $0)) }
        pool.update(endpoints)
        let stats = pool.stats(for: pool.balancer.snapshot).stats
        // When e1 fails twice
        let e1 = try #require(stats.first { $0.id == "e1" })
        let start = ContinuousClock.now
        pool.recordFailure(e1, now: start)
        pool.recordFailure(e1, now: start)
        // Then it leaves the snapshot and the status says so
        #expect(pool.balancer.snapshot.endpoints.map(\.id) == ["e0", "e2"])
        let status = pool.status()
        #expect(status.map(\.isHealthy) == [true, false, true])
        #expect(status[1].failures == 2)
        #expect(e1.ejections == 1)
        #expect(!pool.isPanicking)
        // And the first pick after the ejection time brings it back (the plan's next review)
        _ = pool.pick(hashKey: nil, now: start + settings.outlierDetection.baseEjectionTime + .milliseconds(1))
        #expect(pool.balancer.snapshot.endpoints.map(\.id) == ["e0", "e1", "e2"])
    }
}
