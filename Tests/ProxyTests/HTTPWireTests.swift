import NIOCore
import Testing

@testable import Proxy

/// The proxy's HTTP/1.1 framing on raw bytes: heads, body framing, chunked bodies, and what it refuses.
@Suite struct HTTPWireTests {
    /// Decodes `input` fed in pieces of `step` bytes (the last piece shorter), as text: heads as `H:<method> <uri>`
    /// or `H:<status>`, bodies as their bytes, ends as `|`.
    private func decode(
        _ input: String, step: Int, response: Bool = false, noBody: Bool = false, dechunk: Bool = false, maxHead: Int = 4096
    ) throws -> String {
        var decoder = WireDecoder(maxHeadBytes: maxHead)
        let bytes = Array(input.utf8)
        var out = ""
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + step, bytes.count)
            decoder.append(ByteBuffer(bytes: bytes[offset..<end]))
            offset = end
            while true {
                let part: WirePart<String>?
                if response {
                    part = try decoder.next(dechunk: dechunk) { bytes throws(HTTPWire.ParseError) in
                        let head = try HTTPWire.parseResponse(bytes, noBody: noBody)
                        return ("H:\(head.status)", head.framing)
                    }
                } else {
                    part = try decoder.next { bytes throws(HTTPWire.ParseError) in
                        let head = try HTTPWire.parseRequest(bytes)
                        return ("H:\(head.method) \(head.uri)", head.framing)
                    }
                }
                guard let part else { break }
                switch part {
                case .head(let text): out += text + ";"
                case .body(let buffer): out += String(buffer: buffer)
                case .end: out += "|"
                }
            }
        }
        return out
    }

    @Test func test_pipelinedRequests_anySplit_giveTheSameParts() throws {
        // Given three pipelined requests: no body, a Content-Length body, a chunked body with extensions and trailers
        let input =
            "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
            + "POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
            + "PUT /c HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n"
        let expected =
            "H:GET /a;|H:POST /b;hello|H:PUT /c;3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n|"
        // When they arrive in pieces of every size from 1 byte to all at once
        for step in [1, 2, 3, 5, 7, 16, 64, input.utf8.count] {
            // Then the parts are the same, chunk framing passed through as it arrived
            #expect(try self.decode(input, step: step) == expected, "step \(step)")
        }
    }

    @Test func test_responses_framingByStatusMethodAndFields() throws {
        // Content-Length, chunked decoded for an HTTP/1.0 client, informational then final, no body for 204/304/HEAD
        #expect(try self.decode("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", step: 4, response: true) == "H:200;ok|")
        #expect(
            try self.decode(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n", step: 3,
                response: true, dechunk: true) == "H:200;wikipedia|")
        #expect(
            try self.decode("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", step: 100, response: true)
                == "H:100;|H:204;|")
        #expect(try self.decode("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", step: 9, response: true) == "H:304;|")
        #expect(
            try self.decode("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", step: 9, response: true, noBody: true) == "H:200;|")
        let closeDelimited = try HTTPWire.parseResponse(ByteBuffer(string: "HTTP/1.0 200 OK\r\n\r\n"), noBody: false)
        #expect(closeDelimited.framing == .untilClose)
        #expect(!closeDelimited.keepAlive)
        let keepAlive10 = try HTTPWire.parseResponse(
            ByteBuffer(string: "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"), noBody: false)
        #expect(keepAlive10.keepAlive)
        #expect(keepAlive10.framing == .none)
    }

    @Test func test_untilCloseBody_endsWhenTheConnectionCloses() throws {
        var decoder = WireDecoder(maxHeadBytes: 1024)
        decoder.append(ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\nstream"))
        let parse = { (bytes: ByteBuffer) throws(HTTPWire.ParseError) -> (Int, HTTPWire.Framing) in
            let head = try HTTPWire.parseResponse(bytes, noBody: false)
            return (head.status, head.framing)
        }
        let head = try decoder.next(parse: parse)
        guard case .head(200) = head else { Issue.record("no head"); return }
        let bodyPart = try decoder.next(parse: parse)
        guard case .body(let body) = bodyPart else { Issue.record("no body"); return }
        #expect(String(buffer: body) == "stream")
        let rest = try decoder.next(parse: parse)
        #expect(rest == nil)
        let closed = decoder.connectionClosed()
        #expect(closed)
        let end = try decoder.next(parse: parse)
        guard case .end = end else { Issue.record("no end"); return }
    }

    @Test(arguments: [
        ("GET / HTTP/1.1\nHost: x\r\n\r\n", "bare LF"),
        ("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", "obsolete line folding"),
        ("GET / HTTP/1.1\r\nHost : x\r\n\r\n", "field name"),
        ("GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", "Content-Length"),
        ("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "Content-Length values differ"),
        ("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "both"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "other than chunked"),
        ("GET / HTTP/2.0\r\n\r\n", "HTTP version"),
        ("GET /\u{1}x HTTP/1.1\r\n\r\n", "control character"),
        ("GARBAGE\r\n\r\n", "method"),
        ("GET  HTTP/1.1\r\n\r\n", "target"),
        ("GET v1/kv/a HTTP/1.1\r\n\r\n", "must be a path"),
        ("GET ftp://h/x HTTP/1.1\r\n\r\n", "scheme must be http or https"),
        ("GET http://user@h/x HTTP/1.1\r\n\r\n", "without user information"),
        ("GET http:///x HTTP/1.1\r\n\r\n", "authority"),
    ])
    func test_malformedRequestHeads_areRefused(input: String, reason: String) {
        let error = #expect(throws: HTTPWire.ParseError.self) { _ = try self.decode(input, step: 1000) }
        #expect(error?.description.contains(reason) == true, "\(String(describing: error))")
    }

    @Test func test_malformedChunkedBodies_andOversizedHeads_areRefused() {
        let head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        for body in ["zz\r\n", "3\r\nabcd\r\n", "3\nabc", "ffffffffffffffff1\r\n"] {
            #expect(throws: HTTPWire.ParseError.self, "\(body)") { _ = try self.decode(head + body, step: 1000) }
        }
        // A head (or a request line) longer than the limit, complete or not
        let long = "GET /" + String(repeating: "a", count: 300) + " HTTP/1.1\r\n"
        #expect(throws: HTTPWire.ParseError.self) { _ = try self.decode(long + "\r\n", step: 1000, maxHead: 256) }
        #expect(throws: HTTPWire.ParseError.self) { _ = try self.decode(long, step: 1000, maxHead: 256) }
        // Trailers count against the limit too
        let trailers = String(repeating: "X-T: 1\r\n", count: 100)
        #expect(throws: HTTPWire.ParseError.self) { _ = try self.decode(head + "0\r\n" + trailers + "\r\n", step: 1000, maxHead: 256) }
    }

    /// A server must accept absolute-form targets (RFC 9112 §3.2.2): routing and forwarding use the origin form.
    @Test(arguments: [
        ("http://example.com:8080/v1/kv/a?raw", "/v1/kv/a?raw", "example.com:8080"),
        ("HTTP://h", "/", "h"),
        ("https://h?x=1", "/?x=1", "h"),
        ("http://h/p#fragment", "/p", "h"),
        ("/v1/kv/a", "/v1/kv/a", nil),
        ("*", "*", nil),
    ] as [(String, String, String?)])
    func test_absoluteFormTarget_becomesOriginFormWithAuthority(target: String, uri: String, authority: String?) throws {
        let head = try HTTPWire.parseRequest(ByteBuffer(string: "GET \(target) HTTP/1.1\r\nHost: ignored\r\n\r\n"))
        #expect(head.uri == uri)
        #expect(head.authority == authority)
    }

    @Test func test_requestFlags_keepAliveAndUpgrade() throws {
        let http10 = try HTTPWire.parseRequest(ByteBuffer(string: "GET / HTTP/1.0\r\n\r\n"))
        #expect(!http10.keepAlive)
        let http10KeepAlive = try HTTPWire.parseRequest(ByteBuffer(string: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
        #expect(http10KeepAlive.keepAlive)
        let upgrade = try HTTPWire.parseRequest(
            ByteBuffer(string: "GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"))
        #expect(upgrade.keepAlive && upgrade.isUpgrade)
        #expect(upgrade.head.values(of: "UPGRADE") == ["websocket"])
    }
}
