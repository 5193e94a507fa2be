import Client
import Foundation
import NIOCore
import TestSupport
import Testing

/// Members as one agent sees them: name → (status, incarnation).
func memberView(_ agent: AgentProcess) async -> [String: (status: String, incarnation: Int)] {
    guard let reply = try? await agent.client.send(.GET, "/v1/members", timeout: .seconds(2) as TimeAmount),
        let list = try? JSONSerialization.jsonObject(with: reply.body) as? [[String: Any]]
    else { return [:] }
    var view: [String: (status: String, incarnation: Int)] = [:]
    for member in list {
        if let name = member["name"] as? String { view[name] = (member["status"] as? String ?? "?", member["incarnation"] as? Int ?? -1) }
    }
    return view
}

/// Polls until `condition` holds for every agent, or fails after `timeout`.
func eventually(
    _ what: String, timeout: Duration = .seconds(30), agents: [AgentProcess],
    _ condition: ([String: (status: String, incarnation: Int)]) -> Bool
) async throws -> Duration {
    let start = ContinuousClock.now
    while ContinuousClock.now - start < timeout {
        var all = true
        for agent in agents where !condition(await memberView(agent)) {
            all = false
            break
        }
        if all { return ContinuousClock.now - start }
        try await Task.sleep(for: .milliseconds(100))
    }
    var views: [String] = []
    for agent in agents { views.append("\(agent.node): \(await memberView(agent).mapValues { "\($0.status)#\($0.incarnation)" })") }
    Issue.record("timed out waiting for \(what): \(views.joined(separator: "; "))")
    throw ClientError("timeout: \(what)")
}

@Suite(.serialized) struct GossipProcessTests {
    func startCluster(_ count: Int, extra: [String] = []) async throws -> [AgentProcess] {
        let seed = try AgentProcess(node: "g0", extraArguments: ["--gossip", "127.0.0.1:0"] + extra)
        try await seed.start()
        var agents = [seed]
        for index in 1..<count {
            let agent = try AgentProcess(node: "g\(index)", extraArguments: ["--gossip", "127.0.0.1:0", "--join", seed.gossipAddress] + extra)
            try await agent.start()
            agents.append(agent)
        }
        return agents
    }

    /// Five real agents: join, a `kill -9` seen by every survivor, a graceful leave, and a restart that rejoins.
    @Test func test_fiveAgents_joinKillLeaveRestart() async throws {
        let agents = try await self.startCluster(5)
        defer { for agent in agents { agent.kill9() } }
        let names = Set(agents.map(\.node))
        _ = try await eventually("all five alive everywhere", agents: agents) { view in
            Set(view.keys) == names && view.values.allSatisfy { $0.status == "alive" }
        }

        // kill -9 g2: every survivor marks it dead.
        let victim = agents[2]
        let victimGossip = victim.gossipAddress
        victim.kill9()
        let survivors = agents.filter { $0 !== victim }
        let detection = try await eventually("g2 dead everywhere", agents: survivors) { $0["g2"]?.status == "dead" }
        #expect(detection < .seconds(15), "detection took \(detection)")

        // Graceful leave of g3: every remaining member shows it as left, and the process exits 0.
        let leaver = agents[3]
        let reply = try await leaver.client.send(.POST, "/v1/agent/leave")
        #expect(reply.status == 200)
        let remaining = survivors.filter { $0 !== leaver }
        _ = try await eventually("g3 left everywhere", agents: remaining) { $0["g3"]?.status == "left" }
        #expect(await leaver.terminate() == 0, "the leaver exits 0 by itself: \(leaver.logs)")

        // Restart g2 on its old address and data: it rejoins with a higher incarnation.
        let oldIncarnation = await memberView(agents[0])["g2"]?.incarnation ?? 0
        let restarted = try AgentProcess(
            node: "g2", dataDir: victim.dataDir, extraArguments: ["--gossip", victimGossip, "--join", agents[0].gossipAddress])
        try await restarted.start()
        defer { restarted.kill9() }
        _ = try await eventually("g2 alive again", agents: remaining + [restarted]) { view in
            view["g2"]?.status == "alive" && (view["g2"]?.incarnation ?? 0) > oldIncarnation
        }
    }

    /// A member with the wrong key is never admitted, and its packets change nothing.
    @Test func test_wrongKey_neverAdmitted() async throws {
        let keyA = "3p0Hk0bYbz3sQvCz1Bb7cZ0ixnJ2Yd2gkz9h8OQZ2lQ="
        let keyB = "bAr3nZ3mS5cQ3Pq0Ck4t1xq9rR3f1sVh5y2lLq8gQ0E="
        let a0 = try AgentProcess(node: "k0", extraArguments: ["--gossip", "127.0.0.1:0", "--encrypt-key", keyA])
        try await a0.start()
        defer { a0.kill9() }
        let a1 = try AgentProcess(node: "k1", extraArguments: ["--gossip", "127.0.0.1:0", "--encrypt-key", keyA, "--join", a0.gossipAddress])
        try await a1.start()
        defer { a1.kill9() }
        let intruder = try AgentProcess(node: "intruder", extraArguments: ["--gossip", "127.0.0.1:0", "--encrypt-key", keyB, "--join", a0.gossipAddress])
        try await intruder.start()
        defer { intruder.kill9() }
        _ = try await eventually("k0 and k1 see each other", agents: [a0, a1]) { $0["k0"]?.status == "alive" && $0["k1"]?.status == "alive" }
        try await Task.sleep(for: .seconds(3))
        #expect(await memberView(a0)["intruder"] == nil)
        #expect(await memberView(a1)["intruder"] == nil)
        #expect(await memberView(intruder).keys.sorted() == ["intruder"])
        let status = try await a0.client.send(.GET, "/v1/status")
        let gossip = status.json["gossip"] as? [String: Any]
        #expect((gossip?["decrypt_failures"] as? Int ?? 0) > 0, "the intruder's packets were refused")
    }

    /// Garbage datagrams to the gossip port are counted and dropped; membership is unchanged.
    @Test func test_garbageDatagrams_changeNothing() async throws {
        let agents = try await self.startCluster(2)
        defer { for agent in agents { agent.kill9() } }
        // Incarnation 1: each agent has gossiped its HTTP address tag (set once the API listens).
        _ = try await eventually("both alive with their tags", agents: agents) {
            $0.count == 2 && $0.values.allSatisfy { $0.status == "alive" && $0.incarnation >= 1 }
        }
        let before = await memberView(agents[0]).mapValues(\.incarnation)
        let port = try #require(UInt16(agents[0].gossipAddress.split(separator: ":").last ?? ""))
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var generator = SystemRandomNumberGenerator()
        for index in 0..<2_000 {
            var bytes = (0..<Int.random(in: 0...1400, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if index % 2 == 0, bytes.count > 3 { bytes[0] = 0x47; bytes[1] = 0x53; bytes[2] = 1 }  // a valid-looking header
            _ = withLoopbackAddress(port: Int(port)) { sendto(fd, bytes, bytes.count, 0, $0, $1) }
        }
        try await Task.sleep(for: .seconds(1))
        let after = await memberView(agents[0]).mapValues(\.incarnation)
        #expect(after == before)
        let status = try await agents[0].client.send(.GET, "/v1/status")
        let gossip = status.json["gossip"] as? [String: Any]
        #expect((gossip?["malformed_packets"] as? Int ?? 0) >= 1_000)
        #expect((try await agents[0].client.send(.GET, "/health")).status == 200)
    }
}

@Suite(.serialized) struct KeyringProcessTests {
    /// Serf-style rotation through the CLI: install, use, remove — applied on every member by gossip.
    @Test func test_keyringRotation_appliedClusterWide() async throws {
        let oldKey = try await runCLI(["keygen"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let newKey = try await runCLI(["keygen"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(oldKey.count == 44 && newKey.count == 44 && oldKey != newKey)
        let seed = try AgentProcess(node: "r0", extraArguments: ["--gossip", "127.0.0.1:0", "--encrypt-key", oldKey])
        try await seed.start()
        var agents = [seed]
        defer { for agent in agents { agent.kill9() } }
        for index in 1..<3 {
            let agent = try AgentProcess(node: "r\(index)", extraArguments: ["--gossip", "127.0.0.1:0", "--encrypt-key", oldKey, "--join", seed.gossipAddress])
            try await agent.start()
            agents.append(agent)
        }
        _ = try await eventually("three alive", agents: agents) { $0.count == 3 && $0.values.allSatisfy { $0.status == "alive" } }

        func keyring() async throws -> [String: (installed: Int, primary: Int)] {
            let reply = try await agents[1].client.send(.GET, "/v1/keyring")
            let keys = (reply.json["keys"] as? [[String: Any]]) ?? []
            var out: [String: (installed: Int, primary: Int)] = [:]
            for key in keys { out[key["fingerprint"] as? String ?? ""] = (key["installed"] as? Int ?? 0, key["primary"] as? Int ?? 0) }
            return out
        }
        func waitKeyring(_ what: String, _ condition: ([String: (installed: Int, primary: Int)]) -> Bool) async throws {
            let start = ContinuousClock.now
            while ContinuousClock.now - start < .seconds(20) {
                if condition(try await keyring()) { return }
                try await Task.sleep(for: .milliseconds(100))
            }
            Issue.record("keyring never reached: \(what): \(try await keyring())")
        }

        let addr = ["--addr", agents[0].address]
        var r = try await runCLI(["keyring", "install", newKey] + addr)
        #expect(r.status == 0, "\(r)")
        try await waitKeyring("new key on all 3") { ring in ring.count == 2 && ring.values.allSatisfy { $0.installed == 3 } }
        r = try await runCLI(["keyring", "use", newKey] + addr)
        #expect(r.status == 0, "\(r)")
        try await waitKeyring("new key primary on all 3") { ring in ring.values.contains { $0.primary == 3 } }
        r = try await runCLI(["keyring", "remove", oldKey] + addr)
        #expect(r.status == 0, "\(r)")
        try await waitKeyring("old key gone") { ring in ring.count == 1 && ring.values.first?.installed == 3 }
        r = try await runCLI(["keyring", "list"] + addr)
        #expect(r.stdout.contains("3/3"), "\(r)")
        r = try await runCLI(["keyring", "remove", newKey] + addr)
        #expect(r.status == 1 && r.stderr.contains("primary"), "removing the primary is refused: \(r)")

        // A newcomer with only the new key joins; the cluster stayed whole throughout.
        let late = try AgentProcess(node: "r3", extraArguments: ["--gossip", "127.0.0.1:0", "--encrypt-key", newKey, "--join", seed.gossipAddress])
        try await late.start()
        agents.append(late)
        _ = try await eventually("four alive", agents: agents) { $0.count == 4 && $0.values.allSatisfy { $0.status == "alive" } }
    }
}
