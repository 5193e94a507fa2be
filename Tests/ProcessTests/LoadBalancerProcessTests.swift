import Client
import Foundation
import NIOCore
import Testing

/// A real `gossamer lb` child process in front of real agents (issue: load balancing).
final class LBProcess: @unchecked Sendable {
    // Only touched from the test that owns it.
    let process = Process()
    let logDir = temporaryDirectory()
    private(set) var address = ""

    init(arguments: [String]) throws {
        self.process.executableURL = URL(fileURLWithPath: try gossamerBinary())
        self.process.arguments = ["lb", "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--gossip-profile", "local"] + arguments
        _ = FileManager.default.createFile(atPath: self.logDir.appendingPathComponent("out").path, contents: nil)
        self.process.standardOutput = try FileHandle(forWritingTo: self.logDir.appendingPathComponent("out"))
        self.process.standardError = try FileHandle(forWritingTo: self.logDir.appendingPathComponent("out"))
    }

    var logs: String { (try? String(contentsOf: self.logDir.appendingPathComponent("out"), encoding: .utf8)) ?? "" }

    func start() async throws {
        try self.process.run()
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let range = self.logs.range(of: #"listening on (http://[0-9.:]+)"#, options: .regularExpression) {
                self.address = String(self.logs[range].dropFirst("listening on ".count))
                return
            }
            guard self.process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ClientError("gossamer lb did not start: \(self.logs)")
    }

    deinit {
        if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: self.logDir)
    }
}

@Suite(.serialized) struct LoadBalancerProcessTests {
    let cluster = ReplicationProcessTests()

    /// The agents behind the lb (by X-Gossamer-Node) answering `GET /v1/status` through it.
    func spread(_ lb: LBProcess, requests: Int) async -> [String: Int] {
        let client = GossamerClient(base: lb.address)
        var seen: [String: Int] = [:]
        for _ in 0..<requests {
            if let reply = try? await client.send(.GET, "/v1/status", timeout: .seconds(2) as TimeAmount), reply.status == 200 {
                seen[reply.header("X-Gossamer-Node") ?? "?", default: 0] += 1
            } else {
                seen["error", default: 0] += 1
            }
        }
        return seen
    }

    /// The lb listens only once its pools are loaded, so the very first requests are served, not 503.
    @Test func test_lbListensOnceItsPoolsAreLoaded_firstRequestsAnswered() async throws {
        let agents = try await self.cluster.startCluster(2, prefix: "lbw")
        defer { for agent in agents { agent.kill9() } }
        let target = URL(string: agents[1].address)!
        let registered = try await agents[0].client.send(
            .PUT, "/v1/services/payments/instances/p1", body: Data(#"{"address":"127.0.0.1","port":\#(target.port ?? 0)}"#.utf8))
        #expect(registered.status == 200)
        let lb = try LBProcess(arguments: ["--join", agents[0].gossipAddress, "--route", "/svc/pay/=payments,/svc/none/=nothing-here"])
        try await lb.start()
        let client = GossamerClient(base: lb.address)
        let agentsRoute = try await client.send(.GET, "/v1/status", timeout: .seconds(2) as TimeAmount)
        #expect(agentsRoute.status == 200, "\(agentsRoute.status): \(String(decoding: agentsRoute.body, as: UTF8.self))")
        let serviceRoute = try await client.send(.GET, "/svc/pay/v1/status", timeout: .seconds(2) as TimeAmount)
        #expect(serviceRoute.status == 200, "\(serviceRoute.status): \(String(decoding: serviceRoute.body, as: UTF8.self))")
        #expect(serviceRoute.header("X-Gossamer-Node") == agents[1].node)
        // A service with no instances is loaded too (empty): no warm-up warning, and its route answers 503.
        let empty = try await client.send(.GET, "/svc/none/", timeout: .seconds(2) as TimeAmount)
        #expect(empty.status == 503)
        #expect(!lb.logs.contains("listening before every pool is loaded"), "\(lb.logs.suffix(1500))")
    }

    @Test func test_threeAgentsAndLB_kill9OneUnderLoad_lbStopsRoutingToIt() async throws {
        let agents = try await self.cluster.startCluster(3, prefix: "lbt")
        defer { for agent in agents { agent.kill9() } }
        let lb = try LBProcess(arguments: ["--join", agents[0].gossipAddress, "--route", "/svc/pay/=payments"])
        try await lb.start()
        // The lb learns every agent from gossip.
        let start = ContinuousClock.now
        var seen: [String: Int] = [:]
        while Set(seen.keys) != Set(agents.map(\.node)) {
            guard ContinuousClock.now - start < .seconds(30) else {
                Issue.record("the lb never spread over all agents: \(seen)\n\(lb.logs.suffix(2000))")
                return
            }
            seen = await self.spread(lb, requests: 30)
        }
        // Service routing: /svc/pay/ goes to the passing instances of "payments" (here: agent 1's API), prefix stripped.
        let target = URL(string: agents[1].address)!
        let registered = try await agents[0].client.send(
            .PUT, "/v1/services/payments/instances/p1", body: Data(#"{"address":"127.0.0.1","port":\#(target.port ?? 0)}"#.utf8))
        #expect(registered.status == 200)
        var routed: String?
        for _ in 0..<100 where routed != agents[1].node {
            routed = try? await GossamerClient(base: lb.address).send(.GET, "/svc/pay/v1/status", timeout: .seconds(2) as TimeAmount)
                .header("X-Gossamer-Node")
            if routed != agents[1].node { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(routed == agents[1].node, "the service route reached \(routed ?? "nothing")")

        // Round robin: each agent about a third of 300 requests.
        let even = await self.spread(lb, requests: 300)
        for agent in agents { #expect((70...130).contains(even[agent.node] ?? 0), "\(even)") }

        // When: kill -9 one agent while requests flow
        let victim = agents[2]
        let load = Task { await self.spread(lb, requests: 600) }
        try await Task.sleep(for: .milliseconds(300))
        victim.kill9()
        let during = await load.value
        // Then: idempotent GETs to the dead agent are retried elsewhere: no failed requests
        #expect(during["error"] == nil, "requests failed while an agent died: \(during)")
        // And soon nothing goes to it (gossip detection), and it is not listed as a healthy upstream
        let after = await self.spread(lb, requests: 100)
        #expect(after[victim.node] == nil && after["error"] == nil, "\(after)")
        let upstreams = try await GossamerClient(base: lb.address).send(.GET, "/_lb/upstreams")
        #expect(upstreams.status == 200)
        print("lb spread while an agent died: \(during)")
    }
}
