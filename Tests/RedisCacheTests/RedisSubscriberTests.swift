import RedisCache
import Testing

/// Pub/sub against the shared test server (`REDIS_PORT`).
@Suite(.enabled(if: RedisTestEnvironment.sharedServerTestsEnabled, "REDIS_PORT is not set"))
struct RedisSubscriberTests {
    @Test func test_subscriber_receivesWhatTheClientPublishes() async throws {
        let endpoint = try RedisTestEnvironment.sharedEndpoint()
        let prefix = uniquePrefix("pubsub")
        let subscriber = RedisSubscriber(endpoint: endpoint, channels: [prefix + "news"], patterns: [prefix + "svc.*"])
        defer { subscriber.cancel() }
        let collector = MessageCollector(subscriber)

        try await withRedisClient(endpoint: endpoint) { client throws in
            #expect(await publishUntilReceived(client, channel: prefix + "news", payload: "hello"))
            #expect(await collector.waitFor { $0.channel == prefix + "news" && $0.text == "hello" && $0.pattern == nil })

            #expect(await publishUntilReceived(client, channel: prefix + "svc.payments", payload: "up"))
            #expect(await collector.waitFor {
                $0 == RedisMessage(channel: prefix + "svc.payments", payload: Array("up".utf8), pattern: prefix + "svc.*")
            })

            #expect(try await client.command("PUBLISH", prefix + "other", "ignored") == .integer(0))
        }
        #expect(collector.messages.allSatisfy { $0.channel != prefix + "other" })
    }

    @Test func test_cancel_finishesTheStreamPromptly() async throws {
        let endpoint = try RedisTestEnvironment.sharedEndpoint()
        let prefix = uniquePrefix("cancel")
        let subscriber = RedisSubscriber(endpoint: endpoint, channels: [prefix + "c"])
        let collector = MessageCollector(subscriber)
        try await withRedisClient(endpoint: endpoint) { client throws in
            #expect(await publishUntilReceived(client, channel: prefix + "c", payload: "x"))

            subscriber.cancel()

            #expect(await collector.waitForEnd(within: .seconds(1)))
            #expect(await eventually(within: .seconds(2)) {
                (try? await client.command("PUBLISH", prefix + "c", "y"))?.int == 0
            }, "the subscriber's connection is closed")
        }
    }
}
