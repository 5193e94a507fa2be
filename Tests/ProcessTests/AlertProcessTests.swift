import Client
import Foundation
import NIOCore
import TestSupport
import Testing

/// A webhook receiver (python3 on a loopback port) that appends every POSTed body as one line to a file, and
/// can be stopped and restarted on the same port (a receiver that is down).
final class WebhookReceiver: @unchecked Sendable {
    let directory = temporaryDirectory()
    let port: Int
    private var process: Process?
    var url: String { "http://127.0.0.1:\(self.port)/hook" }
    var file: URL { self.directory.appendingPathComponent("received") }

    init() throws {
        self.port = try freePort()
        _ = FileManager.default.createFile(atPath: self.file.path, contents: nil)
    }

    func start() async throws {
        let script = """
            import http.server, sys, json
            path = sys.argv[2]
            class H(http.server.BaseHTTPRequestHandler):
                def do_POST(self):
                    body = self.rfile.read(int(self.headers.get('Content-Length', '0')))
                    with open(path, 'ab') as f: f.write(json.dumps(json.loads(body)).encode() + b'\\n')
                    self.send_response(200); self.send_header('Content-Length', '0'); self.end_headers()
                def log_message(self, *args): pass
            http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, String(self.port), self.file.path]
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        for _ in 0..<100 {
            if (try? runTool("python3", ["-c", "import socket; socket.create_connection(('127.0.0.1', \(self.port)), 1)"])) != nil { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ClientError("the webhook receiver did not start")
    }

    func stop() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Every payload received so far, in order.
    var payloads: [[String: Any]] {
        let text = (try? String(contentsOf: self.file, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    deinit {
        self.stop()
        try? FileManager.default.removeItem(at: self.directory)
    }
}

/// Alert rules end to end on a real agent: a rule on a gauge the test sets, a real webhook receiver (issue: Monitor).
@Suite(.serialized) struct AlertProcessTests {
    let registry = RegistryProcessTests()

    /// An agent with test gauges, 1 s evaluation, no group wait, and no default rules (so only the test's rule fires).
    func agent(_ node: String, dataDir: URL? = nil, extra: String = "") throws -> AgentProcess {
        let config = temporaryDirectory().appendingPathComponent("agent.toml")
        try """
            debug_metrics = true
            \(extra)
            [alerts]
            interval = "1s"
            group_wait = "0s"
            group_interval = "1s"
            default_rules = false
            """.write(to: config, atomically: true, encoding: .utf8)
        return try AgentProcess(node: node, dataDir: dataDir, extraArguments: ["--config", config.path])
    }

    func setGauge(_ agent: AgentProcess, _ value: Double) async throws {
        let reply = try await agent.client.send(.PUT, "/v1/debug/metrics/gossamer_debug_value", body: Data(#"{"value": \#(value)}"#.utf8))
        #expect(reply.status == 200, "\(reply.errorMessage)")
    }

    func putRule(_ agent: AgentProcess, _ json: String, name: String) async throws -> GossamerClient.Reply {
        try await agent.client.send(.PUT, "/v1/alerts/rules/\(name)", body: Data(json.utf8), headers: [("Content-Type", "application/json")])
    }

    func alerts(_ agent: AgentProcess) async throws -> [[String: Any]] {
        let reply = try await agent.client.send(.GET, "/v1/alerts")
        return ((reply.json["alerts"] as? [[String: Any]]) ?? []).compactMap { $0["alert"] as? [String: Any] }
    }

    /// Fires, notifies the Alertmanager v4 payload, holds under hysteresis, resolves and notifies the resolution;
    /// a silence suppresses the notification (the alert still shows); a receiver that is down gets the
    /// notification once it is back.
    @Test func test_ruleFires_notifiesWebhook_resolves_silenced_receiverDownRetried() async throws {
        let receiver = try WebhookReceiver()
        try await receiver.start()
        let agent = try self.agent("al1")
        try await agent.start()
        try await self.setGauge(agent, 1)
        let rule = """
            {"name": "value-high", "metric": "gossamer_debug_value", "op": ">", "threshold": 10, "recover": 5,
             "labels": {"team": "ops"}, "annotations": {"summary": "value is {{ $value }}"},
             "receivers": [{"webhook": "\(receiver.url)"}]}
            """
        let put = try await self.putRule(agent, rule, name: "value-high")
        #expect(put.status == 200, "\(put.errorMessage)")

        // Crossing → firing → webhook with the Alertmanager payload.
        try await self.setGauge(agent, 20)
        _ = try await self.registry.waitFor("a firing notification") { receiver.payloads.contains { $0["status"] as? String == "firing" } }
        let firing = try #require(receiver.payloads.first { $0["status"] as? String == "firing" })
        #expect(firing["version"] as? String == "4")
        #expect(firing["receiver"] as? String != nil && firing["groupKey"] as? String != nil)
        let firingAlert = try #require((firing["alerts"] as? [[String: Any]])?.first)
        let labels = (firingAlert["labels"] as? [String: String]) ?? [:]
        #expect(labels["alertname"] == "value-high" && labels["team"] == "ops" && labels["severity"] == "warning")
        #expect((firingAlert["annotations"] as? [String: String])?["summary"] == "value is 20")
        #expect(firingAlert["endsAt"] as? String == "0001-01-01T00:00:00Z")
        #expect((try await self.alerts(agent)).first?["status"] as? String == "firing")

        // Between recover and threshold: still firing (hysteresis), no resolution sent.
        try await self.setGauge(agent, 7)
        try await Task.sleep(for: .seconds(3))
        #expect((try await self.alerts(agent)).first?["status"] as? String == "firing")
        #expect(!receiver.payloads.contains { $0["status"] as? String == "resolved" })

        // Below recover: resolved, notified with the resolving value's annotations.
        try await self.setGauge(agent, 3)
        _ = try await self.registry.waitFor("a resolved notification") { receiver.payloads.contains { $0["status"] as? String == "resolved" } }
        let resolved = try #require(receiver.payloads.last { $0["status"] as? String == "resolved" })
        let resolvedAlert = try #require((resolved["alerts"] as? [[String: Any]])?.first)
        #expect(resolvedAlert["status"] as? String == "resolved")
        #expect(resolvedAlert["endsAt"] as? String != "0001-01-01T00:00:00Z")
        #expect((resolvedAlert["annotations"] as? [String: String])?["summary"] == "value is 3")
        _ = try await self.registry.waitFor("no active alert") { try await self.alerts(agent).isEmpty }
        let history = try await agent.client.send(.GET, "/v1/alerts/history", query: [("rule", "value-high")])
        let transitions = ((history.json["transitions"] as? [[String: Any]]) ?? []).map { "\($0["from"] ?? "")→\($0["to"] ?? "")" }
        #expect(transitions == ["firing→resolved", "inactive→firing"], "\(transitions)")

        // A silence: the alert fires (visible) but nothing is sent; expiring it lets the notification out.
        let silence = try await agent.client.send(
            .POST, "/v1/alerts/silences", body: Data(#"{"matchers": [{"name": "alertname", "value": "value-high"}], "duration": "1h", "comment": "test"}"#.utf8))
        #expect(silence.status == 201, "\(silence.errorMessage)")
        let silenceID = try #require(silence.json["id"] as? String)
        let before = receiver.payloads.count
        try await self.setGauge(agent, 30)
        _ = try await self.registry.waitFor("the alert firing while silenced") { try await self.alerts(agent).first?["status"] as? String == "firing" }
        try await Task.sleep(for: .seconds(3))
        #expect(receiver.payloads.count == before, "a silenced alert was notified: \(receiver.payloads.suffix(1))")
        let expired = try await agent.client.send(.DELETE, "/v1/alerts/silences/\(silenceID)")
        #expect(expired.status == 200, "\(expired.errorMessage)")
        _ = try await self.registry.waitFor("the notification after the silence ends") { receiver.payloads.count > before }

        // The receiver goes down; the resolution is retried until it is back, not lost.
        receiver.stop()
        try await self.setGauge(agent, 0)
        _ = try await self.registry.waitFor("no active alert") { try await self.alerts(agent).isEmpty }
        try await Task.sleep(for: .seconds(3))
        let sentBefore = receiver.payloads.count
        try await receiver.start()
        _ = try await self.registry.waitFor("the resolution delivered after the receiver returned", timeout: .seconds(90)) {
            receiver.payloads.count > sentBefore && receiver.payloads.last?["status"] as? String == "resolved"
        }
        #expect(await agent.terminate() == 0)
    }

    /// A rule put on one agent replicates; each agent evaluates it on its own metrics; an alert raised by one agent
    /// is listed by every agent, and marked when its agent is gone.
    @Test func test_ruleReplicates_eachAgentEvaluates_alertsVisibleFromAnyAgent() async throws {
        let cluster = ReplicationProcessTests()
        let agents = try await cluster.startCluster(
            2, prefix: "ca", extraConfig: "debug_metrics = true\n[alerts]\ninterval = \"1s\"\ndefault_rules = false")
        let (a, b) = (agents[0], agents[1])
        let put = try await self.putRule(a, #"{"name": "hot", "metric": "gossamer_debug_value", "op": ">", "threshold": 10}"#, name: "hot")
        #expect(put.status == 200, "\(put.errorMessage)")
        _ = try await self.registry.waitFor("the rule on b") { try await b.client.send(.GET, "/v1/alerts/rules/hot").status == 200 }
        try await self.setGauge(a, 1)
        try await self.setGauge(b, 50)
        let seen = try await self.registry.waitFor("b's alert listed by a") {
            let reply = try await a.client.send(.GET, "/v1/alerts")
            let alerts = (reply.json["alerts"] as? [[String: Any]]) ?? []
            return alerts.contains { $0["node"] as? String == b.node && ($0["alert"] as? [String: Any])?["status"] as? String == "firing" }
        }
        let fromA = ((try await a.client.send(.GET, "/v1/alerts")).json["alerts"] as? [[String: Any]]) ?? []
        #expect(fromA.count == 1 && fromA.first?["node_alive"] as? Bool == true, "only b's metric is over the threshold: \(fromA)")
        #expect(seen < .seconds(10))
        b.kill9()
        _ = try await self.registry.waitFor("b marked down in a's list", timeout: .seconds(30)) {
            let alerts = ((try await a.client.send(.GET, "/v1/alerts")).json["alerts"] as? [[String: Any]]) ?? []
            return alerts.first?["node_alive"] as? Bool == false
        }
        #expect(await a.terminate() == 0)
    }

    /// A pending alert (for 4s) keeps its start across `kill -9`: after the restart it fires 4 s after it first went
    /// pending, not 4 s after the restart.
    @Test func test_pendingTimerSurvivesKill9() async throws {
        let data = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: data) }
        var agent = try self.agent("al2", dataDir: data)
        try await agent.start()
        let put = try await self.putRule(
            agent, #"{"name": "slow", "metric": "gossamer_debug_value", "op": ">", "threshold": 1, "for": "4s"}"#, name: "slow")
        #expect(put.status == 200, "\(put.errorMessage)")
        try await self.setGauge(agent, 5)
        _ = try await self.registry.waitFor("pending") { try await self.alerts(agent).first?["status"] as? String == "pending" }
        let activeAt = try #require((try await self.alerts(agent)).first?["active_at"] as? Int64)
        agent.kill9()

        agent = try self.agent("al2", dataDir: data)
        try await agent.start()
        try await self.setGauge(agent, 5)  // debug gauges live in memory: set it again
        _ = try await self.registry.waitFor("firing after the restart") { try await self.alerts(agent).first?["status"] as? String == "firing" }
        let alert = try #require(try await self.alerts(agent).first)
        #expect(alert["active_at"] as? Int64 == activeAt, "the pending start was kept")
        let firedAt = try #require(alert["fired_at"] as? Int64)
        #expect(firedAt - activeAt >= 4000 && firedAt - activeAt < 9000, "fired \(firedAt - activeAt) ms after going pending")
        #expect(await agent.terminate() == 0)
    }

    /// Bad rules answer 400 naming the field, and nothing is stored; an unknown metric is only a warning; the CLI
    /// applies a Prometheus rules file and lists the rules.
    @Test func test_badRules_400NamingTheField_nothingStored_cliAppliesPrometheusFile() async throws {
        let agent = try self.agent("al3")
        try await agent.start()
        let cases: [(String, String)] = [
            (#"{"name": "bad", "metric": "gossamer_debug_value", "op": "=>", "threshold": 1}"#, "op"),
            (#"{"name": "bad", "metric": "gossamer_debug_value", "op": ">", "threshold": 1, "recover": 2}"#, "recover"),
            (#"{"name": "bad", "metric": "gossamer_debug_value", "op": ">", "threshold": 1, "annotations": {"s": "{{ $nope }}"}}"#, "annotations.s"),
            (#"{"name": "bad", "metric": "gossamer_debug_value", "op": ">"}"#, "threshold"),
            (#"{"name": "bad", "metric": "gossamer_debug_value", "op": ">", "threshold": 1, "for": "soon"}"#, "for"),
            (#"{"name": "other", "metric": "gossamer_debug_value", "op": ">", "threshold": 1}"#, "name"),
            ("{not json", "body"),
        ]
        for (body, field) in cases {
            let reply = try await self.putRule(agent, body, name: "bad")
            let error = reply.json["error"] as? [String: Any]
            #expect(reply.status == 400 && error?["field"] as? String == field, "\(body): \(reply.status) \(reply.errorMessage)")
        }
        #expect(try await agent.client.send(.GET, "/v1/alerts/rules/bad").status == 404)
        let warned = try await self.putRule(agent, #"{"name": "nometric", "metric": "gossamer_nothing_here", "op": ">", "threshold": 1}"#, name: "nometric")
        #expect(warned.status == 200 && !((warned.json["warnings"] as? [Any]) ?? []).isEmpty, "\(warned.errorMessage)")

        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("rules.yml")
        try """
            groups:
              - name: gossamer
                rules:
                  - alert: ValueHigh
                    expr: gossamer_debug_value{job=""} > 100
                    for: 1m
                    labels: {severity: critical}
                    annotations: {summary: "value {{ $value }}"}
            """.write(to: file, atomically: true, encoding: .utf8)
        var r = try await runCLI(["alerts", "rules", "apply", file.path, "--addr", agent.address])
        #expect(r.status == 0 && r.stdout.contains("ValueHigh"), "\(r)")
        r = try await runCLI(["alerts", "rules", "list", "--addr", agent.address])
        #expect(r.status == 0 && r.stdout.contains("ValueHigh") && r.stdout.contains("critical") && r.stdout.contains("nometric"), "\(r)")
        try """
            groups:
              - name: g
                rules:
                  - alert: Rate
                    expr: rate(x_total[5m]) > 1
            """.write(to: file, atomically: true, encoding: .utf8)
        r = try await runCLI(["alerts", "rules", "apply", file.path, "--addr", agent.address])
        #expect(r.status == 1 && r.stderr.contains("nothing applied") && r.stderr.contains("Rate"), "\(r)")
        #expect(try await agent.client.send(.GET, "/v1/alerts/rules/Rate").status == 404)
        r = try await runCLI(["alerts", "list", "--addr", agent.address])
        #expect(r.status == 0, "\(r)")

        // Rules version and roll back like any key.
        _ = try await self.putRule(agent, #"{"name": "vers", "metric": "gossamer_debug_value", "op": ">", "threshold": 1}"#, name: "vers")
        _ = try await self.putRule(agent, #"{"name": "vers", "metric": "gossamer_debug_value", "op": ">", "threshold": 2}"#, name: "vers")
        let history = try await agent.client.send(.GET, "/v1/alerts/rules/vers", query: [("history", nil)])
        #expect(((history.json["versions"] as? [[String: Any]]) ?? []).map { $0["version"] as? Int } == [2, 1], "\(history.json)")
        r = try await runCLI(["alerts", "rules", "rollback", "vers", "1", "--addr", agent.address])
        #expect(r.status == 0 && r.stdout.contains("now version 3"), "\(r)")
        let rolled = try await agent.client.send(.GET, "/v1/alerts/rules/vers")
        #expect((rolled.json["rule"] as? [String: Any])?["threshold"] as? Double == 1 && rolled.json["version"] as? Int == 3, "\(rolled.json)")
        r = try await runCLI(["alerts", "rules", "history", "vers", "--diff", "2,3", "--addr", agent.address])
        #expect(r.status == 0 && r.stdout.contains("-") && r.stdout.contains("threshold"), "\(r)")
        let direct = try await agent.client.send(.PUT, "/v1/kv/_gossamer/alerts/rules/vers", body: Data("{}".utf8))
        #expect(direct.status == 403, "the KV API does not write alert records")

        // Silences from the CLI: add, list, expire; a bad matcher is a usage error.
        r = try await runCLI(["alerts", "silence", "add", "--match", "alertname=vers", "--match", "zone=~eu-.*", "--duration", "30m", "--comment", "maint", "--addr", agent.address])
        #expect(r.status == 0 && r.stdout.hasPrefix("silence "), "\(r)")
        let silenceID = String(r.stdout.dropFirst("silence ".count).prefix { $0 != " " })
        r = try await runCLI(["alerts", "silence", "list", "--addr", agent.address])
        #expect(r.status == 0 && r.stdout.contains(silenceID) && r.stdout.contains("zone=~eu-.*") && r.stdout.contains("maint"), "\(r)")
        r = try await runCLI(["alerts", "silence", "expire", silenceID, "--addr", agent.address])
        #expect(r.status == 0, "\(r)")
        r = try await runCLI(["alerts", "silence", "list", "--addr", agent.address])
        #expect(r.status == 0 && r.stdout.contains("No active silences"), "\(r)")
        r = try await runCLI(["alerts", "silence", "add", "--match", "novalue", "--addr", agent.address])
        #expect(r.status == 2, "\(r)")
        r = try await runCLI(["alerts", "silence", "add", "--match", "zone=~(", "--addr", agent.address])
        #expect(r.status == 1 && r.stderr.contains("zone"), "a bad regex is refused naming the matcher: \(r)")
        #expect(await agent.terminate() == 0)
    }

    /// `/metrics` passes `promtool check metrics` (Debian's prometheus package), with system, HTTP and alert-relevant
    /// metrics present; `/ready` answers.
    @Test func test_metrics_passPromtool_readyAnswers() async throws {
        let agent = try self.agent("al4")
        try await agent.start()
        _ = try await agent.client.send(.GET, "/v1/kv/nothing")
        // Reads of a cached key and lookups are answered before the router (FastPath), and counted under the same
        // route as the reads the router answers (`?version=`, `?index=`).
        _ = try await agent.client.send(.PUT, "/v1/kv/app/flag", body: Data("on".utf8))
        for _ in 0..<3 {
            let read = try await agent.client.send(.GET, "/v1/kv/app/flag", query: [("raw", nil)])
            #expect(read.status == 200 && read.body == Data("on".utf8), "\(read)")
        }
        _ = try await agent.client.send(.GET, "/v1/kv/app/flag", query: [("version", "1")])
        let registered = try await agent.client.send(
            .PUT, "/v1/services/pay/instances/p1", body: Data(#"{"address":"127.0.0.1","port":9001,"status":"passing"}"#.utf8))
        #expect(registered.status == 200, "\(registered)")
        for query in [[("passing", nil)], [("index", "0")]] as [[(String, String?)]] {
            let lookup = try await agent.client.send(.GET, "/v1/services/pay", query: query)
            #expect(lookup.status == 200 && lookup.header("X-Gossamer-Index") != nil, "\(lookup)")
        }
        try await Task.sleep(for: .milliseconds(1500))  // the CPU ratios need a second /proc reading
        let metrics = try await agent.client.send(.GET, "/metrics")
        let text = String(decoding: metrics.body, as: UTF8.self)
        for name in [
            "gossamer_system_cpu_busy_ratio", "gossamer_process_resident_memory_bytes", "gossamer_disk_used_ratio", "gossamer_process_open_fds",
            "gossamer_network_receive_bytes_total", "gossamer_http_requests_total", "gossamer_kv_keys", "gossamer_system_memory_used_bytes",
        ] {
            #expect(text.contains("\n\(name)"), "missing \(name)")
        }
        #expect(text.contains(#"gossamer_http_requests_total{method="GET",route="/v1/kv/**",status="200"} 4"#), "HTTP metrics by route: \(text)")
        #expect(text.contains(#"gossamer_http_requests_total{method="GET",route="/v1/services/{service}",status="200"} 2"#), "\(text)")
        let promtoolPresent = FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool")
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            #expect(promtoolPresent, "promtool (Debian package prometheus) is required in CI")
        }
        if promtoolPresent {
            let file = temporaryDirectory().appendingPathComponent("metrics.txt")
            try metrics.body.write(to: file)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "promtool check metrics < \(file.path) 2>&1"]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0 && output.isEmpty, "promtool: \(output)")
        }
        let ready = try await agent.client.send(.GET, "/ready")
        #expect(ready.status == 200 && ready.json["status"] as? String == "ready", "\(ready.json)")
        #expect(await agent.terminate() == 0)
    }
}
