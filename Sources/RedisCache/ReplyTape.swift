import CHiredis

/// Replies as hiredis's reader parses them, recorded in order on one byte tape instead of a tree of `redisReply`s.
///
/// hiredis builds every reply through a table of functions (`redisReplyObjectFunctions`). Its default table
/// allocates a `redisReply` per element (an `HGETALL` of 20 fields: 41 objects, 82 allocations with their strings),
/// which the caller copies into `RedisValue`s and frees. `RedisConnection` installs this table instead: each element
/// appends a record (tag, length, bytes) to the connection's tape, so parsing allocates nothing but the tape's own
/// growth, on the pool thread; the `RedisValue`s are built later by `Recorded.values()`, on the thread of the task
/// that awaits them, which also frees them.
///
/// Records are written in pre-order (an array's record, then its elements), the order in which the reader completes
/// them, so the tape needs no pointers between records. A reply cut off mid-way stays on the tape until the reader
/// completes it; only whole replies are taken off.
final class ReplyTape {
    /// Record tags; strings carry hiredis's own type (string, status, error).
    enum Tag: UInt8 {
        case bulk = 1
        case array = 2
        case integer = 3
        case null = 4
        case status = 5
        case error = 6
    }

    /// Whole replies taken off a tape: `count` top-level values, ready to be turned into `RedisValue`s anywhere.
    struct Recorded: Sendable {
        var bytes: [UInt8]
        var count: Int

        /// The replies, in order.
        func values() throws(RedisError) -> [RedisValue] {
            var reader = Reader(bytes: self.bytes)
            var values: [RedisValue] = []
            values.reserveCapacity(self.count)
            for _ in 0..<self.count {
                values.append(try reader.value())
            }
            guard reader.offset == self.bytes.count else {
                throw RedisError(.protocolError, "hiredis recorded more than \(self.count) replies")
            }
            return values
        }
    }

    private var bytes: [UInt8] = []

    init() {
        self.bytes.reserveCapacity(4096)
    }

    /// Takes the `count` whole replies recorded so far off the tape.
    func take(count: Int) -> Recorded {
        var taken: [UInt8] = []
        taken.reserveCapacity(max(self.bytes.count, 4096))
        swap(&taken, &self.bytes)
        return Recorded(bytes: taken, count: count)
    }

    /// Forgets everything recorded (after an error, the connection is not used again).
    func clear() {
        self.bytes.removeAll(keepingCapacity: true)
    }

    fileprivate func append(_ tag: Tag, _ number: Int64) {
        self.bytes.append(tag.rawValue)
        withUnsafeBytes(of: number.littleEndian) { self.bytes.append(contentsOf: $0) }
    }

    fileprivate func append(_ tag: Tag, _ string: UnsafeMutablePointer<CChar>?, _ length: Int) {
        self.append(tag, Int64(length))
        if length > 0, let string {
            self.bytes.append(contentsOf: UnsafeRawBufferPointer(start: string, count: length))
        }
    }

    // MARK: - Installing

    /// Makes `context`'s reader record into `tape`. The tape must outlive the context's use (the connection owns
    /// both; `redisFree` calls only `freeObject`, a no-op here).
    static func install(_ tape: ReplyTape, in context: UnsafeMutablePointer<redisContext>) {
        guard let reader = context.pointee.reader else { return }
        Self.install(tape, in: reader)
    }

    /// Makes `reader` record into `tape` (which must outlive the reader's use).
    static func install(_ tape: ReplyTape, in reader: UnsafeMutablePointer<redisReader>) {
        reader.pointee.fn = Self.functions
        reader.pointee.privdata = Unmanaged.passUnretained(tape).toOpaque()
    }

    /// Any non-null pointer: hiredis takes NULL for "out of memory" and otherwise only hands the pointer back
    /// (as the reply, or to `freeObject`).
    private static var marker: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: 0x1)! }

    private static func tape(_ task: UnsafePointer<redisReadTask>?) -> ReplyTape {
        Unmanaged<ReplyTape>.fromOpaque(task!.pointee.privdata).takeUnretainedValue()
    }

    /// The function table, allocated once and never freed (hiredis keeps a pointer to it in every reader).
    /// `nonisolated(unsafe)`: written only here, at first use; hiredis only reads it.
    nonisolated(unsafe) private static let functions: UnsafeMutablePointer<redisReplyObjectFunctions> = {
        let table = UnsafeMutablePointer<redisReplyObjectFunctions>.allocate(capacity: 1)
        table.initialize(
            to: redisReplyObjectFunctions(
                createString: { task, string, length in
                    let tag: Tag
                    switch task!.pointee.type {
                    case REDIS_REPLY_STATUS: tag = .status
                    case REDIS_REPLY_ERROR: tag = .error
                    default: tag = .bulk
                    }
                    ReplyTape.tape(task).append(tag, string, length)
                    return ReplyTape.marker
                },
                createArray: { task, count in
                    ReplyTape.tape(task).append(.array, Int64(count))
                    return ReplyTape.marker
                },
                createInteger: { task, value in
                    ReplyTape.tape(task).append(.integer, Int64(value))
                    return ReplyTape.marker
                },
                createNil: { task in
                    ReplyTape.tape(task).bytes.append(Tag.null.rawValue)
                    return ReplyTape.marker
                },
                freeObject: { _ in }
            ))
        return table
    }()

    // MARK: - Reading

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func value() throws(RedisError) -> RedisValue {
            guard self.offset < self.bytes.count, let tag = Tag(rawValue: self.bytes[self.offset]) else {
                throw RedisError(.protocolError, "a recorded redis reply is malformed")
            }
            self.offset += 1
            if tag == .null { return .null }
            let number = try self.number()
            switch tag {
            case .integer:
                return .integer(number)
            case .array:
                guard number >= 0 else { return .null }
                var elements: [RedisValue] = []
                elements.reserveCapacity(Int(number))
                for _ in 0..<number {
                    elements.append(try self.value())
                }
                return .array(elements)
            case .bulk:
                return .bulk(try self.string(length: number))
            case .status:
                return .status(String(decoding: try self.string(length: number), as: UTF8.self))
            case .error:
                return .error(String(decoding: try self.string(length: number), as: UTF8.self))
            case .null:
                return .null
            }
        }

        private mutating func number() throws(RedisError) -> Int64 {
            guard self.offset + 8 <= self.bytes.count else {
                throw RedisError(.protocolError, "a recorded redis reply is cut short")
            }
            var value: Int64 = 0
            withUnsafeMutableBytes(of: &value) { raw in
                for index in 0..<8 { raw[index] = self.bytes[self.offset + index] }
            }
            self.offset += 8
            return Int64(littleEndian: value)
        }

        private mutating func string(length: Int64) throws(RedisError) -> [UInt8] {
            guard length >= 0, self.offset + Int(length) <= self.bytes.count else {
                throw RedisError(.protocolError, "a recorded redis reply is cut short")
            }
            let end = self.offset + Int(length)
            defer { self.offset = end }
            return Array(self.bytes[self.offset..<end])
        }
    }
}
