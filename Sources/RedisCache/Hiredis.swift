import CHiredis

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small helpers around the hiredis C API, used by `RedisConnection` while it holds its lock.
enum Hiredis {
    /// Ignores `SIGPIPE` once per process (the first time it is read), as SwiftNIO does on Linux: hiredis
    /// writes with `write(2)`, and writing to a socket the server has reset would otherwise kill the process.
    static let sigpipeIgnored: Void = {
        _ = signal(SIGPIPE, SIG_IGN)
    }()

    /// Converts a duration to a `timeval`, at least 1 ms (hiredis takes zero as "no timeout").
    static func timeval(_ duration: Duration) -> timeval {
        let (seconds, attoseconds) = max(duration, .milliseconds(1)).components
        return .init(tv_sec: numericCast(seconds), tv_usec: numericCast(attoseconds / 1_000_000_000_000))
    }

    /// Whole milliseconds of a duration, at least 1 and at most `Int32.max`, for `poll(2)`.
    static func milliseconds(_ duration: Duration) -> Int32 {
        let (seconds, attoseconds) = duration.components
        let total = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return Int32(clamping: max(total, 1))
    }

    /// The context's `errstr`, which Swift imports as a tuple of 128 `CChar`s.
    static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// Appends one command to the context's output buffer without sending it.
    /// Returns `false` only when hiredis runs out of memory.
    static func append(_ context: UnsafeMutablePointer<redisContext>, _ arguments: [[UInt8]]) -> Bool {
        let lengths = arguments.map(\.count)
        // One contiguous copy of all arguments; a trailing byte keeps the base address non-nil when all are empty.
        let flat = Array(arguments.joined()) + [0]
        return flat.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chars in
                guard let base = chars.baseAddress else { return false }
                var argv: [UnsafePointer<CChar>?] = []
                argv.reserveCapacity(lengths.count)
                var offset = 0
                for length in lengths {
                    argv.append(base + offset)
                    offset += length
                }
                return redisAppendCommandArgv(context, Int32(lengths.count), &argv, lengths) == REDIS_OK
            }
        }
    }

    /// Converts a hiredis reply tree into a `RedisValue`.
    static func value(of reply: UnsafePointer<redisReply>) throws(RedisError) -> RedisValue {
        let reply = reply.pointee
        switch reply.type {
        case REDIS_REPLY_STRING:
            return .bulk(bytes(reply))
        case REDIS_REPLY_STATUS:
            return .status(String(decoding: bytes(reply), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: bytes(reply), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(Int64(reply.integer))
        case REDIS_REPLY_NIL:
            return .null
        case REDIS_REPLY_ARRAY:
            var elements: [RedisValue] = []
            elements.reserveCapacity(reply.elements)
            for index in 0..<reply.elements {
                guard let element = reply.element[index] else {
                    throw RedisError(.protocolError, "hiredis returned an array with a missing element")
                }
                elements.append(try value(of: element))
            }
            return .array(elements)
        default:
            throw RedisError(.protocolError, "hiredis returned an unknown reply type \(reply.type)")
        }
    }

    private static func bytes(_ reply: redisReply) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: reply.str, count: reply.len))
    }
}
