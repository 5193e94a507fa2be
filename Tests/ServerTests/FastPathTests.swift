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
import TestSupport
import Testing

@testable import Server

/// One agent, `t1`, alive in a membership of one.
private struct OneAgent: RegistryMembership {
    func agents() -> [AgentInfo] { [AgentInfo(name: "t1", alive: true)] }
}

@Suite struct FastPathTests {
    /// A router with the registry's routes and the fast path over the same store and registry.
    private func fixture() async throws -> (some ApplicationProtocol, ConfigStore, FastPath) {
        var config = ConfigSettings()
        config.nodeName = "t1"
        let store = try ConfigStore.inMemory(settings: config)
        var settings = ServerSettings()
        settings.nodeName = "t1"
        let registry = RegistryRoutes(registry: Registry(store: store, membership: OneAgent()), setDrain: { _ in })
        let app = Application(router: buildRouter(store: store, settings: settings, registry: registry))
        let reads = try #require(
            FastPath(store: store, registry: registry, settings: settings, serverName: "gossamer/test", metrics: nil))
        return (app, store, reads)
    }

    /// The fast path's answer to a read with every header the handler sends.
    private static func completed(_ fast: FastPath, _ head: HTTPRequest) -> (HTTPFields, ByteBuffer, String)? {
        guard let (fields, body, route) = fast.answer(head) else { return nil }
        var headers = fields
        var date = HTTPDate()
        fast.complete(&headers, bodyLength: body.readableBytes, date: &date)
        return (headers, body, route)
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
        let (headers, body, route) = try #require(Self.completed(reads, Self.get(path)))
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
                    let (headers, body, route) = try #require(Self.completed(reads, Self.get(path)), "\(path)")
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
        #expect(FastPath(store: store, registry: nil, settings: debug, serverName: nil, metrics: nil) == nil, "debug logging needs the router")
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

    private static func put(_ path: String, length: Int?, _ fields: HTTPFields = [:]) -> HTTPRequest {
        var fields = fields
        if let length { fields[.contentLength] = String(length) }
        return HTTPRequest(method: .put, scheme: nil, authority: nil, path: path, headerFields: fields)
    }

    /// Commits `body` through the fast path as the handler does.
    private static func fastPut(_ fast: FastPath, _ head: HTTPRequest, _ body: String) async throws -> (HTTPResponse.Status, HTTPFields, ByteBuffer) {
        let put = try #require(fast.acceptPut(head, start: 0), "\(head)")
        let (status, fields, answer) = await withCheckedContinuation { continuation in
            fast.write(put, value: Data(body.utf8), client: nil) { continuation.resume(returning: ($0, $1, $2)) }
        }
        var headers = fields
        var date = HTTPDate()
        fast.complete(&headers, bodyLength: answer.readableBytes, date: &date)
        return (status, headers, answer)
    }

    /// A put through the fast path answers like the router's, on a twin store: the same status, headers and error
    /// bodies, and the same receipt but for the stamp and time; the stored version is the same too.
    @Test(arguments: [
        ("/v1/kv/app/x", "v2", HTTPFields()),
        ("/v1/kv/app/new?cas=0", "fresh", [.gossamerAuthor: "alice"]),
        ("/v1/kv/app/x?cas=1", "v2", [.contentType: "application/json; charset=utf-8"]),
        ("/v1/kv/app/x?cas=7", "v2", [:]),
        ("/v1/kv/app/x?cas=0", "v2", [:]),
        ("/v1/kv/app/cfg.json?type=json", "{\"a\": 1}", [:]),
        ("/v1/kv/app/cfg.json?type=json&cas=0", "{\"a\": ", [:]),
        ("/v1/kv/app/cfg.yaml", "a: [1, 2", [.contentType: "application/yaml"]),
        ("/v1/kv/app//x", "v", [:]),
        ("/v1/kv/app/../x", "v", [:]),
    ] as [(String, String, HTTPFields)])
    func test_put_answerEqualsTheRouters(_ path: String, _ body: String, _ fields: HTTPFields) async throws {
        let (app, routerStore, _) = try await self.fixture()
        let (_, fastStore, fast) = try await self.fixture()
        for store in [routerStore, fastStore] { _ = try await store.put("app/x", value: Data("v1".utf8)) }
        let (status, headers, answer) = try await Self.fastPut(fast, Self.put(path, length: body.utf8.count, fields), body)
        let response = try await app.test(.router) { client in
            try await client.execute(uri: path, method: .put, headers: fields, body: ByteBuffer(string: body)) { $0 }
        }
        #expect(response.status == status)
        for name: HTTPField.Name in [.gossamerNode, .gossamerRevision, .contentType] {
            #expect(headers[name] != nil && headers[name] == response.headers[name], "\(name)")
        }
        #expect((headers[.gossamerStamp] == nil) == (response.headers[.gossamerStamp] == nil))
        #expect(headers[.contentLength] == String(answer.readableBytes))
        guard status == .ok else {
            #expect(answer == response.body, "error bodies are the router's")
            return
        }
        func unstamped(_ buffer: ByteBuffer) throws -> [String: String] {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any])
            return object.filter { !["stamp", "updated_at", "parent"].contains($0.key) }.mapValues { "\($0)" }
        }
        #expect(try unstamped(answer) == unstamped(response.body))
        let key = String(path.dropFirst("/v1/kv/".count).prefix { $0 != "?" })
        let (stored, twin) = (try #require(try await fastStore.get(key)), try #require(try await routerStore.get(key)))
        #expect(stored.value == twin.value && stored.contentType == twin.contentType && stored.version == twin.version)
        #expect(stored.author == twin.author && stored.revision == twin.revision)
    }

    /// Puts the fast path cannot answer exactly like the router are left to it.
    @Test func test_acceptPut_leavesEverythingElseToTheRouter() async throws {
        let (_, _, fast) = try await self.fixture()
        #expect(fast.acceptPut(Self.put("/v1/kv/a", length: 1), start: 0) != nil)
        #expect(fast.acceptPut(Self.put("/v1/kv/a?cas=3&type=yaml", length: 1), start: 0) != nil)
        let declined = [
            "/v1/kv/a?replicas=2", "/v1/kv/a?replicas=1", "/v1/kv/a?timeout=1s", "/v1/kv/a?cas=1&cas=2", "/v1/kv/a?cas=-1",
            "/v1/kv/a?cas=x", "/v1/kv/a?cas=", "/v1/kv/a?type=", "/v1/kv/a?type", "/v1/kv/a?flags=1", "/v1/kv/a?raw",
            "/v1/kv/a%2Fb", "/v1/kv/a+b", "/v1/kv/a#f", "/v1/kv/", "/v1/kv", "/v1/kvx/a", "/v1/txn",
            "/v1/kv/\(RegistryKeys.reservedPrefix)x", "/v1/kv/a?cas=1234567890123456789",
        ]
        for path in declined { #expect(fast.acceptPut(Self.put(path, length: 1), start: 0) == nil, "\(path)") }
        let limit = ConfigSettings().maxValueBytes
        #expect(fast.acceptPut(Self.put("/v1/kv/a", length: limit), start: 0) != nil)
        for head in [
            Self.put("/v1/kv/a", length: nil), Self.put("/v1/kv/a", length: limit + 1),
            Self.put("/v1/kv/a", length: nil, [.transferEncoding: "chunked"]),
            Self.put("/v1/kv/a", length: 1, [.expect: "100-continue"]), Self.put("/v1/kv/a", length: 1, [.connection: "close"]),
            HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/v1/kv/a", headerFields: [.contentLength: "1"]),
        ] {
            #expect(fast.acceptPut(head, start: 0) == nil, "\(head)")
        }
    }

    /// Pipelined on one live connection, writes taken by the fast path, reads and what the router answers come back
    /// in request order, and the agent's later requests see each write.
    @Test func test_pipelinedWritesAndReads_answeredInOrder() async throws {
        let (_, store, fast) = try await self.fixture()
        var settings = ServerSettings()
        settings.nodeName = "t1"
        let app = Application(
            router: buildRouter(store: store, settings: settings),
            server: .http1(configuration: .init(additionalChannelHandlers: [fast.channelHandler()])),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let requests = [
                "PUT /v1/kv/p/a HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\none",
                "PUT /v1/kv/p/a HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\ntwo",
                "GET /v1/kv/p/a?raw HTTP/1.1\r\nHost: t\r\n\r\n",
                "PUT /v1/kv/p/a?cas=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx",
                "DELETE /v1/kv/p/a HTTP/1.1\r\nHost: t\r\n\r\n",
                "GET /v1/kv/p/a HTTP/1.1\r\nHost: t\r\n\r\n",
                "PUT /v1/kv/p/a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nthree",
                "GET /v1/kv/p/a?raw HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            ]
            let answer = try RawHTTP.exchange(port: port, requests.joined())
            // A status line follows the previous body directly.
            let statuses = answer.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
            #expect(statuses == ["200", "200", "200", "409", "200", "404", "200", "200"], "\(answer.debugDescription)")
            let versions = answer.components(separatedBy: "\r\n").filter { $0.lowercased().hasPrefix("x-gossamer-version: ") }
            #expect(versions == ["X-Gossamer-Version: 2", "X-Gossamer-Version: 4"], "\(answer)")
            #expect(answer.contains("\r\n\r\ntwo") && answer.hasSuffix("\r\n\r\nthree"), "\(answer)")
        }
        #expect(try await store.get("p/a")?.value == Data("three".utf8))
    }

    @Test func test_httpDate_isIMFFixdate() {
        #expect(HTTPDate.format(784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.format(1_796_667_869) == "Mon, 07 Dec 2026 18:24:29 GMT")
    }
}

/// A blocking loopback client: sends raw bytes on one connection and reads until the server closes it (5 s at most).
enum RawHTTP {
    static func exchange(port: Int, _ request: String) throws -> String {
        guard let fd = connectLoopback(port: port) else { throw RawHTTPError("cannot connect to 127.0.0.1:\(port)") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let bytes = Array(request.utf8)
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == bytes.count else { throw RawHTTPError("send failed") }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }
            received += chunk[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }
}

struct RawHTTPError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
