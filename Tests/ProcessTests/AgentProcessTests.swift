import Client
import Foundation
import NIOCore
import Synchronization
import TestSupport
import Testing

@Suite(.serialized) struct AgentProcessTests {
    /// The README's tour, command by command, against a real agent.
    @Test func test_cliTour_fromReadme_everyCommandWorks() async throws {
        let agent = try AgentProcess(node: "tour")
        try await agent.start()
        let addr = ["--addr", agent.address]
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("db.yaml")
        try "host: db1\nport: 5432\n".write(to: file, atomically: true, encoding: .utf8)

        var r = try await runCLI(["kv", "put", "prod/payments/db.yaml", "@\(file.path)", "--type", "yaml", "--author", "alice"] + addr)
        #expect(r.status == 0 && r.stdout.contains("version 1"), "\(r)")
        r = try await runCLI(["kv", "put", "prod/payments/db.yaml", "-", "--type", "yaml"] + addr, stdin: "host: db2\nport: 5432\n")
        #expect(r.status == 0 && r.stdout.contains("version 2"), "\(r)")
        r = try await runCLI(["kv", "get", "prod/payments/db.yaml"] + addr)
        #expect(r.stdout == "host: db2\nport: 5432\n", "\(r)")
        r = try await runCLI(["kv", "list", "prod/"] + addr)
        #expect(r.stdout.contains("prod/payments/db.yaml") && r.stdout.hasPrefix("KEY"), "\(r)")
        r = try await runCLI(["kv", "history", "prod/payments/db.yaml"] + addr)
        #expect(r.stdout.split(separator: "\n").count == 3 && r.stdout.contains("alice"), "\(r)")
        r = try await runCLI(["kv", "diff", "prod/payments/db.yaml", "1", "2"] + addr)
        #expect(r.stdout.contains("-host: db1\n+host: db2"), "\(r)")
        r = try await runCLI(["kv", "rollback", "prod/payments/db.yaml", "1"] + addr)
        #expect(r.status == 0 && r.stdout.contains("now version 3"), "\(r)")
        r = try await runCLI(["kv", "get", "prod/payments/db.yaml", "--json"] + addr)
        let got = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        #expect(got?["value"] as? String == "host: db1\nport: 5432\n" && got?["version"] as? Int == 3)
        r = try await runCLI(["kv", "txn", "-"] + addr, stdin: #"{"ops":[{"op":"check","key":"prod/payments/db.yaml","version":3},{"op":"set","key":"prod/flags","value":"on"}]}"#)
        #expect(r.status == 0 && r.stdout.contains("prod/flags"), "\(r)")
        r = try await runCLI(["kv", "put", "prod/flags", "off", "--cas", "7"] + addr)
        #expect(r.status == 1 && r.stderr.contains("compare-and-set failed"), "\(r)")
        r = try await runCLI(["kv", "put", "bad/json", "{", "--type", "json"] + addr)
        #expect(r.status == 1 && r.stderr.contains("not valid JSON"), "\(r)")
        r = try await runCLI(["kv", "delete", "prod/", "--recurse"] + addr)
        #expect(r.status == 0 && r.stdout.contains("Deleted 2"), "\(r)")
        r = try await runCLI(["kv", "get", "prod/flags"] + addr)
        #expect(r.status == 1 && r.stderr.contains("was deleted"), "\(r)")
        r = try await runCLI(["status", "--json"], environment: ["GOSSAMER_ADDR": agent.address])
        #expect(r.status == 0 && r.stdout.contains("\"node\" : \"tour\""), "\(r)")
        r = try await runCLI(["kv", "frobnicate"])
        #expect(r.status == 2, "\(r)")
        r = try await runCLI(["kv", "get", "x", "--addr", "http://127.0.0.1:1"])
        #expect(r.status == 1 && r.stderr.contains("is `gossamer agent` running"), "\(r)")
        #expect(await agent.terminate() == 0, "graceful shutdown exits 0: \(agent.logs)")

        // The agent's log: one line per event, `<time> <level> <label>: <metadata> [<source>] <message>`.
        let log = try String(contentsOf: agent.logDir.appendingPathComponent("stderr"), encoding: .utf8)
        let lines = log.split(separator: "\n")
        let format = #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4} (trace|debug|info|notice|warning|error|critical) gossamer[.a-z-]*:( [^ =]+=.*)? \[[A-Za-z]+\] .+$"#
        #expect(!lines.isEmpty && lines.allSatisfy { $0.range(of: format, options: .regularExpression) != nil }, "\(log)")
        #expect(lines.contains { $0.contains(" info gossamer: node=tour [HummingbirdCore] Server started and listening on 127.0.0.1:") }, "\(log)")
    }

    /// A watcher that disconnects and resumes from its last event id misses nothing; an unknown cursor gets a snapshot.
    @Test func test_watch_resumeAfterReconnect_noLostChange_snapshotOnUnknownCursor() async throws {
        let agent = try AgentProcess(node: "w1")
        try await agent.start()
        let client = agent.client
        _ = try await client.send(.PUT, "/v1/kv/app/a", body: Data("0".utf8))

        // First connection: read the snapshot plus three live changes, then hang up.
        let seen = Locked<[ServerSentEvent]>([])
        async let firstSession: Void = client.stream("/v1/watch/app/", query: [("recurse", nil)]) { event in
            seen.withLock { $0.append(event) }
            return seen.withLock { $0.count } < 4
        }
        try await Task.sleep(for: .milliseconds(300))
        for index in 1...3 { _ = try await client.send(.PUT, "/v1/kv/app/a", body: Data("\(index)".utf8)) }
        try await firstSession
        let firstEvents = seen.withLock { $0 }
        #expect(firstEvents.map(\.event) == ["snapshot", "put", "put", "put"])
        let cursor = try #require(firstEvents.last?.id)

        // While disconnected: more writes, including a delete.
        _ = try await client.send(.PUT, "/v1/kv/app/a", body: Data("4".utf8))
        _ = try await client.send(.PUT, "/v1/kv/app/b", body: Data("b".utf8))
        _ = try await client.send(.DELETE, "/v1/kv/app/a")
        _ = try await client.send(.PUT, "/v1/kv/other", body: Data("x".utf8))

        // Resume from the cursor: exactly the three missed changes, in order, no snapshot.
        var resumed: [ServerSentEvent] = []
        try await client.stream("/v1/watch/app/", query: [("since", cursor)]) { event in
            resumed.append(event)
            return resumed.count < 3
        }
        #expect(resumed.map(\.event) == ["put", "put", "delete"])
        #expect(resumed.map { $0.data.contains("\"key\":\"app/b\"") } == [false, true, false])
        // Revisions continue the cursor without a gap (other/ is not watched).
        let revisions = resumed.compactMap { $0.id?.split(separator: ":").last.flatMap { Int($0) } }
        let start = try #require(Int(cursor.split(separator: ":").last ?? ""))
        #expect(revisions == [start + 1, start + 2, start + 3])

        // A cursor from another node (or a wiped data dir) is unknown: the snapshot comes first.
        var fresh: [ServerSentEvent] = []
        try await client.stream("/v1/watch/app/", query: [("since", "othernode:2")]) { event in
            fresh.append(event)
            return false
        }
        #expect(fresh.first?.event == "snapshot")
        #expect(fresh.first?.data.contains("\"key\":\"app/b\"") == true)
        #expect(fresh.first?.data.contains("\"key\":\"app/a\"") == false)
        _ = await agent.terminate()
    }

    /// `kill -9` in the middle of 1,000 puts: after a restart every acknowledged put is there.
    @Test func test_kill9_duringPuts_everyAcknowledgedPutSurvivesRestart() async throws {
        let agent = try AgentProcess(node: "k1")
        try await agent.start()
        let client = agent.client
        let acknowledged = Locked<[String: Int]>([:])
        let total = 1000
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for index in stride(from: worker, to: total, by: 8) {
                        guard let reply = try? await client.send(.PUT, "/v1/kv/durable/k\(index)", body: Data("value-\(index)".utf8), timeout: .seconds(5) as TimeAmount),
                            reply.status == 200, let version = reply.json["version"] as? Int
                        else { return }
                        acknowledged.withLock { $0["durable/k\(index)"] = version }
                    }
                }
            }
            group.addTask {
                while acknowledged.withLock({ $0.count }) < total / 2 { try await Task.sleep(for: .milliseconds(2)) }
                agent.kill9()
            }
            try await group.waitForAll()
        }
        let acked = acknowledged.withLock { $0 }
        #expect(acked.count >= total / 2 && acked.count < total, "the kill landed mid-stream (\(acked.count) acknowledged)")

        let restarted = try AgentProcess(node: "k1", dataDir: agent.dataDir)
        try await restarted.start()
        let reply = try await restarted.client.send(.GET, "/v1/kv/durable/", query: [("recurse", nil)])
        let stored = try #require(try JSONSerialization.jsonObject(with: reply.body) as? [[String: Any]])
        let byKey = Dictionary(uniqueKeysWithValues: stored.compactMap { entry in (entry["key"] as? String).map { ($0, entry) } })
        var missing = 0
        for (key, _) in acked {
            let index = key.dropFirst("durable/k".count)
            if byKey[key]?["value"] as? String != "value-\(index)" { missing += 1 }
        }
        #expect(missing == 0, "\(missing) acknowledged puts were lost")
        #expect(await restarted.terminate() == 0)
    }

    /// Raw garbage on the HTTP port: answered 4xx or dropped, never a crash, store unchanged.
    @Test func test_garbageRequests_onRealSocket_agentSurvivesAndStoreUnchanged() async throws {
        let agent = try AgentProcess(node: "g1")
        try await agent.start()
        _ = try await agent.client.send(.PUT, "/v1/kv/keep", body: Data("safe".utf8))
        let port = try #require(Int(agent.address.split(separator: ":").last ?? ""))
        let garbage = [
            "GARBAGE\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", "PUT /v1/kv/x HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "PUT /v1/kv/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n", String(repeating: "A", count: 100_000),
            "\u{0}\u{1}\u{2}\u{FF}",
        ]
        for payload in garbage {
            let fd = try #require(connectLoopback(port: port))
            _ = payload.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
            var buffer = [UInt8](repeating: 0, count: 512)
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let count = recv(fd, &buffer, buffer.count, 0)
            if count > 0 {
                let head = String(decoding: buffer[..<count], as: UTF8.self)
                #expect(head.hasPrefix("HTTP/1.1 4"), "garbage got: \(head.prefix(40))")
            }
            close(fd)
        }
        let reply = try await agent.client.send(.GET, "/v1/kv/keep", query: [("raw", nil)])
        #expect(String(decoding: reply.body, as: UTF8.self) == "safe")
        let status = try await agent.client.send(.GET, "/v1/status")
        #expect(status.json["revision"] as? Int == 1)
        #expect(await agent.terminate() == 0)
    }

    @Test func test_agent_badSettings_exitOneWithMessage() async throws {
        var r = try await runCLI(["agent", "--http", "nonsense"])
        #expect(r.status == 1 && r.stderr.contains("http must be host:port"), "\(r)")
        r = try await runCLI(["agent", "--config", "/nonexistent/agent.toml"])
        #expect(r.status == 1 && r.stderr.contains("cannot read config file"), "\(r)")
        // Addresses in use: a clear error and exit 1, never a crash.
        let holder = try AgentProcess(node: "holder")
        try await holder.start()
        let taken = String(holder.address.dropFirst("http://".count))
        r = try await runCLI(["agent", "--node-name", "x", "--data-dir", holder.dataDir.path + "-x", "--http", taken])
        #expect(r.status == 1 && r.stderr.contains("address is in use"), "\(r)")
        r = try await runCLI(["agent", "--node-name", "y", "--data-dir", holder.dataDir.path + "-y", "--http", "127.0.0.1:0", "--gossip", taken])
        #expect(r.status == 1 && r.stderr.contains("cannot bind gossip TCP"), "\(r)")
        _ = await holder.terminate()
        r = try await runCLI(["--help"])
        #expect(r.status == 0 && r.stdout.contains("agent") && r.stdout.contains("kv"), "\(r)")
    }
}
