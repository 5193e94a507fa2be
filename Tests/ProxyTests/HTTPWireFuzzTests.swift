import NIOCore
import Testing
import TestSupport

@testable import Proxy

/// Seeded mutation fuzzing of the proxy's hand-written HTTP/1.1 framing. The parser reads raw bytes through unchecked
/// pointers in release builds, so the tests (debug builds, bounds-checked) feed it hundreds of thousands of broken
/// messages in random pieces and check that it never traps, that every part it cuts lies inside what it was given,
/// and that every head it accepts is rewritten into a head it accepts again: the proxy never sends on a message its
/// own strict parser would refuse.
@Suite struct HTTPWireFuzzTests {
    /// Valid messages the mutations start from.
    static let requests: [String] = [
        "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
        "HEAD / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    ]
    static let responses: [String] = [
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\n\r\nok",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
        "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
    ]
    /// Bytes that matter to the grammar, inserted more often than random ones.
    static let interesting: [UInt8] = Array("\r\n\r\n :;,\t0123456789abcdefABCDEF-/\u{0}\u{7f}".utf8) + [0x80, 0xff]

    static func mutate(_ input: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &random) {
            let position = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &random)
            let byte =
                Bool.random(using: &random)
                ? Self.interesting.randomElement(using: &random)! : UInt8.random(in: 0...255, using: &random)
            switch Int.random(in: 0..<6, using: &random) {
            case 0 where !bytes.isEmpty: bytes[position] = byte
            case 1: bytes.insert(byte, at: position)
            case 2 where !bytes.isEmpty: bytes.remove(at: position)
            case 3 where !bytes.isEmpty:
                let end = min(bytes.count, position + Int.random(in: 1...12, using: &random))
                bytes.insert(contentsOf: bytes[position..<end], at: position)
            case 4: bytes = Array(bytes.prefix(position))
            default:
                // A digit run: lengths and chunk sizes near the limits.
                bytes.insert(contentsOf: Array(String(UInt64.random(in: 0...UInt64.max, using: &random), radix: 16).utf8), at: position)
            }
        }
        return bytes
    }

    /// Feeds `bytes` in random pieces; returns how many parts came out, checking each on the way.
    static func feed(
        _ bytes: [UInt8], response: Bool, dechunk: Bool, _ random: inout SplitMix64
    ) -> (parts: Int, bodyBytes: Int) {
        var decoder = WireDecoder(maxHeadBytes: 256)
        var parts = 0
        var bodyBytes = 0
        var offset = 0
        feeding: while offset < bytes.count {
            let end = min(bytes.count, offset + Int.random(in: 1...24, using: &random))
            decoder.append(ByteBuffer(bytes: bytes[offset..<end]))
            offset = end
            while true {
                do {
                    let part: WirePart<Void>?
                    if response {
                        part = try decoder.next(dechunk: dechunk) { head throws(HTTPWire.ParseError) in
                            let parsed = try HTTPWire.parseResponse(head, noBody: false)
                            Self.check(parsed.head)
                            #expect(parsed.statusStart <= parsed.statusEnd && parsed.statusEnd <= head.readableBytes)
                            let rewritten = HeaderRewriting.clientResponse(
                                parsed, minorVersion: 1, close: false, dechunk: false, allocator: .init())
                            #expect(throws: Never.self, "rewrote \(String(buffer: head).debugDescription)") {
                                _ = try HTTPWire.parseResponse(rewritten, noBody: false)
                            }
                            return ((), parsed.framing)
                        }
                    } else {
                        part = try decoder.next { head throws(HTTPWire.ParseError) in
                            let parsed = try HTTPWire.parseRequest(head)
                            Self.check(parsed.head)
                            let rewritten = HeaderRewriting.upstreamRequest(
                                parsed, uri: parsed.uri, clientIP: "192.0.2.1", allocator: .init())
                            #expect(throws: Never.self, "rewrote \(String(buffer: head).debugDescription)") {
                                let again = try HTTPWire.parseRequest(rewritten)
                                #expect(again.framing == parsed.framing)
                            }
                            return ((), parsed.framing)
                        }
                    }
                    guard let part else { break }
                    parts += 1
                    if case .body(let buffer) = part { bodyBytes += buffer.readableBytes }
                } catch {
                    break feeding
                }
            }
        }
        if response, decoder.connectionClosed() { parts += 1 }
        return (parts, bodyBytes)
    }

    /// Every field of an accepted head lies inside its bytes, in order.
    static func check(_ head: HTTPWire.Head) {
        var previous = head.fieldsStart
        for field in head.fields {
            let ordered =
                previous <= field.lineStart && field.lineStart < field.nameEnd && field.nameEnd < field.valueStart
                && field.valueStart <= field.valueEnd && field.valueEnd <= head.bytes.readableBytes
            #expect(ordered, "field \(field) outside \(head.bytes.readableBytes) bytes")
            previous = field.valueEnd
        }
    }

    @Test(arguments: [false, true])
    func test_mutatedMessages_neverTrap_andAcceptedHeadsSurviveRewriting(response: Bool) {
        // Given a fixed seed per direction, so a failure reproduces
        var random = SplitMix64(seed: response ? 0x5EED_0002 : 0x5EED_0001)
        let corpus = (response ? Self.responses : Self.requests).map { Array($0.utf8) }
        var accepted = 0
        var totalBody = 0
        var totalInput = 0
        // When 100,000 mutated messages are decoded in random pieces (per direction)
        for round in 0..<100_000 {
            let input = Self.mutate(corpus[round % corpus.count], &random)
            let (parts, body) = Self.feed(input, response: response, dechunk: response && round % 3 == 0, &random)
            if parts > 0 { accepted += 1 }
            totalBody += body
            totalInput += input.count
        }
        // Then nothing trapped, bodies never exceeded their input, and the mutations left many messages valid
        // (so the checks inside `feed` ran on real heads, not only on refusals)
        #expect(totalBody <= totalInput)
        #expect(accepted > 10_000, "only \(accepted) mutated messages produced a part")
    }
}
