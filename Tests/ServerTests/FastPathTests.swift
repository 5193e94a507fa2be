import ConfigCenter
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Registry
import Testing

@testable import Server

/// One agent, `t1`, alive in a membership of one.
private struct OneAgent: RegistryMembership {
    func agents() -> [AgentInfo] { [AgentInfo(name: "t1", alive: true)] }
}

@Suite struct FastReadsTests {
    /// A router with the registry's routes and the fast path over the same store and registry.
    private func fixture() async throws -> (some ApplicationProtocol, ConfigStore, FastReads) {
        var config = ConfigSettings()
        config.nodeName = "t1"
        let store = try ConfigStore.inMemory(settings: config)
        var settings = ServerSettings()
        settings.nodeName = "t1"
        let registry = RegistryRoutes(registry: Registry(store: store, membership: OneAgent()), setDrain: { _ in })
        let app = Application(router: buildRouter(store: store, settings: settings, registry: registry))
        let reads = try #require(
            FastReads(store: store, registry: registry, settings: settings, serverName: "gossamer/test", metrics: nil))
        return (app, store, reads)
    }

    private static func get(_ path: String, _ fields: HTTPFields = [:]) -> HTTPRequest {
        HTTPRequest(method: .get, scheme: nil, authority: nil, path: path, headerFields: fields)
    }

    /// The fast path's answer equals the router's: status, the Gossamer headers, content type and body.
    @Test(arguments: ["/v1/kv/app/db.yaml", "/v1/kv/app/db.yaml?raw", "/v1/kv/app/db.yaml?raw=", "/v1/kv/bin"])
    func test_answer_equalsTheRoutersAnswer(_ path: String) async throws {
        let (app, store, reads) = try await self.fixture()
        _ = try await store.put("app/db.yaml", value: Data("a: 1\n".utf8), contentType: "yaml", origin: .init(author: "alice"))
        _ = try await store.put("app/db.yaml", value: Data("a: 2\n".utf8), contentType: "yaml", origin: .init(author: "bob"))
        _ = try await store.put("bin", value: Data([0xFF, 0x00]), contentType: nil, origin: .init())
        let (headers, body, route) = try #require(reads.answer(Self.get(path)))
        #expect(route == "/v1/kv/**")
        try await app.test(.router) { client in
            try await client.execute(uri: path, method: .get) { response in
                #expect(response.status == .ok)
                for name: HTTPField.Name in [.gossamerStamp, .gossamerVersion, .gossamerNode, .gossamerRevision, .contentType] {
                    #expect(headers[name] != nil && headers[name] == response.headers[name], "\(name)")
                }
                #expect(body == response.body)
                #expect(headers[.contentLength] == String(response.body.readableBytes))
            }
        }
    }

    /// A lookup's answer equals the router's, for each filter, and follows changes (the encoded answers are shared).
    @Test func test_lookup_equalsTheRoutersAnswer() async throws {
        let (app, _, reads) = try await self.fixture()
        let paths = [
            "/v1/services/pay", "/v1/services/pay?passing", "/v1/services/pay?passing&tag=v1", "/v1/services/pay?tag=v1&tag=v2",
            "/v1/services/pay?zone=b", "/v1/services/pay?passing=&zone=a&tag=v2", "/v1/services/none",
        ]
        try await app.test(.router) { client in
            for (id, body) in [
                ("p1", #"{"address":"10.0.0.1","port":9001,"tags":["v1"],"zone":"a","status":"passing"}"#),
                ("p2", #"{"address":"10.0.0.2","port":9001,"tags":["v1","v2"],"zone":"b","status":"critical"}"#),
            ] {
                try await client.execute(uri: "/v1/services/pay/instances/\(id)", method: .put, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .ok, "\(String(buffer: response.body))")
                }
                for path in paths {
                    let (headers, body, route) = try #require(reads.answer(Self.get(path)), "\(path)")
                    #expect(route == "/v1/services/{service}")
                    try await client.execute(uri: path, method: .get) { response in
                        #expect(response.status == .ok)
                        for name: HTTPField.Name in [.gossamerIndex, .gossamerNode, .gossamerRevision, .contentType] {
                            #expect(headers[name] != nil && headers[name] == response.headers[name], "\(path) \(name)")
                        }
                        #expect(body == response.body, "\(path): \(String(buffer: body)) vs \(String(buffer: response.body))")
                    }
                }
            }
        }
        for path in [
            "/v1/services/pay?index=1", "/v1/services/pay?index=1&wait=1s", "/v1/services/pay?tag", "/v1/services/pay?tag=a%20b",
            "/v1/services/pay?tag=a+b", "/v1/services/pay?bogus", "/v1/services/pay?", "/v1/services/pay/watch",
            "/v1/services/pay/instances/p1", "/v1/services/Bad_Name!", "/v1/services/", "/v1/services",
        ] {
            #expect(reads.answer(Self.get(path)) == nil, "\(path)")
        }
    }

    /// Everything the fast path cannot answer exactly like the router is left to the router.
    @Test func test_answer_leavesEverythingElseToTheRouter() async throws {
        let (_, store, reads) = try await self.fixture()
        _ = try await store.put("a/b", value: Data("x".utf8), contentType: nil, origin: .init())
        _ = try await store.put("gone", value: Data("x".utf8), contentType: nil, origin: .init())
        _ = try await store.delete("gone", origin: .init())
        #expect(reads.answer(Self.get("/v1/kv/a/b")) != nil)
        let declined = [
            "/v1/kv/a%2Fb", "/v1/kv/a/b#frag", "/v1/kv/a/b?raw=1", "/v1/kv/a/b?version=1", "/v1/kv/a/b?raw&index=1",
            "/v1/kv/a/b?holders", "/v1/kv/a/", "/v1/kv/", "/v1/kv//a/b", "/v1/kv/missing", "/v1/kv/gone", "/v1/kvx/a/b",
            "/v1/kv", "http://localhost/v1/kv/a/b",
        ]
        for path in declined { #expect(reads.answer(Self.get(path)) == nil, "\(path)") }
        for method: HTTPRequest.Method in [.head, .put, .post, .delete] {
            #expect(reads.answer(HTTPRequest(method: method, scheme: nil, authority: nil, path: "/v1/kv/a/b")) == nil)
        }
        var debug = ServerSettings()
        debug.logger.logLevel = .debug
        #expect(FastReads(store: store, registry: nil, settings: debug, serverName: nil, metrics: nil) == nil, "debug logging needs the router")
    }

    /// On a connection: answered here only when nothing passed on to the router is still unanswered, so responses
    /// stay in request order; requests with a body or `Connection: close` always go on.
    @Test func test_handler_keepsResponsesInRequestOrder() async throws {
        let (_, store, reads) = try await self.fixture()
        _ = try await store.put("a", value: Data("x".utf8), contentType: nil, origin: .init())
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(reads.channelHandler())

        func send(_ head: HTTPRequest, body: Bool = false) throws {
            try channel.writeInbound(HTTPRequestPart.head(head))
            if body { try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: "x"))) }
            try channel.writeInbound(HTTPRequestPart.end(nil))
            channel.pipeline.fireChannelReadComplete()
        }
        func passedOn() throws -> [HTTPRequestPart] {
            var parts: [HTTPRequestPart] = []
            while let part = try channel.readInbound(as: HTTPRequestPart.self) { parts.append(part) }
            return parts
        }
        func answered() throws -> [HTTPResponsePart] {
            var parts: [HTTPResponsePart] = []
            while let part = try channel.readOutbound(as: HTTPResponsePart.self) { parts.append(part) }
            return parts
        }
        /// How many request parts went on to the router and how many response parts were written, since last asked.
        func counts() throws -> [Int] { [try passedOn().count, try answered().count] }
        func routerAnswers() throws {
            try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
            try channel.writeOutbound(HTTPResponsePart.end(nil))
        }

        try send(Self.get("/v1/kv/a?raw"))
        var out = try answered()
        var inbound = try passedOn()
        #expect(out.count == 3 && inbound.isEmpty)
        if case .head(let head) = out.first {
            #expect(head.status == .ok && head.headerFields[.date] != nil && head.headerFields[.server] == "gossamer/test")
        } else {
            Issue.record("no response head: \(out)")
        }
        if case .body(let body) = out.dropFirst().first { #expect(String(buffer: body) == "x") } else { Issue.record("no body: \(out)") }

        // A write goes to the router; a read pipelined behind it waits its turn there too.
        try send(HTTPRequest(method: .put, scheme: nil, authority: nil, path: "/v1/kv/a"), body: true)
        try send(Self.get("/v1/kv/a"))
        #expect(try counts() == [5, 0])
        try routerAnswers()
        _ = try answered()
        try send(Self.get("/v1/kv/a"))
        #expect(try counts() == [2, 0], "the second read is still unanswered by the router")
        try routerAnswers()
        try routerAnswers()
        _ = try answered()

        // Every earlier request answered: the fast path takes reads again.
        try send(Self.get("/v1/kv/a"))
        out = try answered()
        inbound = try passedOn()
        #expect(out.count == 3 && inbound.isEmpty)

        try send(Self.get("/v1/kv/a", [.connection: "close"]))
        #expect(try counts() == [2, 0])
        try routerAnswers()
        _ = try answered()
        try send(Self.get("/v1/kv/a", [.contentLength: "1"]), body: true)
        #expect(try counts() == [3, 0])
        #expect(try channel.finish().isClean)
    }

    @Test func test_httpDate_isIMFFixdate() {
        #expect(HTTPDate.format(784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.format(1_796_667_869) == "Mon, 07 Dec 2026 18:24:29 GMT")
    }
}
