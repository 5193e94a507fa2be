import RedisCache
import Testing

/// URL parsing and the masked description; no server needed.
@Suite struct RedisEndpointTests {
    @Test func test_parse_fullURL_readsEveryPart() throws {
        let endpoint = try RedisEndpoint(url: "redis://alice:s3cret@cache.internal:6380/2")
        #expect(endpoint == RedisEndpoint(host: "cache.internal", port: 6380, username: "alice", password: "s3cret", database: 2))
    }

    @Test func test_parse_partialURLs_useDefaults() throws {
        #expect(try RedisEndpoint(url: "redis://localhost") == RedisEndpoint(host: "localhost"))
        #expect(try RedisEndpoint(url: "redis://10.0.0.5/") == RedisEndpoint(host: "10.0.0.5"))
        #expect(try RedisEndpoint(url: "redis://:pw@10.0.0.5:7000") == RedisEndpoint(host: "10.0.0.5", port: 7000, password: "pw"))
    }

    @Test func test_parse_ipv6AndPercentEncodedCredentials_decodes() throws {
        let endpoint = try RedisEndpoint(url: "redis://ops%40corp:p%3Ass%40w@[::1]:7001/15")
        #expect(endpoint == RedisEndpoint(host: "::1", port: 7001, username: "ops@corp", password: "p:ss@w", database: 15))
        #expect(try RedisEndpoint(url: "redis://[fe80::1]").port == 6379)
    }

    @Test(arguments: [
        ("http://localhost:6379", "must start with redis://"),
        ("rediss://localhost", "TLS"),
        ("redis://", "host is missing"),
        ("redis://:6379", "host is missing"),
        ("redis://localhost:0", "port '0'"),
        ("redis://localhost:65536", "port '65536'"),
        ("redis://localhost:abc", "port 'abc'"),
        ("redis://localhost/x", "database 'x'"),
        ("redis://localhost/-1", "database '-1'"),
        ("redis://secret@localhost", "user:password@"),
        ("redis://user:@localhost", "password after ':' is empty"),
        ("redis://localhost?db=1", "query parameters"),
        ("redis://::1:6379", "brackets"),
        ("redis://[::1", "missing ']'"),
        ("redis://[::1]x", "after the IPv6 address"),
        ("redis://%zz:pw@localhost", "percent-encoding"),
    ])
    func test_parse_badURL_throwsInvalidURLNamingTheProblem(url: String, problem: String) {
        let error = #expect(throws: RedisError.self) { try RedisEndpoint(url: url) }
        #expect(error?.kind == .invalidURL)
        #expect(error?.message.contains(problem) == true, "\(error?.message ?? "no error")")
    }

    @Test func test_parse_badURLWithPassword_errorDoesNotEchoThePassword() {
        let error = #expect(throws: RedisError.self) { try RedisEndpoint(url: "redis://bob:hunter2@localhost:99999") }
        #expect(error?.message.contains("hunter2") == false)
        #expect(error?.message.contains("redis://***@localhost:99999") == true, "\(error?.message ?? "")")
    }

    @Test func test_description_masksThePassword() throws {
        #expect(try RedisEndpoint(url: "redis://alice:s3cret@h:1/2").description == "redis://alice:***@h:1/2")
        #expect(try RedisEndpoint(url: "redis://:s3cret@h").description == "redis://:***@h:6379/0")
        #expect(RedisEndpoint(host: "::1", port: 7000, username: "ops").description == "redis://ops@[::1]:7000/0")
        #expect(RedisEndpoint().description == "redis://127.0.0.1:6379/0")
    }

    @Test func test_description_withoutPassword_parsesBackToTheSameEndpoint() throws {
        let endpoint = RedisEndpoint(host: "::1", port: 7000, database: 3)
        #expect(try RedisEndpoint(url: endpoint.description) == endpoint)
    }
}

/// The convenience accessors of `RedisValue`; no server needed.
@Suite struct RedisValueTests {
    @Test func test_string_readsBulkAndStatusOnly() {
        #expect(RedisValue.bulk(Array("héllo".utf8)).string == "héllo")
        #expect(RedisValue.status("OK").string == "OK")
        #expect(RedisValue.bulk([0xFF, 0xFE]).string == nil)
        #expect(RedisValue.error("ERR x").string == nil)
        #expect(RedisValue.null.string == nil)
    }

    @Test func test_int_readsIntegersAndDecimalStrings() {
        #expect(RedisValue.integer(-7).int == -7)
        #expect(RedisValue.bulk(Array("42".utf8)).int == 42)
        #expect(RedisValue.bulk(Array("4x".utf8)).int == nil)
        #expect(RedisValue.null.int == nil)
    }

    @Test func test_array_readsArraysOnly() {
        #expect(RedisValue.array([.integer(1), .null]).array == [.integer(1), .null])
        #expect(RedisValue.bulk([]).array == nil)
    }

    @Test func test_message_text_decodesUTF8Payload() {
        #expect(RedisMessage(channel: "c", payload: Array("hi".utf8)).text == "hi")
        #expect(RedisMessage(channel: "c", payload: [0xC3]).text == nil)
    }
}
