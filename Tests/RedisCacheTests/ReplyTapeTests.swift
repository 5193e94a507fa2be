import CHiredis
import Testing

@testable import RedisCache

/// hiredis's own reader, recording on a `ReplyTape` instead of building `redisReply` trees: every RESP2 type, nesting,
/// and replies that arrive in pieces (no server needed; the socket paths are covered by `RedisClientTests`).
@Suite struct ReplyTapeTests {
    /// Feeds `wire` to a fresh reader `step` bytes at a time and returns every reply it completes, as values.
    private func replies(_ wire: String, step: Int) throws -> [RedisValue] {
        let tape = ReplyTape()
        let reader = try #require(redisReaderCreate())
        defer { redisReaderFree(reader) }
        ReplyTape.install(tape, in: reader)
        var values: [RedisValue] = []
        let bytes = Array(wire.utf8)
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + step, bytes.count)
            let fed = bytes[offset..<end].withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { redisReaderFeed(reader, $0.baseAddress, $0.count) }
            }
            #expect(fed == REDIS_OK)
            offset = end
            while true {
                var reply: UnsafeMutableRawPointer?
                #expect(redisReaderGetReply(reader, &reply) == REDIS_OK)
                guard reply != nil else { break }
                values += try tape.take(count: 1).values()
            }
        }
        return values
    }

    static let wire =
        "+OK\r\n-ERR wrong\r\n:-42\r\n$5\r\nhe\0lo\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n"
        + "*3\r\n$1\r\na\r\n*2\r\n:1\r\n$-1\r\n+in\r\n"

    static let expected: [RedisValue] = [
        .status("OK"), .error("ERR wrong"), .integer(-42), .bulk(Array("he\0lo".utf8)), .bulk([]), .null, .null,
        .array([]), .array([.bulk(Array("a".utf8)), .array([.integer(1), .null]), .status("in")]),
    ]

    @Test(arguments: [1, 2, 3, 7, 1_000])
    func test_everyType_nested_andSplitAnywhere_decodeTheSame(step: Int) throws {
        // Given the RESP2 bytes of nine replies (every type, binary bulk, empty and null arrays, nesting)
        // When hiredis's reader parses them fed `step` bytes at a time, recording on a tape
        let values = try self.replies(Self.wire, step: step)
        // Then each reply comes out whole and equal to what was sent, whatever the split
        #expect(values == Self.expected)
    }

    @Test func test_severalRepliesTakenTogether_keepTheirOrder() throws {
        // Given a pipeline's replies all completed before any is taken
        let tape = ReplyTape()
        let reader = try #require(redisReaderCreate())
        defer { redisReaderFree(reader) }
        ReplyTape.install(tape, in: reader)
        let wire = Array("*2\r\n$1\r\nk\r\n$1\r\nv\r\n:7\r\n".utf8)
        _ = wire.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { redisReaderFeed(reader, $0.baseAddress, $0.count) }
        }
        for _ in 0..<2 {
            var reply: UnsafeMutableRawPointer?
            #expect(redisReaderGetReply(reader, &reply) == REDIS_OK && reply != nil)
        }
        // When both are taken at once
        let recorded = tape.take(count: 2)
        // Then they decode in order, and the tape starts empty again
        #expect(try recorded.values() == [.array([.bulk([107]), .bulk([118])]), .integer(7)])
        #expect(try tape.take(count: 0).values() == [])
    }

    @Test func test_aRecordThatLies_isAProtocolErrorNotACrash() {
        // A tape claiming more replies (or longer strings) than it holds
        let short = ReplyTape.Recorded(bytes: [ReplyTape.Tag.bulk.rawValue, 9, 0, 0, 0, 0, 0, 0, 0, 65], count: 1)
        #expect(throws: RedisError.self) { try short.values() }
        let missing = ReplyTape.Recorded(bytes: [ReplyTape.Tag.null.rawValue], count: 2)
        #expect(throws: RedisError.self) { try missing.values() }
        let extra = ReplyTape.Recorded(bytes: [ReplyTape.Tag.null.rawValue, ReplyTape.Tag.null.rawValue], count: 1)
        #expect(throws: RedisError.self) { try extra.values() }
    }
}
