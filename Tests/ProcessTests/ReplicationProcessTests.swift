import Client
import Foundation
import NIOCore
import TestSupport
import Testing

/// Replication between real agent processes on loopback (issue: replication and consistency checks).
@Suite(.serialized) struct ReplicationProcessTests {
    /// Agents with fast anti-entropy and fault injection on; `extraConfig` adds config-file lines.
    func startCluster(_ count: Int, prefix: String, extraConfig: String = "") async throws -> [AgentProcess] {
        var agents: [AgentProcess] = []
        for index in 0..<count {
            let agent = try self.makeAgent("\(prefix)\(index)", seed: agents.first?.gossipAddress, extraConfig: extraConfig)
            try await agent.start()
            agents.append(agent)
        }
        do {
            _ = try await eventually("\(count) agents alive everywhere", agents: agents) { view in
                view.count == count && view.values.allSatisfy { $0.status == "alive" }
            }
        } catch {
            for agent in agents {
                let state = agent.process.isRunning
                    ? "running" : "exited (status \(agent.process.terminationStatus), reason \(agent.process.terminationReason.rawValue))"
                Issue.record("\(agent.node) \(state):\n\(agent.logs.suffix(3000))")
            }
            throw error
        }
        // Replication learns peers (and their HTTP address, a gossip tag) from gossip a moment later: wait until
        // every agent replicates with all others. The `local` profile retransmits a tag update only twice, so a
        // member can miss it and learn it at the next push-pull (15 s): allow for that.
        let start = ContinuousClock.now
        for agent in agents {
            while (await self.consistency(agent)["peers"] as? [Any])?.count != count - 1 {
                guard ContinuousClock.now - start < .seconds(40) else { throw ClientError("\(agent.node) never saw all its peers") }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        return agents
    }

    func makeAgent(_ node: String, seed: String?, dataDir: URL? = nil, gossip: String = "127.0.0.1:0", extraConfig: String = "") throws -> AgentProcess {
        let config = temporaryDirectory().appendingPathComponent("agent.toml")
        try FileManager.default.createDirectory(at: config.deletingLastPathComponent(), withIntermediateDirectories: true)
        try """
        gossip_profile = "local"
        \(extraConfig)
        [replication]
        anti_entropy_interval = "1s"
        """.write(to: config, atomically: true, encoding: .utf8)
        var arguments = ["--gossip", gossip, "--config", config.path]
        if let seed { arguments += ["--join", seed] }
        return try AgentProcess(node: node, dataDir: dataDir, extraArguments: arguments, environment: ["GOSSAMER_FAULT_INJECTION": "1"])
    }

    func put(_ agent: AgentProcess, _ key: String, _ value: String, query: [(String, String?)] = []) async throws -> GossamerClient.Reply {
        try await agent.client.send(.PUT, "/v1/kv/\(key)", query: query, body: Data(value.utf8))
    }

    func value(_ agent: AgentProcess, _ key: String) async -> String? {
        guard let reply = try? await agent.client.send(.GET, "/v1/kv/\(key)", timeout: .seconds(2) as TimeAmount), reply.status == 200 else {
            return nil
        }
        return reply.json["value"] as? String
    }

    func consistency(_ agent: AgentProcess) async -> [String: Any] {
        (try? await agent.client.send(.GET, "/v1/consistency", timeout: .seconds(3) as TimeAmount))?.json ?? [:]
    }

    /// Waits until every agent reports the same root digest and key count; returns how long it took.
    @discardableResult
    func converged(_ agents: [AgentProcess], keys: Int? = nil, timeout: Duration = .seconds(30)) async throws -> Duration {
        let start = ContinuousClock.now
        var last: [String] = []
        while ContinuousClock.now - start < timeout {
            var roots = Set<String>()
            var counts = Set<Int>()
            last = []
            for agent in agents {
                let status = await self.consistency(agent)
                roots.insert(status["root"] as? String ?? "?")
                counts.insert(status["keys"] as? Int ?? -1)
                last.append("\(agent.node): root \(status["root"] ?? "?") keys \(status["keys"] ?? "?")")
            }
            if roots.count == 1, counts.count == 1, keys == nil || counts.first == keys { return ContinuousClock.now - start }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("agents did not converge within \(timeout): \(last.joined(separator: "; "))")
        throw ClientError("no convergence")
    }

    func block(_ agent: AgentProcess, _ nodes: [String]) async throws {
        let body = try JSONSerialization.data(withJSONObject: ["block": nodes])
        let reply = try await agent.client.send(.POST, "/v1/internal/faults", body: body)
        #expect(reply.status == 200)
    }

    /// A write on one agent is readable on all; 1,000 writes spread over all agents converge to one digest.
    @Test func test_threeAgents_writeAnywhereReadEverywhere_thousandWritesConverge() async throws {
        let agents = try await self.startCluster(3, prefix: "w")
        defer { for agent in agents { agent.kill9() } }

        let written = try await self.put(agents[0], "app/greeting", "hello")
        #expect(written.status == 200)
        let start = ContinuousClock.now
        var seen = false
        while ContinuousClock.now - start < .seconds(5) && !seen {
            var all = true
            for agent in agents where await self.value(agent, "app/greeting") != "hello" { all = false }
            seen = all
            if !seen { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(seen, "the write was not readable on every agent within 5 s")
        #expect(ContinuousClock.now - start < .seconds(1), "write-to-everywhere took \(ContinuousClock.now - start)")

        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<16 {
                group.addTask {
                    for index in stride(from: worker, to: 1000, by: 16) {
                        let reply = try await self.put(agents[index % 3], "bulk/\(index)", "value-\(index)")
                        #expect(reply.status == 200)
                    }
                }
            }
            try await group.waitForAll()
        }
        try await self.converged(agents, keys: 1001)
        for agent in agents { #expect(await self.value(agent, "bulk/999") == "value-999") }
    }

    /// Concurrent writes to one key on two agents converge to the same winner everywhere with one conflict
    /// recorded; a CAS race on two agents lets both succeed, as docs/consistency.md says, and converges the same way.
    @Test func test_fiveAgents_concurrentWritesAndCASRace_sameWinnerOneConflictEverywhere() async throws {
        let agents = try await self.startCluster(5, prefix: "c")
        defer { for agent in agents { agent.kill9() } }
        let (a, b) = (agents[0], agents[1])
        #expect(try await self.put(a, "race/cas", "v1", query: [("replicas", "all")]).status == 200)

        // a and b see no one (so no anti-entropy relays one's write to the other): their writes are concurrent.
        try await self.block(a, agents.map(\.node).filter { $0 != a.node })
        try await self.block(b, agents.map(\.node).filter { $0 != b.node })
        async let fromA = self.put(a, "race/plain", "from-a")
        async let fromB = self.put(b, "race/plain", "from-b")
        async let casA = self.put(a, "race/cas", "cas-a", query: [("cas", "1")])
        async let casB = self.put(b, "race/cas", "cas-b", query: [("cas", "1")])
        let replies = try await [fromA, fromB, casA, casB]
        #expect(
            replies.map(\.status) == [200, 200, 200, 200],
            "both CAS writes succeed: each agent checks its own view; got \(replies.map { String(decoding: $0.body, as: UTF8.self) })")
        try await self.block(a, [])
        try await self.block(b, [])
        // Pushing resumes where it stopped when a peer comes back: each side gets the other's write and records
        // the loser, on every agent.

        try await self.converged(agents)
        for agent in agents {
            let plain = try await agent.client.send(.GET, "/v1/kv/race/plain").json
            let cas = try await agent.client.send(.GET, "/v1/kv/race/cas").json
            #expect(Set(["from-a", "from-b"]).contains(plain["value"] as? String ?? ""))
            #expect(plain["value"] as? String == (await self.value(agents[0], "race/plain")))
            #expect(cas["value"] as? String == (await self.value(agents[0], "race/cas")))
        }
        // Every agent ends up holding both writes of each key and records the loser (pushes resume after the heal).
        for agent in agents {
            var keys: [String] = []
            let start = ContinuousClock.now
            while ContinuousClock.now - start < .seconds(10) {
                let conflicts = try await agent.client.send(.GET, "/v1/conflicts", query: [("prefix", "race/")])
                let list = try #require(try JSONSerialization.jsonObject(with: conflicts.body) as? [[String: Any]])
                keys = list.compactMap { $0["key"] as? String }.sorted()
                if keys.count >= 2 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            if keys != ["race/cas", "race/plain"] {
                var diagnostics = ""
                for key in ["race/cas", "race/plain"] {
                    let history = try await agent.client.send(.GET, "/v1/kv/\(key)", query: [("history", nil)])
                    diagnostics += "\n\(key) history: \(String(decoding: history.body, as: UTF8.self))"
                }
                let consistency = try await agent.client.send(.GET, "/v1/consistency")
                diagnostics += "\nconsistency: \(String(decoding: consistency.body, as: UTF8.self))"
                Issue.record("\(agent.node) lists conflicts for \(keys), expected one per key\(diagnostics)")
            }
        }
    }

    /// A partition: both sides keep accepting writes; after healing all converge and nothing acknowledged is lost.
    @Test func test_partition_bothSidesWrite_convergeAfterHeal_nothingLost() async throws {
        let agents = try await self.startCluster(5, prefix: "p")
        defer { for agent in agents { agent.kill9() } }
        let left = Array(agents[0..<2])
        let right = Array(agents[2..<5])
        for agent in left { try await self.block(agent, right.map(\.node)) }
        for agent in right { try await self.block(agent, left.map(\.node)) }

        for index in 0..<50 {
            #expect(try await self.put(left[index % 2], "split/left-\(index)", "L\(index)").status == 200)
            #expect(try await self.put(right[index % 3], "split/right-\(index)", "R\(index)").status == 200)
        }
        try await Task.sleep(for: .seconds(2))
        #expect(await self.value(right[0], "split/left-0") == nil, "the partition let a write through")
        #expect(await self.value(left[0], "split/right-0") == nil, "the partition let a write through")

        for agent in agents { try await self.block(agent, []) }
        let healed = try await self.converged(agents, keys: 100, timeout: .seconds(45))
        #expect(healed < .seconds(30), "convergence after healing took \(healed) (docs/consistency.md promises 30 s)")
        for agent in agents {
            #expect(await self.value(agent, "split/left-49") == "L49")
            #expect(await self.value(agent, "split/right-49") == "R49")
        }
    }

    /// `kill -9` in the middle of a write stream; every write acknowledged with `replicas=2` survives even when
    /// the killed agent's disk is wiped, and the restarted agent catches up.
    @Test func test_kill9_midStream_replicas2WritesSurviveWipe_restartCatchesUp() async throws {
        let agents = try await self.startCluster(3, prefix: "k")
        defer { for agent in agents { agent.kill9() } }
        let victim = agents[0]
        let gossip = victim.gossipAddress
        let acknowledged = Locked<[Int]>([])
        let writer = Task {
            for index in 0..<2000 {
                guard let reply = try? await self.put(victim, "stream/\(index)", "v\(index)", query: [("replicas", "2")]) else { return }
                if reply.status == 200 { acknowledged.withLock { $0.append(index) } }
            }
        }
        while acknowledged.withLock({ $0.count }) < 200 { try await Task.sleep(for: .milliseconds(5)) }
        victim.kill9()
        await writer.value
        let acked = acknowledged.withLock { $0 }
        #expect(acked.count >= 200)

        try FileManager.default.removeItem(at: victim.dataDir)
        let restarted = try self.makeAgent(victim.node, seed: agents[1].gossipAddress, dataDir: victim.dataDir, gossip: gossip)
        try await restarted.start()
        defer { restarted.kill9() }
        let cluster = [restarted, agents[1], agents[2]]
        try await self.converged(cluster, timeout: .seconds(45))
        for agent in cluster {
            for index in acked where index % 20 == 0 || index == acked.last {
                #expect(await self.value(agent, "stream/\(index)") == "v\(index)", "\(agent.node) lost acknowledged write \(index)")
            }
        }
        let counts = try await restarted.client.send(.GET, "/v1/kv/stream/", query: [("keys", nil)])
        let keys = try #require(try JSONSerialization.jsonObject(with: counts.body) as? [String])
        #expect(Set(acked.map { "stream/\($0)" }).isSubset(of: Set(keys)))
    }

    /// A key deleted while an agent was away stays deleted when it comes back; an agent away longer than the
    /// tombstone horizon resyncs fully instead of resurrecting keys whose deletes the others have forgotten.
    @Test func test_deletesNotResurrected_agentAwayPastHorizonResyncsFully() async throws {
        let config = """
            [retention]
            tombstone_horizon = "5s"
            compact_every = "1s"
            """
        let agents = try await self.startCluster(3, prefix: "h", extraConfig: config)
        defer { for agent in agents { agent.kill9() } }
        for key in ["gone/short", "gone/long", "stays"] {
            #expect(try await self.put(agents[0], key, "v", query: [("replicas", "all")]).status == 200)
        }
        let away = agents[2]
        let gossip = away.gossipAddress

        // Short absence: the delete reaches the returning agent, the key does not come back.
        #expect(await away.terminate() == 0)
        #expect(try await agents[0].client.send(.DELETE, "/v1/kv/gone/short").status == 200)
        var back = try self.makeAgent(away.node, seed: agents[0].gossipAddress, dataDir: away.dataDir, gossip: gossip, extraConfig: config)
        try await back.start()
        try await self.converged([agents[0], agents[1], back])
        for agent in [agents[0], agents[1], back] { #expect(await self.value(agent, "gone/short") == nil) }

        // Long absence (past the 5 s horizon): the others delete and then forget gone/long.
        #expect(await back.terminate() == 0)
        #expect(try await agents[0].client.send(.DELETE, "/v1/kv/gone/long").status == 200)
        try await Task.sleep(for: .seconds(8))
        back = try self.makeAgent(away.node, seed: agents[0].gossipAddress, dataDir: away.dataDir, gossip: gossip, extraConfig: config)
        try await back.start()
        defer { back.kill9() }
        try await self.converged([agents[0], agents[1], back])
        try await Task.sleep(for: .seconds(2))
        for agent in [agents[0], agents[1], back] {
            #expect(await self.value(agent, "gone/long") == nil, "\(agent.node) holds a key deleted while \(away.node) was away")
            #expect(await self.value(agent, "stays") == "v")
        }
        #expect(back.logs.contains("resync"), "the returning agent did not report a full resync")
    }

    /// `gossamer snapshot save` from a live agent, `snapshot restore` into an empty data dir, and a new agent on
    /// it joins and reconciles: it ends with the cluster's data, including writes made after the snapshot.
    @Test func test_snapshotSaveRestore_newAgentJoinsAndReconciles() async throws {
        let agents = try await self.startCluster(2, prefix: "s")
        defer { for agent in agents { agent.kill9() } }
        for index in 0..<50 { #expect(try await self.put(agents[index % 2], "snap/\(index)", "v\(index)").status == 200) }
        let file = temporaryDirectory().appendingPathComponent("cluster.snapshot")
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        let saved = try await runCLI(["snapshot", "save", file.path, "--addr", agents[0].address])
        #expect(saved.status == 0, "\(saved.stderr)")
        let dataDir = temporaryDirectory().appendingPathComponent("restored")
        let restored = try await runCLI(["snapshot", "restore", file.path, "--data-dir", dataDir.path])
        #expect(restored.status == 0, "\(restored.stderr)")
        let again = try await runCLI(["snapshot", "restore", file.path, "--data-dir", dataDir.path])
        #expect(again.status == 1 && again.stderr.contains("empty"), "restore over a store must be refused: \(again.stderr)")

        // Writes after the snapshot, then the restored agent joins.
        #expect(try await self.put(agents[1], "snap/after", "late").status == 200)
        #expect(try await agents[0].client.send(.DELETE, "/v1/kv/snap/0").status == 200)
        let newcomer = try self.makeAgent("s9", seed: agents[0].gossipAddress, dataDir: dataDir)
        try await newcomer.start()
        defer { newcomer.kill9() }
        try await self.converged(agents + [newcomer], keys: 50)
        #expect(await self.value(newcomer, "snap/after") == "late")
        #expect(await self.value(newcomer, "snap/0") == nil)
        #expect(await self.value(newcomer, "snap/49") == "v49")
    }
}
