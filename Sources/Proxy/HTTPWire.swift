import NIOCore

// MARK: - HTTP/1.1 framing on raw bytes

/// The proxy reads HTTP/1.1 messages as bytes: it finds where a head ends, notes where each field sits in it, and
/// works out where the body ends (RFC 9112 §6). Heads are rewritten by copying field lines; bodies, chunked or not,
/// are forwarded as the bytes that arrived. Nothing is turned into `String`s but the method and the target.
///
/// The parser is strict where leniency lets two parties disagree about message boundaries (request smuggling):
/// bare LF, obsolete line folding, whitespace before a colon, a field name that is not a token, a `Content-Length`
/// that is not one decimal number, both `Content-Length` and `Transfer-Encoding` in a request, and a request
/// `Transfer-Encoding` other than `chunked` are all errors.
enum HTTPWire {
    /// A message the parser refused, with what was wrong.
    struct ParseError: Error, CustomStringConvertible, Equatable {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Where a message body ends.
    enum Framing: Equatable {
        /// No body.
        case none
        /// `Content-Length` bytes.
        case length(Int)
        /// Chunked transfer coding, up to and including the last chunk and trailers.
        case chunked
        /// Until the connection closes (responses only).
        case untilClose
    }

    /// One field line of a head: offsets into the head's bytes.
    struct Field {
        /// The whole line without its CRLF.
        var lineStart: Int
        var nameEnd: Int
        var valueStart: Int
        var valueEnd: Int
    }

    /// What every head has: its bytes (request or status line, fields, and the empty line) and its fields.
    struct Head {
        var bytes: ByteBuffer
        var fields: [Field]
        /// Where the field lines start (after the start line's CRLF).
        var fieldsStart: Int
        /// 0 for HTTP/1.0, 1 for HTTP/1.1.
        var minorVersion: Int

        /// The values of every field called `name` (ASCII case ignored), in order.
        func values(of name: String) -> [Substring] {
            var result: [Substring] = []
            let lowered = name.lowercased()
            self.bytes.withUnsafeReadableBytes { bytes in
                for field in self.fields
                where HTTPWire.equalsIgnoringCase(bytes, field.lineStart..<field.nameEnd, lowered.utf8) {
                    result.append(Substring(decoding: UnsafeRawBufferPointer(rebasing: bytes[field.valueStart..<field.valueEnd]), as: UTF8.self))
                }
            }
            return result
        }
    }

    /// A request head.
    struct RequestHead {
        var head: Head
        var method: String
        /// The target in origin form (`/path?query`), also when the client sent the absolute form.
        var uri: String
        /// The authority of an absolute-form target (`GET http://host:port/path`), which replaces `Host` (RFC 9112
        /// §3.2.2); `nil` for the usual origin form.
        var authority: String? = nil
        var framing: Framing
        /// The client keeps the connection open after this exchange (HTTP/1.1 without `close`, or HTTP/1.0 with
        /// `keep-alive`).
        var keepAlive: Bool
        /// `Upgrade` named in `Connection`.
        var isUpgrade: Bool
    }

    /// A response head.
    struct ResponseHead {
        var head: Head
        var status: Int
        /// Where the status code starts in the status line (the code, the reason and nothing after).
        var statusStart: Int
        /// Where the status line ends (before its CRLF).
        var statusEnd: Int
        var framing: Framing
        /// The upstream keeps the connection open after this response.
        var keepAlive: Bool
    }

    // MARK: - Heads

    /// Where the head in `bytes` ends (just after its empty line), or `nil` when it is not complete. Scanning starts at
    /// `from` (a previous call's `scanned`, so a head arriving in pieces is not scanned twice).
    static func headEnd(_ bytes: UnsafeRawBufferPointer, from: Int, scanned: inout Int) -> Int? {
        var index = max(from, 3)
        let count = bytes.count
        while index < count {
            // The last byte of "\r\n\r\n" is at `index`; jump by what the current byte allows.
            let byte = bytes[index]
            if byte == 10 {
                if bytes[index - 1] == 13, bytes[index - 2] == 10, bytes[index - 3] == 13 { return index + 1 }
                index += 2
            } else if byte == 13 {
                index += 1
            } else {
                index += 4
            }
        }
        scanned = count
        return nil
    }

    /// Parses a request head (the bytes up to and including its empty line).
    static func parseRequest(_ bytes: ByteBuffer) throws(ParseError) -> RequestHead {
        let parsed: Result<RequestHead, ParseError> = bytes.withUnsafeReadableBytes { raw in
            do throws(ParseError) {
                let lineEnd = try Self.lineEnd(raw, from: 0)
                // method SP request-target SP HTTP-version
                guard let space1 = raw[0..<lineEnd].firstIndex(of: 32), space1 > 0 else {
                    throw ParseError("the request line has no method")
                }
                for index in 0..<space1 where !Self.isToken(raw[index]) {
                    throw ParseError("the method is not a token")
                }
                guard let space2 = raw[(space1 + 1)..<lineEnd].firstIndex(of: 32), space2 > space1 + 1 else {
                    throw ParseError("the request line has no target")
                }
                for index in (space1 + 1)..<space2 where raw[index] <= 32 || raw[index] == 127 {
                    throw ParseError("the request target holds a control character or space")
                }
                let minor = try Self.version(raw, space2 + 1, lineEnd)
                let fields = try Self.parseFields(raw, from: lineEnd + 2)
                let head = Head(bytes: bytes, fields: fields, fieldsStart: lineEnd + 2, minorVersion: minor)
                let method = String(decoding: UnsafeRawBufferPointer(rebasing: raw[0..<space1]), as: UTF8.self)
                let target = String(decoding: UnsafeRawBufferPointer(rebasing: raw[(space1 + 1)..<space2]), as: UTF8.self)
                let (uri, authority) = try Self.originForm(target)
                let framing = try Self.requestFraming(raw, fields)
                let (keepAlive, upgrade) = Self.connectionFlags(raw, fields, minor: minor)
                return .success(
                    RequestHead(
                        head: head, method: method, uri: uri, authority: authority, framing: framing, keepAlive: keepAlive,
                        isUpgrade: upgrade))
            } catch {
                return .failure(error)
            }
        }
        return try parsed.get()
    }

    /// A request target in origin form, and the authority when it came in absolute form. A server must accept the
    /// absolute form (RFC 9112 §3.2.2), which clients send to proxies: `http://host:port/path?q` becomes
    /// `/path?q` with authority `host:port`. Other targets (origin form, `*`) are returned as they are.
    static func originForm(_ target: String) throws(ParseError) -> (uri: String, authority: String?) {
        guard let first = target.utf8.first, first != UInt8(ascii: "/"), first != UInt8(ascii: "*") else { return (target, nil) }
        guard let colon = target.firstIndex(of: ":"), target[colon...].hasPrefix("://") else {
            throw ParseError("the request target must be a path such as /v1/kv/key, or an absolute http:// URL")
        }
        let scheme = target[..<colon].lowercased()
        guard scheme == "http" || scheme == "https" else {
            throw ParseError("the request target's scheme must be http or https, not '\(scheme)'")
        }
        let rest = target[target.index(colon, offsetBy: 3)...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard !authority.isEmpty, !authority.contains("@") else {
            throw ParseError("the request target's authority must be host[:port], without user information")
        }
        let path = rest[authorityEnd...].prefix { $0 != "#" }
        return (path.first == "/" ? String(path) : "/" + path, String(authority))
    }

    /// Parses a response head. `noBody` is set for the answer to a HEAD request, which never has a body.
    static func parseResponse(_ bytes: ByteBuffer, noBody: Bool) throws(ParseError) -> ResponseHead {
        let parsed: Result<ResponseHead, ParseError> = bytes.withUnsafeReadableBytes { raw in
            do throws(ParseError) {
                let lineEnd = try Self.lineEnd(raw, from: 0)
                // HTTP-version SP 3DIGIT SP [reason]
                guard lineEnd >= 12, raw[8] == 32 else { throw ParseError("the status line is malformed") }
                let minor = try Self.version(raw, 0, 8)
                var status = 0
                for index in 9..<12 {
                    let digit = raw[index] &- 48
                    guard digit < 10 else { throw ParseError("the status code is not three digits") }
                    status = status * 10 + Int(digit)
                }
                guard lineEnd == 12 || raw[12] == 32 else { throw ParseError("the status line is malformed") }
                let fields = try Self.parseFields(raw, from: lineEnd + 2)
                let head = Head(bytes: bytes, fields: fields, fieldsStart: lineEnd + 2, minorVersion: minor)
                let (keepAlive, _) = Self.connectionFlags(raw, fields, minor: minor)
                let framing: Framing
                if noBody || status < 200 || status == 204 || status == 304 {
                    framing = status == 101 ? .untilClose : .none
                } else {
                    framing = try Self.responseFraming(raw, fields)
                }
                return .success(
                    ResponseHead(
                        head: head, status: status, statusStart: 9, statusEnd: lineEnd, framing: framing,
                        keepAlive: keepAlive && framing != .untilClose))
            } catch {
                return .failure(error)
            }
        }
        return try parsed.get()
    }

    /// The index of the CR of the line starting at `from`; a bare LF or a control character is an error.
    private static func lineEnd(_ raw: UnsafeRawBufferPointer, from: Int) throws(ParseError) -> Int {
        var index = from
        while index < raw.count {
            let byte = raw[index]
            if byte == 13 {
                guard index + 1 < raw.count, raw[index + 1] == 10 else { throw ParseError("a CR is not followed by LF") }
                return index
            }
            if byte == 10 { throw ParseError("a line ends with a bare LF") }
            if byte == 0 || (byte < 32 && byte != 9) || byte == 127 {
                throw ParseError("the head holds a control character")
            }
            index += 1
        }
        throw ParseError("the head is incomplete")
    }

    /// `HTTP/1.0` or `HTTP/1.1` at `start..<end`: the minor version.
    private static func version(_ raw: UnsafeRawBufferPointer, _ start: Int, _ end: Int) throws(ParseError) -> Int {
        let expected: [UInt8] = Array("HTTP/1.".utf8)
        guard end - start == 8 else { throw ParseError("the HTTP version is malformed") }
        for offset in 0..<7 where raw[start + offset] != expected[offset] {
            throw ParseError("the HTTP version is not HTTP/1.x")
        }
        switch raw[start + 7] {
        case UInt8(ascii: "0"): return 0
        case UInt8(ascii: "1"): return 1
        default: throw ParseError("the HTTP version is not 1.0 or 1.1")
        }
    }

    /// The field lines from `from` to the empty line.
    private static func parseFields(_ raw: UnsafeRawBufferPointer, from: Int) throws(ParseError) -> [Field] {
        var fields: [Field] = []
        fields.reserveCapacity(8)
        var start = from
        while true {
            let end = try Self.lineEnd(raw, from: start)
            if end == start { return fields }
            let first = raw[start]
            if first == 32 || first == 9 { throw ParseError("obsolete line folding is not accepted") }
            var colon = start
            while colon < end, raw[colon] != UInt8(ascii: ":") {
                guard Self.isToken(raw[colon]) else { throw ParseError("a field name holds an invalid character") }
                colon += 1
            }
            guard colon < end, colon > start else { throw ParseError("a field line has no name or no colon") }
            var valueStart = colon + 1
            while valueStart < end, raw[valueStart] == 32 || raw[valueStart] == 9 { valueStart += 1 }
            var valueEnd = end
            while valueEnd > valueStart, raw[valueEnd - 1] == 32 || raw[valueEnd - 1] == 9 { valueEnd -= 1 }
            fields.append(Field(lineStart: start, nameEnd: colon, valueStart: valueStart, valueEnd: valueEnd))
            start = end + 2
        }
    }

    private static func requestFraming(_ raw: UnsafeRawBufferPointer, _ fields: [Field]) throws(ParseError) -> Framing {
        let (length, chunked, transferEncoding) = try Self.framingFields(raw, fields)
        if transferEncoding {
            guard length == nil else { throw ParseError("a request has both Content-Length and Transfer-Encoding") }
            guard chunked else { throw ParseError("a request Transfer-Encoding other than chunked") }
            return .chunked
        }
        if let length, length > 0 { return .length(length) }
        return .none
    }

    private static func responseFraming(_ raw: UnsafeRawBufferPointer, _ fields: [Field]) throws(ParseError) -> Framing {
        let (length, chunked, transferEncoding) = try Self.framingFields(raw, fields)
        if transferEncoding { return chunked ? .chunked : .untilClose }
        if let length { return length > 0 ? .length(length) : .none }
        return .untilClose
    }

    /// `Content-Length` (one number, repeated values allowed when equal), whether the last transfer coding is
    /// `chunked`, and whether there is a `Transfer-Encoding` field.
    private static func framingFields(
        _ raw: UnsafeRawBufferPointer, _ fields: [Field]
    ) throws(ParseError) -> (Int?, Bool, Bool) {
        var length: Int?
        var chunked = false
        var transferEncoding = false
        for field in fields {
            let name = field.lineStart..<field.nameEnd
            if Self.equalsIgnoringCase(raw, name, "content-length") {
                var value = 0
                var digits = 0
                var failed = false
                Self.forEachToken(raw, field.valueStart..<field.valueEnd) { range in
                    var number = 0
                    for index in range {
                        let digit = raw[index] &- 48
                        if digit > 9 || number > (Int.max - 9) / 10 {
                            failed = true
                            return
                        }
                        number = number * 10 + Int(digit)
                    }
                    if range.isEmpty || (digits > 0 && number != value) { failed = true }
                    value = number
                    digits += 1
                }
                guard !failed, digits > 0 else { throw ParseError("Content-Length is not a number") }
                guard length == nil || length == value else { throw ParseError("Content-Length values differ") }
                length = value
            } else if Self.equalsIgnoringCase(raw, name, "transfer-encoding") {
                transferEncoding = true
                var last: Range<Int>?
                Self.forEachToken(raw, field.valueStart..<field.valueEnd) { last = $0 }
                chunked = last.map { Self.equalsIgnoringCase(raw, $0, "chunked") } ?? false
            }
        }
        return (length, chunked, transferEncoding)
    }

    /// Keep-alive and upgrade, from the version and the `Connection` fields.
    private static func connectionFlags(_ raw: UnsafeRawBufferPointer, _ fields: [Field], minor: Int) -> (Bool, Bool) {
        var close = false
        var keepAlive = false
        var upgrade = false
        for field in fields where Self.equalsIgnoringCase(raw, field.lineStart..<field.nameEnd, "connection") {
            Self.forEachToken(raw, field.valueStart..<field.valueEnd) { token in
                if Self.equalsIgnoringCase(raw, token, "close") {
                    close = true
                } else if Self.equalsIgnoringCase(raw, token, "keep-alive") {
                    keepAlive = true
                } else if Self.equalsIgnoringCase(raw, token, "upgrade") {
                    upgrade = true
                }
            }
        }
        let persistent = minor == 1 ? !close : (keepAlive && !close)
        return (persistent, upgrade)
    }

    // MARK: - Helpers

    /// Calls `body` with each comma-separated element of `range`, trimmed of spaces and tabs, skipping empty ones.
    static func forEachToken(_ raw: UnsafeRawBufferPointer, _ range: Range<Int>, _ body: (Range<Int>) -> Void) {
        var start = range.lowerBound
        while start < range.upperBound {
            var end = start
            while end < range.upperBound, raw[end] != UInt8(ascii: ",") { end += 1 }
            var low = start
            var high = end
            while low < high, raw[low] == 32 || raw[low] == 9 { low += 1 }
            while high > low, raw[high - 1] == 32 || raw[high - 1] == 9 { high -= 1 }
            if low < high { body(low..<high) }
            start = end + 1
        }
    }

    /// Whether `raw[range]` equals the lowercase ASCII `lowercase`, ignoring the case of `raw`.
    static func equalsIgnoringCase(_ raw: UnsafeRawBufferPointer, _ range: Range<Int>, _ lowercase: StaticString) -> Bool {
        guard range.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        var offset = 0
        for index in range {
            let byte = raw[index]
            let folded = byte >= 65 && byte <= 90 ? byte | 0x20 : byte
            if folded != expected[offset] { return false }
            offset += 1
        }
        return true
    }

    /// Whether `raw[range]` equals `lowercase` (lowercase ASCII bytes), ignoring the case of `raw`.
    static func equalsIgnoringCase(_ raw: UnsafeRawBufferPointer, _ range: Range<Int>, _ lowercase: String.UTF8View) -> Bool {
        guard range.count == lowercase.count else { return false }
        for (index, expected) in zip(range, lowercase) {
            let byte = raw[index]
            let folded = byte >= 65 && byte <= 90 ? byte | 0x20 : byte
            if folded != expected { return false }
        }
        return true
    }

    /// RFC 9110 `tchar`.
    static func isToken(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
            UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}

// MARK: - Chunked bodies

/// Follows a chunked body (RFC 9112 §7.1) through the bytes that carry it, to find where it ends without copying
/// it. In decoding mode it also reports where chunk data lies, so the data alone can be sent on.
struct ChunkedScanner {
    private enum State {
        case size(value: Int, digits: Int)
        case extensions
        case sizeLF(last: Bool)
        case data(remaining: Int)
        case dataCR
        case dataLF
        /// In a trailer line (`atStart`: before its first byte, where a CR ends the trailers).
        case trailerLine(atStart: Bool)
        case trailerLF
        case finalLF
        case done
    }

    private var state = State.size(value: 0, digits: 0)
    /// Bytes of chunk extensions and trailers seen so far, bounded by `limit`.
    private var metadata = 0
    private let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    var isDone: Bool {
        if case .done = self.state { return true }
        return false
    }

    /// Advances over `raw`. Returns the bytes consumed and, when `stopAtData`, the range of chunk data within them
    /// (the scan then stops at the end of that data, so the caller can send it before scanning on).
    mutating func scan(_ raw: UnsafeRawBufferPointer, stopAtData: Bool) throws(HTTPWire.ParseError) -> (consumed: Int, data: Range<Int>?) {
        var index = 0
        let count = raw.count
        while index < count {
            switch self.state {
            case .done:
                return (index, nil)
            case .data(let remaining):
                let take = min(remaining, count - index)
                self.state = remaining == take ? .dataCR : .data(remaining: remaining - take)
                index += take
                if stopAtData { return (index, (index - take)..<index) }
                continue
            case .size(let value, let digits):
                let byte = raw[index]
                if let digit = Self.hexValue(byte) {
                    guard digits < 15 else { throw HTTPWire.ParseError("a chunk size is too large") }
                    self.state = .size(value: value << 4 | digit, digits: digits + 1)
                } else if digits > 0, byte == UInt8(ascii: ";") || byte == 32 || byte == 9 {
                    self.state = .extensions
                    self.pending = value
                } else if digits > 0, byte == 13 {
                    self.state = .sizeLF(last: value == 0)
                    self.pending = value
                } else {
                    throw HTTPWire.ParseError("a chunk size is not hexadecimal")
                }
            case .extensions:
                let byte = raw[index]
                if byte == 13 {
                    self.state = .sizeLF(last: self.pending == 0)
                } else {
                    guard byte != 10, byte != 0 else { throw HTTPWire.ParseError("a chunk extension is malformed") }
                    try self.countMetadata()
                }
            case .sizeLF(let last):
                guard raw[index] == 10 else { throw HTTPWire.ParseError("a chunk size line does not end with CRLF") }
                self.state = last ? .trailerLine(atStart: true) : (self.pending > 0 ? .data(remaining: self.pending) : .dataCR)
            case .dataCR:
                guard raw[index] == 13 else { throw HTTPWire.ParseError("chunk data is longer than its size") }
                self.state = .dataLF
            case .dataLF:
                guard raw[index] == 10 else { throw HTTPWire.ParseError("chunk data does not end with CRLF") }
                self.state = .size(value: 0, digits: 0)
            case .trailerLine(let atStart):
                let byte = raw[index]
                if byte == 13 {
                    self.state = atStart ? .finalLF : .trailerLF
                } else {
                    guard byte != 10 else { throw HTTPWire.ParseError("a trailer line ends with a bare LF") }
                    try self.countMetadata()
                    self.state = .trailerLine(atStart: false)
                }
            case .trailerLF:
                guard raw[index] == 10 else { throw HTTPWire.ParseError("a trailer line does not end with CRLF") }
                self.state = .trailerLine(atStart: true)
            case .finalLF:
                guard raw[index] == 10 else { throw HTTPWire.ParseError("the chunked body does not end with CRLF") }
                self.state = .done
                return (index + 1, nil)
            }
            index += 1
        }
        return (index, nil)
    }

    /// The size of the chunk whose size line is being read.
    private var pending = 0

    private mutating func countMetadata() throws(HTTPWire.ParseError) {
        self.metadata += 1
        guard self.metadata <= self.limit else { throw HTTPWire.ParseError("chunk extensions or trailers are too large") }
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return Int(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return Int(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }
}

// MARK: - Message decoding

/// A part of a message read from a connection.
enum WirePart<Head> {
    case head(Head)
    /// Body bytes as they arrived (chunk framing included, unless decoding).
    case body(ByteBuffer)
    case end
}

/// Splits the bytes of one connection into heads, body slices and ends. It holds the bytes it has not used yet;
/// a part is only cut when asked for, so a connection that must wait simply stops asking.
struct WireDecoder {
    private enum State {
        case head(scanned: Int)
        case body(HTTPWire.Framing, remaining: Int)
        case chunked(ChunkedScanner)
        case end
        case broken
    }

    private var state = State.head(scanned: 0)
    private var buffer: ByteBuffer?
    /// The longest head accepted, in bytes.
    let maxHeadBytes: Int

    init(maxHeadBytes: Int) {
        self.maxHeadBytes = maxHeadBytes
    }

    /// Bytes received and not yet cut into parts.
    var bufferedBytes: Int { self.buffer?.readableBytes ?? 0 }

    /// Adds received bytes.
    mutating func append(_ bytes: ByteBuffer) {
        if self.buffer == nil || self.buffer!.readableBytes == 0 {
            self.buffer = bytes
        } else {
            self.buffer!.writeImmutableBuffer(bytes)
        }
    }

    /// Marks the decoder unusable after an error: later bytes are dropped.
    mutating func breakDown() {
        self.state = .broken
        self.buffer = nil
    }

    /// The connection closed: whether that ends a message read until the close (its `.end` is then the next part).
    mutating func connectionClosed() -> Bool {
        guard case .body(.untilClose, _) = self.state else { return false }
        self.state = .end
        return true
    }

    /// The next head, cut with `parse`, or body part or end; `nil` when more bytes are needed. `dechunk` sends chunk
    /// data without its framing.
    mutating func next<Head>(
        dechunk: Bool = false, parse: (ByteBuffer) throws(HTTPWire.ParseError) -> (Head, HTTPWire.Framing)
    ) throws(HTTPWire.ParseError) -> WirePart<Head>? {
        switch self.state {
        case .broken:
            return nil
        case .end:
            self.state = .head(scanned: 0)
            return .end
        case .head(let scanned):
            guard var buffer = self.buffer, buffer.readableBytes > 0 else { return nil }
            var newScanned = scanned
            let end = buffer.withUnsafeReadableBytes { HTTPWire.headEnd($0, from: scanned, scanned: &newScanned) }
            guard let end else {
                if buffer.readableBytes > self.maxHeadBytes {
                    throw HTTPWire.ParseError("the head is larger than allowed")
                }
                self.state = .head(scanned: newScanned)
                return nil
            }
            guard end <= self.maxHeadBytes else { throw HTTPWire.ParseError("the head is larger than allowed") }
            let bytes = buffer.readSlice(length: end)!
            self.buffer = buffer.readableBytes > 0 ? buffer : nil
            let (head, framing) = try parse(bytes)
            switch framing {
            case .none: self.state = .end
            case .length(let length): self.state = .body(framing, remaining: length)
            case .untilClose: self.state = .body(framing, remaining: Int.max)
            case .chunked: self.state = .chunked(ChunkedScanner(limit: self.maxHeadBytes))
            }
            return .head(head)
        case .body(let framing, let remaining):
            guard var buffer = self.buffer, buffer.readableBytes > 0 else { return nil }
            let take = min(remaining, buffer.readableBytes)
            let slice = buffer.readSlice(length: take)!
            self.buffer = buffer.readableBytes > 0 ? buffer : nil
            self.state = take == remaining ? .end : .body(framing, remaining: remaining - take)
            return .body(slice)
        case .chunked(var scanner):
            guard var buffer = self.buffer, buffer.readableBytes > 0 else { return nil }
            var result: Result<(consumed: Int, data: Range<Int>?), HTTPWire.ParseError> = .success((0, nil))
            buffer.withUnsafeReadableBytes { raw in
                do throws(HTTPWire.ParseError) {
                    result = .success(try scanner.scan(raw, stopAtData: dechunk))
                } catch {
                    result = .failure(error)
                }
            }
            let (consumed, data) = try result.get()
            let slice: ByteBuffer
            if dechunk {
                if let data {
                    slice = buffer.getSlice(at: buffer.readerIndex + data.lowerBound, length: data.count)!
                } else {
                    slice = ByteBuffer()
                }
                buffer.moveReaderIndex(forwardBy: consumed)
            } else {
                slice = buffer.readSlice(length: consumed)!
            }
            self.buffer = buffer.readableBytes > 0 ? buffer : nil
            self.state = scanner.isDone ? .end : .chunked(scanner)
            if slice.readableBytes == 0 {
                // Only framing: go on with what is left (or the end).
                return try self.next(dechunk: dechunk, parse: parse)
            }
            return .body(slice)
        }
    }
}
