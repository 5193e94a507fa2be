import Foundation
import RedisCache
import Testing

@testable import Registry

/// The Lua scripts that write registry entries into Redis, against the test script's real redis-server.
/// Under CI a missing Redis fails these tests (a skip would look like a pass).
@Suite(.enabled(if: ProcessInfo.processInfo.environment["REDIS_PORT"] != nil || ProcessInfo.processInfo.environment["CI"] == "true"))
struct RedisMirrorScriptTests {
    private func client() throws -> RedisClient {
        guard let port = ProcessInfo.processInfo.environment["REDIS_PORT"].flatMap(Int.init) else {
            throw RedisError(.connect, "REDIS_PORT is not set: run the tests with `make test`, which starts a throwaway redis-server")
        }
        return RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: port))
    }

    private func set(_ client: RedisClient, hash: String, id: String, json: String, stamp: String) async throws -> Int64? {
        try await client.eval(
            script: RedisMirror.setScript, keys: [hash, "\(hash):services"], args: [id, json, stamp, "60", "svc", #"{"op":"set"}"#]).int
    }

    @Test func test_setScript_olderStampNeverReplacesNewer() async throws {
        let client = try self.client()
        let hash = "gossamer-test:svc:\(UUID().uuidString)"
        #expect(try await self.set(client, hash: hash, id: "i", json: #"{"stamp":"2000.0@b","v":2}"#, stamp: "2000.0@b") == 1)
        // A stale write (an older stamp, e.g. from an agent that lagged) is refused.
        #expect(try await self.set(client, hash: hash, id: "i", json: #"{"stamp":"1999.5@a","v":1}"#, stamp: "1999.5@a") == 0)
        #expect(try await client.command("HGET", hash, "i").string == #"{"stamp":"2000.0@b","v":2}"#)
        // The same stamp (the custodian rewriting an orphan's health) and a newer one are applied.
        #expect(try await self.set(client, hash: hash, id: "i", json: #"{"stamp":"2000.0@b","v":3}"#, stamp: "2000.0@b") == 1)
        #expect(try await self.set(client, hash: hash, id: "i", json: #"{"stamp":"2000.1@a","v":4}"#, stamp: "2000.1@a") == 1)
        #expect(try await client.command("HGET", hash, "i").string == #"{"stamp":"2000.1@a","v":4}"#)
        let ttl = try await client.command("TTL", hash).int ?? -1
        #expect(ttl > 0 && ttl <= 60)
        _ = try await client.command("DEL", hash, "\(hash):services")
        await client.shutdown()
    }

    @Test func test_deleteScript_keepsAnEntryNewerThanTheDelete() async throws {
        let client = try self.client()
        let hash = "gossamer-test:svc:\(UUID().uuidString)"
        _ = try await self.set(client, hash: hash, id: "i", json: #"{"stamp":"3000.0@b"}"#, stamp: "3000.0@b")
        let stale = try await client.eval(script: RedisMirror.deleteScript, keys: [hash, "\(hash):services"], args: ["i", "2000.0@a", "svc", "{}"])
        #expect(stale.int == 0, "re-registered since: kept")
        let current = try await client.eval(script: RedisMirror.deleteScript, keys: [hash, "\(hash):services"], args: ["i", "3000.0@b", "svc", "{}"])
        #expect(current.int == 1)
        #expect(try await client.command("HEXISTS", hash, "i").int == 0)
        #expect(try await client.command("SISMEMBER", "\(hash):services", "svc").int == 0, "the last entry's service leaves the set")
        await client.shutdown()
    }
}
