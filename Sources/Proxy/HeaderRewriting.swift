import LoadBalancer
import NIOHTTP1

// MARK: - Header rewriting

/// The header changes a forwarding proxy makes (RFC 9110 §7.6): hop-by-hop fields out, `Via` and the
/// `X-Forwarded-*` fields in.
enum HeaderRewriting {
    /// The `Via` entry this proxy adds.
    static let via = "1.1 gossamer"

    /// Fields that describe one connection, never forwarded. `Transfer-Encoding` is re-created by NIO's encoders
    /// from the body framing.
    static let hopByHop: [String] = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade",
    ]

    /// Fields a client may not remove by naming them in `Connection`.
    static let protected: [String] = ["host", "content-length"]

    /// Removes hop-by-hop fields, including those named in `Connection`. Returns whether the message had a
    /// `Transfer-Encoding` field. Allocates nothing when there is nothing to remove.
    @discardableResult
    static func stripHopByHop(_ headers: inout HTTPHeaders) -> Bool {
        var found = false
        for (name, _) in headers where Self.isHopByHop(name) {
            found = true
            break
        }
        guard found else { return false }
        let hadTransferEncoding = headers.contains(name: "transfer-encoding")
        for listed in headers[canonicalForm: "connection"] {
            let name = String(listed)
            guard !Self.protected.contains(where: { Self.equalsIgnoringCase(name, $0) }) else { continue }
            headers.remove(name: name)
        }
        for name in Self.hopByHop where headers.contains(name: name) {
            headers.remove(name: name)
        }
        return hadTransferEncoding
    }

    /// The head to send upstream: hop-by-hop fields out, the body framing kept, `X-Forwarded-For` (appended),
    /// `X-Forwarded-Proto` and `Via` in; always HTTP/1.1 keep-alive.
    static func upstreamRequest(from head: HTTPRequestHead, uri: String, clientIP: String) -> HTTPRequestHead {
        var headers = head.headers
        // One copy with room for the fields added below, instead of a copy and a regrowth.
        headers.reserveCapacity(headers.count + 3)
        if Self.stripHopByHop(&headers) {
            // The decoder removed the chunked framing; the encoder frames the body again from this field.
            headers.add(name: "transfer-encoding", value: "chunked")
        }
        if headers.contains(name: "x-forwarded-for") {
            let previous = headers[canonicalForm: "x-forwarded-for"].joined(separator: ", ")
            headers.replaceOrAdd(name: "X-Forwarded-For", value: previous.isEmpty ? clientIP : previous + ", " + clientIP)
        } else {
            headers.add(name: "X-Forwarded-For", value: clientIP)
        }
        headers.replaceOrAdd(name: "X-Forwarded-Proto", value: "http")
        headers.add(name: "Via", value: Self.via)
        return HTTPRequestHead(version: .http1_1, method: head.method, uri: uri, headers: headers)
    }

    /// The head to send the client: hop-by-hop fields out, `Via` in, the client's HTTP version, and
    /// `Connection: close` when the proxy closes the connection after this response.
    static func clientResponse(from head: HTTPResponseHead, version: HTTPVersion, close: Bool) -> HTTPResponseHead {
        var headers = head.headers
        headers.reserveCapacity(headers.count + 2)
        Self.stripHopByHop(&headers)
        headers.add(name: "Via", value: Self.via)
        if close {
            headers.add(name: "Connection", value: "close")
        } else if version == .http1_0 {
            headers.add(name: "Connection", value: "keep-alive")
        }
        return HTTPResponseHead(version: version, status: head.status, headers: headers)
    }

    /// Whether a request asks to switch protocols (`Upgrade` named in `Connection`).
    static func isUpgrade(_ head: HTTPRequestHead) -> Bool {
        guard head.headers.contains(name: "upgrade") else { return false }
        return head.headers[canonicalForm: "connection"].contains { Self.equalsIgnoringCase(String($0), "upgrade") }
    }

    /// The size of a request head on the wire, near enough: request line plus `name: value\r\n` per field.
    static func headSize(_ head: HTTPRequestHead) -> Int {
        var size = head.uri.utf8.count + 16
        for (name, value) in head.headers { size += name.utf8.count + value.utf8.count + 4 }
        return size
    }

    // MARK: - Hash keys

    /// The consistent-hash key of a request, or `nil` when the source is absent from it.
    static func hashKey(_ source: HashKeySource, head: HTTPRequestHead, clientIP: String) -> UInt64? {
        switch source {
        case .none:
            return nil
        case .header(let name):
            guard head.headers.contains(name: name) else { return nil }
            let values = head.headers[name]
            return StableHash.hash(values.count == 1 ? values[0] : values.joined(separator: ","))
        case .cookie(let name):
            guard let value = Self.cookie(named: name, in: head.headers) else { return nil }
            return StableHash.hash(bytes: value.utf8)
        case .path:
            let uri = Substring(head.uri)
            return StableHash.hash(bytes: uri.utf8.prefix { $0 != UInt8(ascii: "?") })
        case .clientIP:
            return StableHash.hash(clientIP)
        }
    }

    /// The value of the first cookie called `name` in the `Cookie` fields.
    static func cookie(named name: String, in headers: HTTPHeaders) -> Substring? {
        for field in headers["cookie"] {
            for pair in field.split(separator: ";") {
                let trimmed = pair.drop { $0 == " " }
                guard let equals = trimmed.firstIndex(of: "=") else { continue }
                if trimmed[..<equals] == name { return trimmed[trimmed.index(after: equals)...] }
            }
        }
        return nil
    }

    // MARK: - Helpers

    /// Whether `name` is one of `hopByHop`, ignoring ASCII case, with a length check first.
    static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2, 7, 10, 16, 17, 18, 19:
            return Self.hopByHop.contains { Self.equalsIgnoringCase(name, $0) }
        default:
            return false
        }
    }

    /// Compares `name` with a lowercase ASCII `lowercase`, ignoring the case of `name`.
    static func equalsIgnoringCase(_ name: String, _ lowercase: String) -> Bool {
        guard name.utf8.count == lowercase.utf8.count else { return false }
        for (a, b) in zip(name.utf8, lowercase.utf8) {
            let folded = (a >= UInt8(ascii: "A") && a <= UInt8(ascii: "Z")) ? a | 0x20 : a
            if folded != b { return false }
        }
        return true
    }
}
