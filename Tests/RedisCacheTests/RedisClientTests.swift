import RedisCache
import Testing

/// The client and the blocking connection against the shared test server (`REDIS_PORT`).
@Suite(.enabled(if: RedisTestEnvironment.sharedServerTestsEnabled, "REDIS_PORT is not set"))
struct RedisClientTests {
    @Test func test_setGetAndHash_roundTrip() async throws {
        try await withRedisClient(endpoint: try RedisTestEnvironment.sharedEndpoint()) { client throws in
            let prefix = uniquePrefix("roundtrip")
            try await client.connect()

            #expect(try await client.command("SET", prefix + "s", "héllo") == .status("OK"))
            #expect(try await client.command("GET", prefix + "s").string == "héllo")
            #expect(try await client.command("GET", prefix + "missing") == .null)

            #expect(try await client.command("HSET", prefix + "h", "name", "payments", "port", "8080") == .integer(2))
            let fields = try #require(try await client.command(["HGETALL", prefix + "h"]).array)
            let pairs = stride(from: 0, to: fields.count, by: 2).map { (fields[$0].string ?? "", fields[$0 + 1].string ?? "") }
            #expect(Dictionary(uniqueKeysWithValues: pairs) == ["name": "payments", "port": "8080"])

            #expect(try await client.command("DEL", prefix + "s", prefix + "h") == .integer(2))
            #expect(client.status.healthy)
        }
    }

    @Test func test_commandBytes_binaryValueRoundTrips() async throws {
        try await withRedisClient(endpoint: try RedisTestEnvironment.sharedEndpoint()) { client throws in
            let key = Array((uniquePrefix("binary") + "k").utf8)
            let value = (0...255).map(UInt8.init) + [0, 0]

            #expect(try await client.command(bytes: [Array("SET".utf8), key, value]) == .status("OK"))
            #expect(try await client.command(bytes: [Array("GET".utf8), key]) == .bulk(value))
            #expect(try await client.command(bytes: [Array("SET".utf8), key, []]) == .status("OK"))
            #expect(try await client.command(bytes: [Array("GET".utf8), key]) == .bulk([]))
            _ = try await client.command(bytes: [Array("DEL".utf8), key])
        }
    }

    @Test func test_pipeline_hundredCommands_repliesInOrder() async throws {
        try await withRedisClient(endpoint: try RedisTestEnvironment.sharedEndpoint()) { client throws in
            let key = uniquePrefix("pipeline") + "counter"

            let replies = try await client.pipeline(Array(repeating: ["INCR", key], count: 100))

            #expect(replies == (1...100).map { RedisValue.integer(Int64($0)) })
            #expect(try await client.pipeline([["GET", key], ["DEL", key], ["GET", key]]) == [.bulk(Array("100".utf8)), .integer(1), .null])
            #expect(try await client.pipeline([]) == [])
        }
    }

    @Test func test_errorReplies_areReturnedNotThrown() async throws {
        try await withRedisClient(endpoint: try RedisTestEnvironment.sharedEndpoint()) { client throws in
            let key = uniquePrefix("errors") + "k"

            let unknown = try await client.command("NOSUCHCOMMAND", "x")
            guard case .error(let message) = unknown else {
                Issue.record("expected an error reply, got \(unknown)")
                return
            }
            #expect(message.hasPrefix("ERR unknown command"))

            let replies = try await client.pipeline([["SET", key, "v"], ["LPUSH", key, "x"], ["GET", key], ["DEL", key]])
            #expect(replies.count == 4)
            #expect(replies[0] == .status("OK"))
            if case .error(let wrongType) = replies[1] {
                #expect(wrongType.hasPrefix("WRONGTYPE"))
            } else {
                Issue.record("expected WRONGTYPE, got \(replies[1])")
            }
            #expect(replies[2].string == "v")
            #expect(client.status.healthy)
        }
    }

    @Test func test_eval_cachesTheScriptAndSurvivesScriptFlush() async throws {
        try await withRedisClient(endpoint: try RedisTestEnvironment.sharedEndpoint()) { client throws in
            let key = uniquePrefix("eval") + "n"
            let script = "return redis.call('INCRBY', KEYS[1], ARGV[1])"

            #expect(try await client.eval(script: script, keys: [key], args: ["5"]) == .integer(5))
            #expect(try await client.eval(script: script, keys: [key], args: ["5"]) == .integer(10))
            #expect(try await client.command("SCRIPT", "FLUSH") == .status("OK"))
            #expect(try await client.eval(script: script, keys: [key], args: ["5"]) == .integer(15), "NOSCRIPT falls back to EVAL")
            #expect(try await client.eval(script: script, keys: [key], args: ["1"]) == .integer(16))

            let broken = try await client.eval(script: "return (", keys: [], args: [])
            guard case .error = broken else {
                Issue.record("a script that does not compile should return an error reply, got \(broken)")
                return
            }
            _ = try await client.command("DEL", key)
        }
    }

    @Test func test_concurrentCommands_shareTheConnections() async throws {
        try await withRedisClient(endpoint: try RedisTestEnvironment.sharedEndpoint(), connections: 2) { client throws in
            let prefix = uniquePrefix("concurrent")

            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<40 {
                    group.addTask { () throws in
                        let key = prefix + String(index)
                        #expect(try await client.command("SET", key, String(index)) == .status("OK"))
                        #expect(try await client.command("GET", key).int == Int64(index))
                        #expect(try await client.command("DEL", key) == .integer(1))
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test func test_database_isSelectedFromTheEndpoint() async throws {
        var endpoint = try RedisTestEnvironment.sharedEndpoint()
        let key = uniquePrefix("select") + "k"
        endpoint.database = 3
        try await withRedisClient(endpoint: endpoint) { inDatabase3 throws in
            #expect(try await inDatabase3.command("SET", key, "3") == .status("OK"))
            #expect(try await inDatabase3.command("GET", key).string == "3")
        }
        endpoint.database = 0
        try await withRedisClient(endpoint: endpoint) { inDatabase0 throws in
            #expect(try await inDatabase0.command("GET", key) == .null)
        }
        endpoint.database = 3
        try await withRedisClient(endpoint: endpoint) { inDatabase3 throws in
            #expect(try await inDatabase3.command("DEL", key) == .integer(1))
        }

        endpoint.database = 100_000
        let error = await #expect(throws: RedisError.self) {
            try await withRedisClient(endpoint: endpoint) { client in try await client.connect() }
        }
        #expect(error?.kind == .server)
        #expect(error?.message.contains("SELECT 100000") == true, "\(error?.message ?? "")")
    }

    @Test func test_commandTimeout_throwsTimeoutThenReconnects() async throws {
        let endpoint = try RedisTestEnvironment.sharedEndpoint()
        let key = uniquePrefix("timeout") + "list"
        try await withRedisClient(endpoint: endpoint, connections: 1, commandTimeout: .milliseconds(200)) { client throws in

            let start = ContinuousClock.now
            let error = await #expect(throws: RedisError.self) { try await client.command("BLPOP", key, "2") }
            #expect(error?.kind == .timeout)
            #expect(ContinuousClock.now - start < .milliseconds(1500))
            #expect(client.status.healthy == false)
            #expect(client.status.lastError == error?.message)

            #expect(try await client.command("PING") == .status("PONG"), "a broken connection is replaced at once")
            #expect(client.status.healthy)
        }
    }

    @Test func test_shutdown_isIdempotentAndLaterCommandsThrowClosed() async throws {
        let client = RedisClient(endpoint: try RedisTestEnvironment.sharedEndpoint())
        #expect(try await client.command("PING") == .status("PONG"))
        await client.shutdown()
        await client.shutdown()

        let error = await #expect(throws: RedisError.self) { try await client.command("PING") }
        #expect(error?.kind == .closed)
    }

    @Test func test_connection_blockingAPI() throws {
        let connection = try RedisConnection(
            endpoint: try RedisTestEnvironment.sharedEndpoint(), connectTimeout: .seconds(2), commandTimeout: .seconds(2))
        let key = uniquePrefix("blocking") + "k"

        #expect(try connection.command(["SET", key, "1"]) == .status("OK"))
        #expect(try connection.pipeline([["INCR", key], ["INCR", key], ["DEL", key]]) == [.integer(2), .integer(3), .integer(1)])
        #expect(connection.isBroken == false)

        let error = #expect(throws: RedisError.self) { try connection.command([]) }
        #expect(error?.kind == .protocolError)
        #expect(connection.isBroken == false, "an argument error is not an I/O error")
    }
}
