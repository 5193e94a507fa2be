import LoadBalancer
import NIOCore
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

    @Test func test_upstreamRequest_hopByHopAndForwarding_rewritten() throws {
        // Given a chunked request with hop-by-hop fields and an earlier proxy
        let request = try HTTPWire.parseRequest(
            ByteBuffer(
                string: "POST /x HTTP/1.1\r\nHost: h\r\nConnection: close, X-Hop, Host\r\nX-Hop: 1\r\nTE: trailers\r\n"
                    + "Transfer-Encoding: chunked\r\nUpgrade: websocket\r\nProxy-Authorization: p\r\n"
                    + "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nVia: 1.0 edge\r\n\r\n"))
        #expect(!request.keepAlive)
        // When it is rewritten for the upstream
        let upstream = HeaderRewriting.upstreamRequest(request, uri: "/y", clientIP: "192.0.2.7", allocator: .init())
        // Then the fields that stay are copied in order, hop-by-hop ones are gone, and the body framing is kept
        #expect(
            String(buffer: upstream)
                == "POST /y HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nVia: 1.0 edge\r\n"
                + "X-Forwarded-For: 10.0.0.1, 192.0.2.7\r\nX-Forwarded-Proto: http\r\nVia: 1.1 gossamer\r\n\r\n")
        let reparsed = try HTTPWire.parseRequest(upstream)
        #expect(reparsed.keepAlive)
        #expect(reparsed.framing == .chunked)
    }

    @Test func test_upstreamRequest_absoluteForm_hostIsTheAuthority() throws {
        let request = try HTTPWire.parseRequest(
            ByteBuffer(string: "GET http://config.internal:7700/v1/kv/a HTTP/1.1\r\nHost: other\r\nAccept: */*\r\n\r\n"))
        let upstream = HeaderRewriting.upstreamRequest(request, uri: request.uri, clientIP: "192.0.2.7", allocator: .init())
        #expect(
            String(buffer: upstream)
                == "GET /v1/kv/a HTTP/1.1\r\nAccept: */*\r\nHost: config.internal:7700\r\n"
                + "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nVia: 1.1 gossamer\r\n\r\n")
    }

    @Test func test_clientResponse_http10Client_getsVersionAndConnection() throws {
        let head = try HTTPWire.parseResponse(
            ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\n\r\n"), noBody: false)
        let response = HeaderRewriting.clientResponse(head, minorVersion: 0, close: false, dechunk: false, allocator: .init())
        #expect(
            String(buffer: response)
                == "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nVia: 1.1 gossamer\r\nConnection: keep-alive\r\n\r\n")
        let closing = HeaderRewriting.clientResponse(head, minorVersion: 1, close: true, dechunk: false, allocator: .init())
        #expect(String(buffer: closing).hasSuffix("Via: 1.1 gossamer\r\nConnection: close\r\n\r\n"))
        let chunked = try HTTPWire.parseResponse(
            ByteBuffer(string: "HTTP/1.1 404 Not Here\r\nTransfer-Encoding: chunked\r\n\r\n"), noBody: false)
        let dechunked = HeaderRewriting.clientResponse(chunked, minorVersion: 0, close: true, dechunk: true, allocator: .init())
        #expect(String(buffer: dechunked) == "HTTP/1.0 404 Not Here\r\nVia: 1.1 gossamer\r\nConnection: close\r\n\r\n")
    }

    @Test func test_clientResponse_chunkedWithContentLength_dropsContentLength() throws {
        // Given an upstream response with both framings (Transfer-Encoding wins, RFC 9112 §6.3)
        let head = try HTTPWire.parseResponse(
            ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"), noBody: false)
        #expect(head.framing == .chunked)
        // When it is rewritten for an HTTP/1.1 client
        let response = HeaderRewriting.clientResponse(head, minorVersion: 1, close: false, dechunk: false, allocator: .init())
        // Then the client sees only the framing the body really has
        #expect(
            String(buffer: response) == "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nVia: 1.1 gossamer\r\n\r\n")
    }

    @Test func test_hashKey_sources_readTheRightPart() throws {
        let head = try HTTPWire.parseRequest(
            ByteBuffer(string: "GET /a/b?x=1 HTTP/1.1\r\nX-User: alice\r\nCookie: theme=dark; session=s1; other=2\r\n\r\n"))
        #expect(HeaderRewriting.hashKey(.header("x-user"), request: head, clientIP: "ip") == StableHash.hash("alice"))
        #expect(HeaderRewriting.hashKey(.header("x-none"), request: head, clientIP: "ip") == nil)
        #expect(HeaderRewriting.hashKey(.cookie("session"), request: head, clientIP: "ip") == StableHash.hash("s1"))
        #expect(HeaderRewriting.hashKey(.cookie("nope"), request: head, clientIP: "ip") == nil)
        #expect(HeaderRewriting.hashKey(.path, request: head, clientIP: "ip") == StableHash.hash("/a/b"))
        #expect(HeaderRewriting.hashKey(.clientIP, request: head, clientIP: "192.0.2.1") == StableHash.hash("192.0.2.1"))
        #expect(HeaderRewriting.hashKey(.none, request: head, clientIP: "ip") == nil)
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
