import LoadBalancer
import NIOCore

// MARK: - Header rewriting

/// The header changes a forwarding proxy makes (RFC 9110 §7.6), on raw heads: hop-by-hop fields out, `Via` and the
/// `X-Forwarded-*` fields in. A new head is written by copying the field lines that stay, so nothing is re-encoded.
///
/// `Transfer-Encoding` is hop-by-hop, but the proxy forwards bodies as they arrived, chunk framing included, so the
/// field travels with them. It is dropped only where the proxy removes the framing (a chunked response to an HTTP/1.0
/// client).
enum HeaderRewriting {
    /// Fields that describe one connection, never forwarded (`Transfer-Encoding` aside, see above).
    static let hopByHop: [StaticString] = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "upgrade",
    ]

    /// Fields a client may not remove by naming them in `Connection`.
    static let protected: [StaticString] = ["host", "content-length", "transfer-encoding"]

    /// The head to send upstream: the request line with `uri`, always HTTP/1.1 keep-alive; hop-by-hop fields out,
    /// `X-Forwarded-For` (appended to), `X-Forwarded-Proto` and `Via` in; for an absolute-form request, `Host` is its
    /// authority.
    static func upstreamRequest(
        _ request: HTTPWire.RequestHead, uri: String, clientIP: String, allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        let head = request.head
        var out = allocator.buffer(capacity: head.bytes.readableBytes + uri.utf8.count + clientIP.utf8.count + 64)
        out.writeString(request.method)
        out.writeStaticString(" ")
        out.writeString(uri)
        out.writeStaticString(" HTTP/1.1\r\n")
        var forwardedFor: [Range<Int>] = []
        head.bytes.withUnsafeReadableBytes { raw in
            let dropped = Self.namedInConnection(raw, head)
            for field in head.fields {
                let name = field.lineStart..<field.nameEnd
                if Self.isHopByHop(raw, name) || dropped.contains(where: { Self.sameName(raw, $0, name) }) { continue }
                if HTTPWire.equalsIgnoringCase(raw, name, "x-forwarded-for") {
                    if field.valueStart < field.valueEnd { forwardedFor.append(field.valueStart..<field.valueEnd) }
                    continue
                }
                if HTTPWire.equalsIgnoringCase(raw, name, "x-forwarded-proto") { continue }
                if request.authority != nil, HTTPWire.equalsIgnoringCase(raw, name, "host") { continue }
                Self.copyLine(raw, field, into: &out)
            }
            if let authority = request.authority {
                out.writeStaticString("Host: ")
                out.writeString(authority)
                out.writeStaticString("\r\n")
            }
            out.writeStaticString("X-Forwarded-For: ")
            for range in forwardedFor {
                out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[range]))
                out.writeStaticString(", ")
            }
        }
        out.writeString(clientIP)
        out.writeStaticString("\r\nX-Forwarded-Proto: http\r\nVia: 1.1 gossamer\r\n\r\n")
        return out
    }

    /// The head to send the client: its HTTP version, the upstream's status, hop-by-hop fields out, `Via` in, and
    /// `Connection: close` when the proxy closes the connection after this response (`Connection: keep-alive` to
    /// an HTTP/1.0 client otherwise). `dechunk` drops `Transfer-Encoding`, for a body sent without chunk framing; a
    /// chunked response loses any `Content-Length`.
    static func clientResponse(
        _ response: HTTPWire.ResponseHead, minorVersion: Int, close: Bool, dechunk: Bool, allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        let head = response.head
        var out = allocator.buffer(capacity: head.bytes.readableBytes + 64)
        out.writeStaticString(minorVersion == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        head.bytes.withUnsafeReadableBytes { raw in
            out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[response.statusStart..<response.statusEnd]))
            out.writeStaticString("\r\n")
            let dropped = Self.namedInConnection(raw, head)
            for field in head.fields {
                let name = field.lineStart..<field.nameEnd
                if Self.isHopByHop(raw, name) || dropped.contains(where: { Self.sameName(raw, $0, name) }) { continue }
                if dechunk, HTTPWire.equalsIgnoringCase(raw, name, "transfer-encoding") { continue }
                // A chunked response's Content-Length is wrong by definition (RFC 9112 §6.3): the client never sees it.
                if response.framing == .chunked, HTTPWire.equalsIgnoringCase(raw, name, "content-length") { continue }
                Self.copyLine(raw, field, into: &out)
            }
        }
        out.writeStaticString("Via: 1.1 gossamer\r\n")
        Self.endHead(close: close, minorVersion: minorVersion, into: &out)
        return out
    }

    /// A response the proxy makes itself (an error or an admin page). `omitBody` answers a HEAD request.
    static func localResponse(
        minorVersion: Int, status: Int, reason: String, contentType: String, body: String, close: Bool, omitBody: Bool,
        allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var out = allocator.buffer(capacity: body.utf8.count + 160)
        out.writeStaticString(minorVersion == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        out.writeString("\(status) \(reason)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.utf8.count)\r\n")
        Self.endHead(close: close, minorVersion: minorVersion, into: &out)
        if !omitBody { out.writeString(body) }
        return out
    }

    // MARK: - Hash keys

    /// The consistent-hash key of a request, or `nil` when the source is absent from it.
    static func hashKey(_ source: HashKeySource, request: HTTPWire.RequestHead, clientIP: String) -> UInt64? {
        switch source {
        case .none:
            return nil
        case .header(let name):
            let values = request.head.values(of: name)
            guard !values.isEmpty else { return nil }
            return StableHash.hash(values.count == 1 ? String(values[0]) : values.joined(separator: ","))
        case .cookie(let name):
            guard let value = Self.cookie(named: name, in: request.head.values(of: "cookie")) else { return nil }
            return StableHash.hash(bytes: value.utf8)
        case .path:
            let uri = Substring(request.uri)
            return StableHash.hash(bytes: uri.utf8.prefix { $0 != UInt8(ascii: "?") })
        case .clientIP:
            return StableHash.hash(clientIP)
        }
    }

    /// The value of the first cookie called `name` in the `Cookie` field values.
    static func cookie(named name: String, in fields: [Substring]) -> Substring? {
        for field in fields {
            for pair in field.split(separator: ";") {
                let trimmed = pair.drop { $0 == " " }
                guard let equals = trimmed.firstIndex(of: "=") else { continue }
                if trimmed[..<equals] == name { return trimmed[trimmed.index(after: equals)...] }
            }
        }
        return nil
    }

    // MARK: - Helpers

    /// The field names listed in `Connection` fields, except the protected ones.
    private static func namedInConnection(_ raw: UnsafeRawBufferPointer, _ head: HTTPWire.Head) -> [Range<Int>] {
        var names: [Range<Int>] = []
        for field in head.fields where HTTPWire.equalsIgnoringCase(raw, field.lineStart..<field.nameEnd, "connection") {
            HTTPWire.forEachToken(raw, field.valueStart..<field.valueEnd) { token in
                if Self.isHopByHop(raw, token) { return }
                for name in Self.protected where HTTPWire.equalsIgnoringCase(raw, token, name) { return }
                names.append(token)
            }
        }
        return names
    }

    /// Whether `raw[name]` is one of `hopByHop`, ignoring ASCII case, with a length check first.
    private static func isHopByHop(_ raw: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
        switch name.count {
        case 2, 7, 10, 16, 18, 19:
            return Self.hopByHop.contains { HTTPWire.equalsIgnoringCase(raw, name, $0) }
        default:
            return false
        }
    }

    /// Whether two ranges of `raw` hold the same name, ignoring ASCII case.
    private static func sameName(_ raw: UnsafeRawBufferPointer, _ a: Range<Int>, _ b: Range<Int>) -> Bool {
        guard a.count == b.count else { return false }
        func folded(_ byte: UInt8) -> UInt8 { byte >= 65 && byte <= 90 ? byte | 0x20 : byte }
        for (i, j) in zip(a, b) where folded(raw[i]) != folded(raw[j]) { return false }
        return true
    }

    /// Ends a response head to the client: `Connection: close` when the proxy closes after it, `keep-alive` to an
    /// HTTP/1.0 client otherwise, then the empty line.
    private static func endHead(close: Bool, minorVersion: Int, into out: inout ByteBuffer) {
        if close {
            out.writeStaticString("Connection: close\r\n")
        } else if minorVersion == 0 {
            out.writeStaticString("Connection: keep-alive\r\n")
        }
        out.writeStaticString("\r\n")
    }

    /// Copies a field line with its CRLF.
    private static func copyLine(_ raw: UnsafeRawBufferPointer, _ field: HTTPWire.Field, into out: inout ByteBuffer) {
        var end = field.valueEnd
        // The line runs to its CR, which follows the value's trailing whitespace if any.
        while raw[end] != 13 { end += 1 }
        out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[field.lineStart..<(end + 2)]))
    }
}
