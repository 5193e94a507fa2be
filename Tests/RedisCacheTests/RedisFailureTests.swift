import RedisCache
import Testing

/// Unreachable servers need no server at all.
@Suite struct RedisConnectFailureTests {
    @Test func test_connect_wrongPort_failsFastWithConnectError() async throws {
        let port = try freePort()
        try await withRedisClient(endpoint: RedisEndpoint(port: port), connectTimeout: .seconds(1)) { client throws in
            let start = ContinuousClock.now
            let error = await #expect(throws: RedisError.self) { try await client.connect() }
            #expect(ContinuousClock.now - start < .seconds(1) + .milliseconds(500))
            #expect(error?.kind == .connect)
            #expect(error?.message.hasPrefix("cannot connect to redis at 127.0.0.1:\(port): ") == true, "\(error?.message ?? "")")
            #expect(client.status.healthy == false)
            #expect(client.status.lastError == error?.message)

            let retry = await #expect(throws: RedisError.self) { try await client.command("PING") }
            #expect(retry?.kind == .connect)
            #expect(retry?.message.contains("next attempt in") == true, "within the backoff it fails at once: \(retry?.message ?? "")")
        }
    }

    @Test func test_connect_unreachableHost_isBoundedByTheConnectTimeout() async throws {
        // 192.0.2.0/24 is TEST-NET-1: nothing answers there, so only the timeout (or an unreachable network) ends the wait.
        let start = ContinuousClock.now
        let error = #expect(throws: RedisError.self) {
            try RedisConnection(
                endpoint: RedisEndpoint(host: "192.0.2.1"), connectTimeout: .milliseconds(300), commandTimeout: .seconds(1))
        }
        #expect(error?.kind == .connect)
        #expect(error?.message.hasPrefix("cannot connect to redis at 192.0.2.1:6379: ") == true, "\(error?.message ?? "")")
        #expect(ContinuousClock.now - start < .seconds(2))
    }
}

/// Failures that need a server of the test's own: it starts `redis-server` on a free port and stops it by PID.
@Suite(.enabled(if: RedisTestEnvironment.ownServerTestsEnabled, "redis-server is not installed"))
struct RedisOwnServerTests {
    @Test func test_auth_wrongOrMissingPassword_isReportedAsAuth() async throws {
        let server = try await OwnRedisServer(extraArguments: ["--requirepass", "right-password"])

        let wrong = await #expect(throws: RedisError.self) {
            try await withRedisClient(endpoint: server.endpoint(password: "wrong")) { client in try await client.connect() }
        }
        #expect(wrong?.kind == .auth)
        #expect(wrong?.message.hasPrefix("redis at 127.0.0.1:\(server.port) rejected the password: ") == true, "\(wrong?.message ?? "")")

        let missing = await #expect(throws: RedisError.self) {
            try await withRedisClient(endpoint: server.endpoint()) { client in try await client.connect() }
        }
        #expect(missing?.kind == .auth)
        #expect(missing?.message.contains("requires a password") == true, "\(missing?.message ?? "")")

        let wrongUser = #expect(throws: RedisError.self) {
            try RedisConnection(
                endpoint: server.endpoint(username: "nobody", password: "right-password"),
                connectTimeout: .seconds(1), commandTimeout: .seconds(1))
        }
        #expect(wrongUser?.kind == .auth)
        #expect(wrongUser?.message.contains("for user 'nobody'") == true, "\(wrongUser?.message ?? "")")

        try await withRedisClient(endpoint: server.endpoint(password: "right-password")) { client throws in
            try await client.connect()
            #expect(try await client.command("PING") == .status("PONG"))
        }
        try await withRedisClient(endpoint: server.endpoint(username: "default", password: "right-password")) { client throws in
            try await client.connect()
        }
        await server.stop()
    }

    @Test func test_serverRestart_clientAndSubscriberRecover() async throws {
        let server = try await OwnRedisServer()
        let endpoint = server.endpoint()
        let subscriber = RedisSubscriber(endpoint: endpoint, channels: ["events"])
        let collector = MessageCollector(subscriber)

        try await withRedisClient(endpoint: endpoint, connectTimeout: .milliseconds(500)) { client throws in
            #expect(try await client.command("SET", "k", "before") == .status("OK"))
            #expect(await publishUntilReceived(client, channel: "events", payload: "before"))
            #expect(await collector.waitFor { $0.text == "before" })

            server.crash()
            let failure = await #expect(throws: RedisError.self) { try await client.command("GET", "k") }
            #expect(failure.map { [.io, .connect].contains($0.kind) } == true, "\(String(describing: failure))")
            #expect(client.status.healthy == false)

            try await server.start()

            #expect(await eventually(within: .seconds(8)) {
                (try? await client.command("PING")) == .status("PONG")
            }, "the client reconnects after its backoff")
            #expect(try await client.command("SET", "k", "after") == .status("OK"))
            #expect(client.status.healthy)

            #expect(await publishUntilReceived(client, channel: "events", payload: "after", within: .seconds(8)), "the subscriber subscribes again")
            #expect(await collector.waitFor { $0.text == "after" })
        }
        subscriber.cancel()
        await server.stop()
    }
}
