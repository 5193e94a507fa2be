import LoadBalancer
import NIOCore
import NIOHTTP1
import Proxy
import Synchronization
import Testing

/// Real sockets on 127.0.0.1: three in-process backends behind a running proxy. Every test is bounded by `within`.
@Suite(.serialized) struct HTTPProxyTests {
    // MARK: - Distribution

    @Test func test_roundRobin_threeBackends_eachGetsAThird() async throws {
        try await withProxy { harness in
            // Given three equal backends / When 300 requests pass on one keep-alive connection
            let counts = try await withHTTPConnection(port: harness.port) { connection in
                var counts: [String: Int] = [:]
                for _ in 0..<300 {
                    let response = try await connection.send("/id")
                    #expect(response.status == .ok)
                    counts[response.body, default: 0] += 1
                }
                return counts
            }
            // Then each backend answered about a third
            #expect(counts.keys.sorted() == ["b0", "b1", "b2"])
            for (backend, count) in counts { #expect((90...110).contains(count), "\(backend): \(count)") }
            // And the upstream connections were reused, not opened per request
            let connections = harness.backends.reduce(0) { $0 + $1.connections.load(ordering: .relaxed) }
            #expect(connections <= 6)
        }
    }

    @Test func test_weightedRoundRobin_weights123_matchesWeights() async throws {
        try await withProxy(strategy: .weightedRoundRobin, weights: [100, 200, 300]) { harness in
            // Given weights 1:2:3 / When 600 requests pass
            let counts = try await withHTTPConnection(port: harness.port) { connection in
                var counts: [String: Int] = [:]
                for _ in 0..<600 { counts[try await connection.send("/id").body, default: 0] += 1 }
                return counts
            }
            // Then the shares follow the weights
            #expect((90...110).contains(counts["b0"] ?? 0), "\(counts)")
            #expect((190...210).contains(counts["b1"] ?? 0), "\(counts)")
            #expect((290...310).contains(counts["b2"] ?? 0), "\(counts)")
        }
    }

    // MARK: - Failures

    @Test func test_backendClosedMidLoad_isEjectedAndLaterRequestsSucceed() async throws {
        try await withProxy { harness in
            // Given four clients looping over the pool
            let failed = try await withThrowingTaskGroup(of: Int.self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        try await withHTTPConnection(port: harness.port) { connection in
                            var failed = 0
                            for request in 0..<100 {
                                // When backend b1 dies a quarter of the way through
                                if worker == 0, request == 25 { await harness.backends[1].stop() }
                                let response = try await connection.send("/id")
                                if response.status != .ok { failed += 1 }
                            }
                            return failed
                        }
                    }
                }
                return try await group.reduce(0, +)
            }
            // Then at most the requests in flight to it failed (idempotent GETs are retried elsewhere)
            #expect(failed <= 4)
            // And b1 is ejected
            let status = harness.pool.status()
            let b1 = try #require(status.first { $0.id == "b1" })
            #expect(!b1.isHealthy)
            #expect(b1.ejectedUntil != nil)
            #expect(b1.failures >= 5)
            // And every later request succeeds on the others
            try await withHTTPConnection(port: harness.port) { connection in
                for _ in 0..<30 {
                    let response = try await connection.send("/id")
                    #expect(response.status == .ok)
                    #expect(response.body != "b1")
                }
            }
            let upstreams = try await withHTTPConnection(port: harness.port) { try await $0.send("/_lb/upstreams") }
            #expect(upstreams.body.contains(#""id":"b1","address":"127.0.0.1:"#))
            #expect(upstreams.body.contains(#""healthy":false,"ejected_until":"20"#))
        }
    }

    @Test func test_emptyPool_returns503JSON() async throws {
        try await withProxy { harness in
            let response = try await withHTTPConnection(port: harness.port) { try await $0.send("/empty/anything") }
            #expect(response.status == .serviceUnavailable)
            #expect(response.headers["content-type"] == ["application/json"])
            #expect(response.body.hasPrefix(#"{"error":{"code":"no_upstream","message":""#))
        }
    }

    @Test func test_hangingBackend_returns504WithinRequestTimeout() async throws {
        try await withProxy(configure: { $0.requestTimeout = .milliseconds(500) }) { harness in
            // Given a backend that never answers / When a request waits for it
            let start = ContinuousClock.now
            let response = try await withHTTPConnection(port: harness.port) { try await $0.send("/hang") }
            let elapsed = start.duration(to: .now)
            // Then the client gets 504 JSON at about the request timeout
            #expect(response.status == .gatewayTimeout)
            #expect(response.body.hasPrefix(#"{"error":{"code":"upstream_timeout","#))
            #expect(elapsed >= .milliseconds(450) && elapsed < .milliseconds(1500), "\(elapsed)")
        }
    }

    @Test func test_malformedRequests_get400JSONAndNeverReachBackends() async throws {
        try await withProxy(configure: { $0.maxHeaderBytes = 16 * 1024 }) { harness in
            // Given warm upstream connections (so a request head could be written upstream at once)
            try await withHTTPConnection(port: harness.port) { connection in
                for _ in 0..<3 { _ = try await connection.send("/id") }
            }
            let before = harness.backends.map { $0.requests.load(ordering: .relaxed) }
            let big = String(repeating: "a", count: 20 * 1024)
            let requests = [
                "GARBAGE\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(big)\r\n\r\n",
                "GET /\(big) HTTP/1.1\r\nHost: x\r\n\r\n",
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            ]
            for request in requests {
                // When a malformed request arrives
                let response = try await rawExchange(port: harness.port, request)
                // Then it gets a 400 JSON answer and the connection closes
                #expect(response.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(response.prefix(80))")
                #expect(response.contains(#"{"error":{"code":"bad_request","#))
            }
            // And no backend saw anything
            try await Task.sleep(for: .milliseconds(100))
            #expect(harness.backends.map { $0.requests.load(ordering: .relaxed) } == before)
        }
    }

    // MARK: - Affinity

    @Test func test_consistentHash_headerKey_sticksUntilOwnerLeaves() async throws {
        try await withProxy(strategy: .consistentHash, configure: { $0.hashKey = .header("X-User") }) { harness in
            let users = (0..<30).map { "user-\($0)" }
            // Given each user's requests / When they repeat
            let owners = try await withHTTPConnection(port: harness.port) { connection in
                var owners: [String: String] = [:]
                for user in users {
                    var seen: Set<String> = []
                    for _ in 0..<4 { seen.insert(try await connection.send("/id", headers: [("X-User", user)]).body) }
                    // Then they stick to one backend
                    #expect(seen.count == 1, "\(user): \(seen)")
                    owners[user] = seen.first
                }
                return owners
            }
            // When the owner of user-0 leaves the pool
            let gone = try #require(owners["user-0"])
            harness.pool.update(harness.endpoints(of: harness.backends.filter { $0.id != gone }))
            try await withHTTPConnection(port: harness.port) { connection in
                for user in users {
                    let now = try await connection.send("/id", headers: [("X-User", user)]).body
                    // Then only its users move
                    if owners[user] == gone {
                        #expect(now != gone)
                    } else {
                        #expect(now == owners[user], "\(user) moved from \(owners[user] ?? "?") to \(now)")
                    }
                }
            }
            let metrics = try await withHTTPConnection(port: harness.port) { try await $0.send("/_lb/metrics") }
            let moved = metrics.body.split(separator: "\n").first { $0.hasPrefix(#"gossamer_lb_ring_keys_moved_total{pool="main"}"#) }
            let count = try #require(moved.flatMap { $0.split(separator: " ").last }.flatMap { Int($0) })
            #expect(count > 1_000 && count < 6_000, "about a third of 10,000 sampled keys: \(count)")
        }
    }

    // MARK: - Streaming

    @Test func test_serverSentEvents_arriveBeforeTheStreamEnds() async throws {
        try await withProxy { harness in
            try await withHTTPConnection(port: harness.port) { connection in
                // Given a backend streaming three events 300 ms apart
                let start = ContinuousClock.now
                try await connection.sendHead("/sse", headers: [("Accept", "text/event-stream")])
                guard case .head(let head) = try await connection.next() else {
                    Issue.record("no response head")
                    return
                }
                #expect(head.headers["content-type"] == ["text/event-stream"])
                #expect(head.headers["via"].contains("1.1 gossamer"))
                // When the client reads the stream
                var events: [(text: String, at: Duration)] = []
                var ended = Duration.zero
                reading: while true {
                    switch try await connection.next() {
                    case .body(let buffer): events.append((String(buffer: buffer), start.duration(to: .now)))
                    case .end: ended = start.duration(to: .now); break reading
                    case .head: Issue.record("second head")
                    }
                }
                // Then each event arrives on its own, well before the end
                #expect(events.map(\.text).joined() == "data: 1\n\ndata: 2\n\ndata: 3\n\n")
                #expect(events.first?.text == "data: 1\n\n")
                let first = try #require(events.first?.at)
                #expect(first + .milliseconds(400) < ended, "first event at \(first), end at \(ended)")
            }
        }
    }

    @Test func test_pipelinedRequests_answeredInOrder() async throws {
        try await withProxy { harness in
            // Given four requests sent back to back in one write
            let response = try await rawExchange(
                port: harness.port,
                "GET /a HTTP/1.1\r\nHost: x\r\n\r\n" + "HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n"
                    + "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                    + "GET /_lb/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            // Then four responses come back in request order, and the connection closes after the last
            let statuses = response.split(separator: "HTTP/1.1 ").map { String($0.prefix { $0 != "\r\n" }) }
            #expect(statuses == ["200 OK", "200 OK", "200 OK", "404 Not Found"])
            // The HEAD answer has no body, so the POST answer follows its head directly
            #expect(response.contains("Via: 1.1 gossamer\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n"))
            #expect(response.contains("\r\n\r\n3HTTP/1.1 404 Not Found\r\n"))
        }
    }

    @Test func test_upgradeRequest_isAnsweredAndTheConnectionCloses() async throws {
        try await withProxy { harness in
            // Given a WebSocket upgrade request (not supported: Upgrade is hop-by-hop)
            let response = try await rawExchange(
                port: harness.port,
                "GET /headers HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            )
            // Then the backend gets a plain request and the client connection closes after the answer
            #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(response.contains("Connection: close\r\n"))
            #expect(!response.contains("upgrade: websocket"))
        }
    }

    @Test func test_postBody_isStreamedToTheBackend() async throws {
        try await withProxy { harness in
            let body = String(repeating: "x", count: 300_000)
            let response = try await withHTTPConnection(port: harness.port) { try await $0.send("/echo", method: .POST, body: body) }
            #expect(response.status == .ok)
            #expect(response.body == "300000")
        }
    }

    // MARK: - Headers and admin

    @Test func test_forwardedHeaders_areAddedAndHopByHopRemoved() async throws {
        try await withProxy { harness in
            let response = try await withHTTPConnection(port: harness.port) { connection in
                try await connection.send(
                    "/headers",
                    headers: [
                        ("X-Forwarded-For", "10.0.0.1"), ("Connection", "keep-alive, X-Secret"), ("X-Secret", "s"),
                        ("Keep-Alive", "timeout=5"), ("X-Kept", "yes"),
                    ]
                )
            }
            let seen = Set(response.body.split(separator: "\n").map(String.init))
            #expect(seen.contains("x-forwarded-for: 10.0.0.1, 127.0.0.1"), "\(seen)")
            #expect(seen.contains("x-forwarded-proto: http"))
            #expect(seen.contains("via: 1.1 gossamer"))
            #expect(seen.contains("x-kept: yes"))
            #expect(!seen.contains { $0.hasPrefix("x-secret") || $0.hasPrefix("keep-alive") || $0.hasPrefix("connection") })
            #expect(response.headers["via"] == ["1.1 gossamer"])
            #expect(response.headers["x-backend"].count == 1)
        }
    }

    @Test func test_adminEndpoints_answerWithoutProxying() async throws {
        try await withProxy { harness in
            try await withHTTPConnection(port: harness.port) { connection in
                for _ in 0..<6 { _ = try await connection.send("/id") }
                let before = harness.backends.map { $0.requests.load(ordering: .relaxed) }

                let upstreams = try await connection.send("/_lb/upstreams")
                #expect(upstreams.status == .ok)
                #expect(upstreams.headers["content-type"] == ["application/json"])
                #expect(upstreams.body.hasPrefix(#"{"pools":[{"name":"main","strategy":"round_robin","panicking":false,"upstreams":[{"id":"b0","#))
                #expect(upstreams.body.contains(#""weight":100,"healthy":true,"ejected_until":null,"in_flight":0,"requests":2,"failures":0}"#))
                #expect(upstreams.body.contains(#"{"name":"empty","strategy":"round_robin","panicking":false,"upstreams":[]}"#))

                let metrics = try await connection.send("/_lb/metrics")
                #expect(metrics.status == .ok)
                #expect(metrics.body.contains(#"gossamer_lb_requests_total{pool="main",upstream="b0",code="2xx"} 2"#))
                #expect(metrics.body.contains(#"gossamer_lb_upstream_latency_seconds_bucket{pool="main",upstream="b1",le="+Inf"} 2"#))
                #expect(metrics.body.contains(#"gossamer_lb_upstream_latency_seconds_count{pool="main",upstream="b2"} 2"#))
                #expect(metrics.body.contains(#"gossamer_lb_ejections_total{pool="main",upstream="b0"} 0"#))

                #expect(try await connection.send("/_lb/metrics", method: .POST, body: "x").status == .methodNotAllowed)
                #expect(try await connection.send("/_lb/nothing").status == .notFound)
                #expect(harness.backends.map { $0.requests.load(ordering: .relaxed) } == before)
            }
        }
    }

    // MARK: - Connections

    @Test func test_idleUpstreamConnections_closeAfterIdleTimeout() async throws {
        try await withProxy(configure: { $0.idleUpstreamTimeout = .milliseconds(200) }) { harness in
            // Given keep-alive upstream connections after a few requests
            try await withHTTPConnection(port: harness.port) { connection in
                for _ in 0..<3 { _ = try await connection.send("/id") }
            }
            #expect(harness.backends.reduce(0) { $0 + $1.openConnections } > 0)
            // When they stay unused past the idle timeout / Then the proxy closes them
            try await waitUntil("idle upstream connections closed") { harness.backends.allSatisfy { $0.openConnections == 0 } }
        }
    }

    @Test func test_clientGoneMidStream_closesTheUpstreamConnection() async throws {
        try await withProxy { harness in
            // Given a client reading an event stream
            try await withHTTPConnection(port: harness.port) { connection in
                try await connection.sendHead("/sse")
                guard case .head = try await connection.next() else { return }
            }
            // When it hangs up (the connection closed above) / Then the upstream connection is closed too
            try await waitUntil("upstream closed") { harness.backends.allSatisfy { $0.openConnections == 0 } }
        }
    }

    @Test func test_shutdown_endsStreamsAfterTheGracePeriod() async throws {
        try await withProxy { harness in
            try await withHTTPConnection(port: harness.port) { connection in
                // Given a stream in progress
                try await connection.sendHead("/sse")
                guard case .head = try await connection.next() else { return }
                // When the proxy shuts down
                let start = ContinuousClock.now
                await harness.proxy.shutdown()
                // Then it waited at most the grace period (200 ms) and the stream was cut before its end
                #expect(start.duration(to: .now) < .milliseconds(1000))
                var ended = false
                do {
                    while true {
                        if case .end = try await connection.next() { ended = true }
                    }
                } catch {
                    // The connection closed.
                }
                #expect(!ended)
            }
            #expect(harness.proxy.localAddress == nil)
        }
    }

    // MARK: - Lifecycle

    @Test func test_shutdown_beforeRun_makesRunReturn() async throws {
        let proxy = HTTPProxy(settings: ProxySettings(), routes: [], logger: quietLogger)
        await proxy.shutdown()
        try await within(5) { try await proxy.run() }
        #expect(proxy.localAddress == nil)
    }

    @Test func test_run_portInUse_throwsBind() async throws {
        try await withProxy { harness in
            var settings = ProxySettings()
            settings.listenPort = harness.port
            let second = HTTPProxy(settings: settings, routes: [], logger: quietLogger)
            await #expect(throws: ProxyError.self) { try await second.run() }
        }
    }
}

/// Polls `condition` every 20 ms for up to 3 s.
func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
    let start = ContinuousClock.now
    while !condition() {
        guard start.duration(to: .now) < .seconds(3) else {
            Issue.record("timed out: \(what)")
            return
        }
        try await Task.sleep(for: .milliseconds(20))
    }
}
