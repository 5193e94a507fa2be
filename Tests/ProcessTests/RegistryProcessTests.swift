import Client
import Foundation
import NIOCore
import Testing

/// The port of the test script's shared redis-server. Under CI a missing Redis fails the test (a skip would
/// look like a pass); elsewhere the Redis tests are disabled with a note.
func sharedRedisPort() throws -> Int {
    if let text = ProcessInfo.processInfo.environment["REDIS_PORT"], let port = Int(text) { return port }
    throw ClientError("REDIS_PORT is not set: run the tests with `make test`, which starts a throwaway redis-server")
}

let redisAvailable = ProcessInfo.processInfo.environment["REDIS_PORT"] != nil || ProcessInfo.processInfo.environment["CI"] == "true"

/// Runs `redis-cli -p <port> <args>` and returns its output.
func redisCLI(_ port: Int, _ arguments: [String]) throws -> String {
    try runTool("redis-cli", ["-h", "127.0.0.1", "-p", String(port)] + arguments)
}

/// Runs a program from PATH to completion and returns its standard output.
func runTool(_ name: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [name] + arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}

/// A free TCP port on loopback.
func freePort() throws -> Int {
    Int(try runTool("python3", ["-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1]); s.close()"])
        .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
}

/// A redis-server this test starts and stops itself (by its own PID), on a free loopback port.
final class OwnRedis: @unchecked Sendable {
    // Only touched from the test that owns it.
    let port: Int
    let directory: URL
    let password: String?
    private var process: Process?

    init(password: String? = nil) throws {
        self.port = try freePort()
        self.directory = temporaryDirectory()
        self.password = password
    }

    func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        var arguments = ["redis-server", "--bind", "127.0.0.1", "--port", String(self.port), "--dir", self.directory.path, "--save", "", "--appendonly", "no"]
        if let password { arguments += ["--requirepass", password] }
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        let auth = self.password.map { ["-a", $0, "--no-auth-warning"] } ?? []
        for _ in 0..<100 {
            if (try? redisCLI(self.port, auth + ["PING"]))?.contains("PONG") == true { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ClientError("redis-server on port \(self.port) did not start")
    }

    func stop() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit {
        self.stop()
        try? FileManager.default.removeItem(at: self.directory)
    }
}

/// A tiny HTTP server (python3) whose /health answers the status code written in a file, and a TCP listener
/// that can be stopped and restarted on the same port: the targets of health checks.
final class CheckTarget: @unchecked Sendable {
    let directory = temporaryDirectory()
    let httpPort: Int
    private var http: Process?

    init() throws {
        self.httpPort = try freePort()
        try self.setStatus(200)
    }

    func setStatus(_ code: Int) throws {
        try String(code).write(to: self.directory.appendingPathComponent("status"), atomically: true, encoding: .utf8)
    }

    func start() async throws {
        let script = """
            import http.server, sys
            path = sys.argv[2]
            class H(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    code = int(open(path).read().strip())
                    self.send_response(code); self.send_header('Content-Length', '2'); self.end_headers(); self.wfile.write(b'ok')
                def log_message(self, *args): pass
            http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, String(self.httpPort), self.directory.appendingPathComponent("status").path]
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.http = process
        for _ in 0..<100 {
            if (try? runTool("python3", ["-c", "import socket; socket.create_connection(('127.0.0.1', \(self.httpPort)), 1)"])) != nil,
                (try? await probe()) == true
            {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ClientError("the check target did not start")
    }

    private func probe() async throws -> Bool {
        let client = GossamerClient(base: "http://127.0.0.1:\(self.httpPort)")
        return (try? await client.send(.GET, "/health", timeout: .seconds(1) as TimeAmount)) != nil
    }

    func stop() {
        guard let http, http.isRunning else { return }
        kill(http.processIdentifier, SIGKILL)
        http.waitUntilExit()
    }

    deinit {
        self.stop()
        try? FileManager.default.removeItem(at: self.directory)
    }
}

/// The service registry on real agent processes, real Redis and real check targets (issue: service registry).
@Suite(.serialized) struct RegistryProcessTests {
    let cluster = ReplicationProcessTests()

    func register(_ agent: AgentProcess, _ service: String, _ id: String, _ body: String) async throws -> GossamerClient.Reply {
        try await agent.client.send(.PUT, "/v1/services/\(service)/instances/\(id)", body: Data(body.utf8))
    }

    func instance(_ agent: AgentProcess, _ service: String, _ id: String) async -> [String: Any]? {
        guard let reply = try? await agent.client.send(.GET, "/v1/services/\(service)/instances/\(id)", timeout: .seconds(2) as TimeAmount),
            reply.status == 200
        else { return nil }
        return reply.json
    }

    func status(_ agent: AgentProcess, _ service: String, _ id: String) async -> String? {
        await self.instance(agent, service, id)?["status"] as? String
    }

    /// Polls `condition` every 50 ms for up to `timeout`; records and throws on timeout.
    func waitFor(_ what: String, timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws -> Duration {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < timeout {
            if try await condition() { return ContinuousClock.now - start }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("timed out after \(timeout) waiting for: \(what)")
        throw ClientError("timeout: \(what)")
    }

    /// What the owner wrote for an instance, oldest first (its health record's history): the instance's status
    /// and each check's, as `status|check=status,…`.
    func healthHistory(_ agent: AgentProcess, _ service: String, _ id: String) async throws -> [String] {
        let reply = try await agent.client.send(.GET, "/v1/kv/_gossamer/registry/health/\(service)/\(id)", query: [("history", nil), ("limit", "100")])
        let versions = (try JSONSerialization.jsonObject(with: reply.body) as? [[String: Any]]) ?? []
        return versions.reversed().compactMap { version in
            guard let text = version["value"] as? String, let data = text.data(using: .utf8),
                let health = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            else { return nil }
            let checks = (health["checks"] as? [String: [String: Any]]) ?? [:]
            let each = checks.keys.sorted().map { "\($0)=\(checks[$0]?["status"] as? String ?? "?")" }
            return "\(health["status"] as? String ?? "?")|\(each.joined(separator: ","))"
        }
    }

    @Test(.enabled(if: redisAvailable)) func test_registerOnA_visibleOnBAndInRedis_pubSub_deregisterClearsBoth() async throws {
        let port = try sharedRedisPort()
        let service = "web-\(UUID().uuidString.prefix(6).lowercased())"
        let subscriberOutput = temporaryDirectory().appendingPathComponent("messages")
        _ = FileManager.default.createFile(atPath: subscriberOutput.path, contents: nil)
        let subscriber = Process()
        subscriber.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        subscriber.arguments = ["redis-cli", "-h", "127.0.0.1", "-p", String(port), "SUBSCRIBE", "gossamer:svc:\(service)"]
        subscriber.standardOutput = try FileHandle(forWritingTo: subscriberOutput)
        try subscriber.run()
        defer { kill(subscriber.processIdentifier, SIGKILL) }
        let agents = try await self.cluster.startCluster(3, prefix: "reg", extraConfig: "redis = \"redis://127.0.0.1:\(port)/0\"")
        defer { for agent in agents { agent.kill9() } }
        let (a, b) = (agents[0], agents[1])

        // When: register on A
        let reply = try await self.register(a, service, "i-1", #"{"address":"127.0.0.1","port":9001,"tags":["v2"],"meta":{"version":"1.2"}}"#)
        #expect(reply.status == 200, "\(String(decoding: reply.body, as: UTF8.self))")

        // Then: B answers it, passing, owned by A
        let visible = try await self.waitFor("instance visible on B") { await self.status(b, service, "i-1") == "passing" }
        #expect(await self.instance(b, service, "i-1")?["owner"] as? String == a.node)
        let lookup = try await b.client.send(.GET, "/v1/services/\(service)", query: [("passing", nil), ("tag", "v2")])
        #expect((lookup.json["instances"] as? [[String: Any]])?.count == 1 && lookup.header("X-Gossamer-Index") != nil)
        // And Redis has it, and the subscriber got the message
        _ = try await self.waitFor("instance in Redis") { try redisCLI(port, ["HGET", "gossamer:svc:\(service)", "i-1"]).contains("\"status\":\"passing\"") }
        let hash = try redisCLI(port, ["HGETALL", "gossamer:svc:\(service)"])
        #expect(hash.contains("i-1") && hash.contains("\"address\":\"127.0.0.1\""))
        #expect(try redisCLI(port, ["SISMEMBER", "gossamer:services", service]).contains("1"))
        let ttl = Int(try redisCLI(port, ["TTL", "gossamer:svc:\(service)"]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        #expect(ttl > 0 && ttl <= 60, "the hash expires unless refreshed (ttl \(ttl))")
        _ = try await self.waitFor("pub/sub message") {
            (try? String(contentsOf: subscriberOutput, encoding: .utf8))?.contains("\"op\":\"set\"") == true
        }
        print("registration visible on another agent after \(visible)")

        // When: deregister on B
        let removed = try await b.client.send(.DELETE, "/v1/services/\(service)/instances/i-1")
        #expect(removed.status == 200)
        // Then: gone on A and from Redis, with a delete message
        _ = try await self.waitFor("gone on A") { await self.instance(a, service, "i-1") == nil }
        _ = try await self.waitFor("gone from Redis") { try redisCLI(port, ["HEXISTS", "gossamer:svc:\(service)", "i-1"]).contains("0") }
        _ = try await self.waitFor("delete message") {
            (try? String(contentsOf: subscriberOutput, encoding: .utf8))?.contains("\"op\":\"delete\"") == true
        }
    }

    @Test func test_httpAndTcpChecks_followTheTargetWithAntiFlap_andTTLExpires() async throws {
        let target = try CheckTarget()
        try await target.start()
        let agent = try AgentProcess(node: "checks")
        try await agent.start()
        defer { agent.kill9() }
        let body = """
            {"address":"127.0.0.1","port":\(target.httpPort),"checks":[
              {"type":"http","url":"http://127.0.0.1:\(target.httpPort)/health","interval":"150ms","timeout":"1s","success_before_passing":2,"failures_before_critical":2},
              {"type":"tcp","tcp":"127.0.0.1:\(target.httpPort)","interval":"150ms","timeout":"1s"}]}
            """
        #expect(try await self.register(agent, "api", "a-1", body).status == 200)
        _ = try await self.waitFor("passing") { await self.status(agent, "api", "a-1") == "passing" }
        // 429 → warning
        try target.setStatus(429)
        _ = try await self.waitFor("warning on 429") { await self.status(agent, "api", "a-1") == "warning" }
        // 500 → critical
        try target.setStatus(500)
        _ = try await self.waitFor("critical on 500") { await self.status(agent, "api", "a-1") == "critical" }
        try target.setStatus(200)
        _ = try await self.waitFor("passing again") { await self.status(agent, "api", "a-1") == "passing" }
        // Stop the target: both checks fail, the tcp one at once
        target.stop()
        _ = try await self.waitFor("critical when the target is down") { await self.status(agent, "api", "a-1") == "critical" }
        let checks = (await self.instance(agent, "api", "a-1")?["checks"] as? [[String: Any]]) ?? []
        #expect(checks.first { $0["id"] as? String == "a-1:tcp" }?["status"] as? String == "critical")
        try await target.start()
        _ = try await self.waitFor("passing after the target is back") { await self.status(agent, "api", "a-1") == "passing" }
        // Every transition was written once; anti-flap means never two of the same in a row.
        let history = try await self.healthHistory(agent, "api", "a-1")
        #expect(history.first?.hasPrefix("critical|") == true && history.last?.hasPrefix("passing|") == true, "\(history)")
        #expect(zip(history, history.dropFirst()).allSatisfy { $0 != $1 }, "every write is a change: \(history)")
        #expect(history.contains { $0.hasPrefix("warning|") })
        print("health transitions written: \(history)")

        // TTL: passing after a report, critical once it runs out
        #expect(try await self.register(agent, "worker", "w-1", #"{"address":"127.0.0.1","port":1,"checks":[{"type":"ttl","ttl":"1s"}]}"#).status == 200)
        var report = try await agent.client.send(.PUT, "/v1/checks/w-1:ttl/pass", query: [("note", "alive")])
        for _ in 0..<20 where report.status == 404 {
            try await Task.sleep(for: .milliseconds(50))
            report = try await agent.client.send(.PUT, "/v1/checks/w-1:ttl/pass", query: [("note", "alive")])
        }
        #expect(report.status == 200)
        _ = try await self.waitFor("passing after the report", timeout: .seconds(5)) { await self.status(agent, "worker", "w-1") == "passing" }
        _ = try await self.waitFor("critical once the TTL ran out", timeout: .seconds(5)) { await self.status(agent, "worker", "w-1") == "critical" }
    }

    @Test(.enabled(if: redisAvailable)) func test_killOwner_instancesCriticalEverywhere_thenRemovedOnce() async throws {
        let port = try sharedRedisPort()
        let service = "pay-\(UUID().uuidString.prefix(6).lowercased())"
        let agents = try await self.cluster.startCluster(
            3, prefix: "own", extraConfig: "redis = \"redis://127.0.0.1:\(port)/0\"\n[registry]\nmin_deregister_critical_after = \"2s\"")
        defer { for agent in agents { agent.kill9() } }
        let owner = agents[2]
        let survivors = Array(agents[0..<2])
        for id in ["p-1", "p-2"] {
            #expect(try await self.register(owner, service, id, #"{"address":"127.0.0.1","port":9000,"deregister_critical_after":"4s"}"#).status == 200)
        }
        for agent in survivors {
            _ = try await self.waitFor("registrations replicated") { await self.status(agent, service, "p-2") == "passing" }
        }
        // When
        owner.kill9()
        let killed = ContinuousClock.now
        // Then: critical on every survivor (the owner is dead in gossip)
        for agent in survivors {
            _ = try await self.waitFor("critical on \(agent.node)") {
                let first = await self.status(agent, service, "p-1")
                let second = await self.status(agent, service, "p-2")
                return first == "critical" && second == "critical"
            }
        }
        let detection = ContinuousClock.now - killed
        let view = await self.instance(survivors[1], service, "p-1")
        #expect(view?["owner_alive"] as? Bool == false)
        _ = try await self.waitFor("critical in Redis") { try redisCLI(port, ["HGET", "gossamer:svc:\(service)", "p-1"]).contains("\"status\":\"critical\"") }
        // Then removed after deregister_critical_after, once, by one agent
        for agent in survivors {
            _ = try await self.waitFor("removed on \(agent.node)", timeout: .seconds(30)) {
                let first = await self.instance(agent, service, "p-1")
                let second = await self.instance(agent, service, "p-2")
                return first == nil && second == nil
            }
        }
        for agent in survivors {
            let history = try await agent.client.send(.GET, "/v1/kv/_gossamer/registry/instances/\(service)/p-1", query: [("history", nil)])
            let versions = (try JSONSerialization.jsonObject(with: history.body) as? [[String: Any]]) ?? []
            #expect(versions.filter { $0["deleted"] as? Bool == true }.count == 1, "exactly one removal on \(agent.node): \(versions.count) versions")
        }
        _ = try await self.waitFor("removed from Redis") { try redisCLI(port, ["HLEN", "gossamer:svc:\(service)"]).contains("0") }
        print("owner death seen as critical after \(detection)")
    }

    @Test(.enabled(if: redisAvailable)) func test_redisStopsAndReturns_registryKeepsServing_cacheRebuilt() async throws {
        let redis = try OwnRedis()
        try await redis.start()
        let agent = try AgentProcess(node: "cache", extraArguments: ["--redis", "redis://127.0.0.1:\(redis.port)/0"])
        try await agent.start()
        defer { agent.kill9() }
        #expect(try await self.register(agent, "cart", "c-1", #"{"address":"127.0.0.1","port":1}"#).status == 200)
        _ = try await self.waitFor("in Redis") { try redisCLI(redis.port, ["HEXISTS", "gossamer:svc:cart", "c-1"]).contains("1") }

        // When Redis stops
        redis.stop()
        // Then registrations and lookups still work, and /health says the cache is degraded
        #expect(try await self.register(agent, "cart", "c-2", #"{"address":"127.0.0.1","port":2}"#).status == 200)
        let lookup = try await agent.client.send(.GET, "/v1/services/cart")
        #expect((lookup.json["instances"] as? [[String: Any]])?.count == 2)
        _ = try await self.waitFor("health shows degraded") {
            let health = try await agent.client.send(.GET, "/health")
            return health.status == 200 && health.json["status"] as? String == "degraded"
                && ((health.json["checks"] as? [String: Any])?["redis"] as? String)?.hasPrefix("degraded") == true
        }

        let degraded = String(decoding: try await agent.client.send(.GET, "/metrics").body, as: UTF8.self)
        #expect(degraded.contains("gossamer_redis_cache_up 0"), "the cache state is in /metrics too")
        #expect(degraded.contains(#"gossamer_registry_instances{service="cart",status="passing"} 2"#))

        // When Redis returns (empty)
        try await redis.start()
        // Then the cache is rebuilt without a restart and equals the store
        _ = try await self.waitFor("cache rebuilt", timeout: .seconds(20)) {
            try redisCLI(redis.port, ["HKEYS", "gossamer:svc:cart"]).split(separator: "\n").map(String.init).sorted() == ["c-1", "c-2"]
        }
        _ = try await self.waitFor("health ok") { try await agent.client.send(.GET, "/health").json["status"] as? String == "ok" }
        #expect(String(decoding: try await agent.client.send(.GET, "/metrics").body, as: UTF8.self).contains("gossamer_redis_cache_up 1"))
        #expect(try redisCLI(redis.port, ["SMEMBERS", "gossamer:services"]).contains("cart"))
    }

    @Test(.enabled(if: redisAvailable)) func test_wrongRedisAddressOrPassword_clearErrorAtStart_agentRuns() async throws {
        let closed = try freePort()
        let unreachable = try AgentProcess(node: "noredis", extraArguments: ["--redis", "redis://127.0.0.1:\(closed)/0"])
        try await unreachable.start()
        defer { unreachable.kill9() }
        let redis = try OwnRedis(password: "s3cret")
        try await redis.start()
        let wrongPassword = try AgentProcess(node: "badpass", extraArguments: ["--redis", "redis://:wrong@127.0.0.1:\(redis.port)/0"])
        try await wrongPassword.start()
        defer { wrongPassword.kill9() }
        for (agent, expected) in [(unreachable, "127.0.0.1:\(closed)"), (wrongPassword, "password")] {
            _ = try await self.waitFor("a clear start-up error from \(agent.node)") {
                agent.logs.contains("redis cache unavailable") && agent.logs.contains(expected)
            }
            #expect(!agent.logs.contains("wrong@"), "the password is never logged")
            #expect(try await self.register(agent, "svc", "x-1", #"{"address":"127.0.0.1","port":1}"#).status == 200, "the agent still serves")
            let health = try await agent.client.send(.GET, "/health")
            #expect(health.status == 200 && health.json["status"] as? String == "degraded")
        }
        let badURL = try await runCLI(["agent", "--node-name", "x", "--redis", "http://nope"])
        #expect(badURL.status != 0 && badURL.stderr.contains("redis"))
    }

    /// SIGTERM ends an agent promptly even while a registry blocking lookup and a registry watch are open: both
    /// are answered and closed at shutdown instead of holding the HTTP server open for their `wait`.
    @Test func test_sigterm_withOpenRegistryWaits_exitsPromptly() async throws {
        let agent = try AgentProcess(node: "stop")
        try await agent.start()
        defer { agent.kill9() }
        let registered = try await self.register(agent, "web", "w-1", #"{"address":"127.0.0.1","port":8080,"status":"passing"}"#)
        #expect(registered.status == 200)
        let lookup = try await agent.client.send(.GET, "/v1/services/web")
        let index = try #require(lookup.headers.first { $0.0.lowercased() == "x-gossamer-index" }?.1)
        let client = agent.client
        let poll = Task { try await client.send(.GET, "/v1/services/web", query: [("index", index), ("wait", "5m")], timeout: .seconds(120)) }
        let watch = Task {
            var events = 0
            try await client.stream("/v1/services/web/watch") { event in
                if event.event == "instances" { events += 1 }
                return true
            }
            return events
        }
        try await Task.sleep(for: .seconds(1))
        let start = ContinuousClock.now
        let status = await agent.terminate()
        let took = ContinuousClock.now - start
        #expect(status == 0, "graceful shutdown exits 0: \(agent.logs)")
        #expect(took < .seconds(8), "shutdown took \(took) with a 5-minute blocking lookup and a watch open")
        let answer = try await poll.value
        #expect(answer.status == 200 && String(decoding: answer.body, as: UTF8.self).contains("w-1"))
        #expect(try await watch.value == 1, "the watch got its first event and ended")
    }

    @Test func test_badRegistrations_400NamingTheField_nothingStored() async throws {
        let agent = try AgentProcess(node: "bad")
        try await agent.start()
        defer { agent.kill9() }
        let cases: [(String, String, String)] = [
            ("svc", #"{"port":1}"#, "address"),
            ("svc", #"{"address":"h","port":0}"#, "port"),
            ("svc", #"{"address":"h","port":70000}"#, "port"),
            ("svc", #"{"address":"h","port":1,"weight":5000}"#, "weight"),
            ("svc", #"{"address":"h","port":1,"checks":[{"type":"grpc"}]}"#, "checks[0].type"),
            ("svc", #"{"address":"h","port":1,"meta":{"k":"\#(String(repeating: "x", count: 600))"}}"#, "meta.k"),
            ("svc", #"{"address":"h","port":"eighty"}"#, "port"),
            ("svc", #"not json"#, "body"),
            ("Bad_Name", #"{"address":"h","port":1}"#, "name"),
        ]
        for (service, body, field) in cases {
            let reply = try await self.register(agent, service, "x-1", body)
            let error = reply.json["error"] as? [String: Any]
            #expect(reply.status == 400 && error?["code"] as? String == "bad_registration" && error?["field"] as? String == field,
                    "\(body) → \(reply.status) \(String(decoding: reply.body, as: UTF8.self))")
        }
        let services = try await agent.client.send(.GET, "/v1/services")
        #expect(String(decoding: services.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == "[]", "nothing stored")
        let keys = try await agent.client.send(.GET, "/v1/kv/_gossamer/", query: [("keys", nil)])
        #expect(String(decoding: keys.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
        // The reserved prefix is not writable through the KV API.
        let direct = try await agent.client.send(.PUT, "/v1/kv/_gossamer/registry/instances/svc/x", body: Data("{}".utf8))
        #expect(direct.status == 403 && (direct.json["error"] as? [String: Any])?["code"] as? String == "reserved_key")
    }
}
