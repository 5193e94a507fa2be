/// Where a Redis server is and how to log in to it.
///
/// Written as a URL: `redis://[[user]:password@]host[:port][/db]`, for example
/// `redis://:s3cret@cache.internal:6380/2`. IPv6 hosts go in brackets (`redis://[::1]:6379`), and the
/// user name and password may be percent-encoded.
public struct RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// The host name or IP address.
    public var host: String
    /// The TCP port.
    public var port: Int
    /// The ACL user to log in as (Redis 6 or later); `nil` logs in as the default user.
    public var username: String?
    /// The password sent with `AUTH`; `nil` sends no `AUTH`.
    public var password: String?
    /// The logical database selected after connecting.
    public var database: Int

    /// Creates an endpoint from its parts.
    public init(
        host: String = "127.0.0.1",
        port: Int = 6379,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    /// Parses `redis://[[user]:password@]host[:port][/db]`.
    ///
    /// - Throws: `RedisError` of kind `.invalidURL` whose message names the problem.
    public init(url: String) throws(RedisError) {
        let scheme = "redis://"
        guard url.hasPrefix(scheme) else {
            if url.hasPrefix("rediss://") {
                throw Self.invalid(url, "TLS (rediss://) is not supported")
            }
            throw Self.invalid(url, "it must start with \(scheme)")
        }
        let rest = url.dropFirst(scheme.count)
        if rest.contains("?") || rest.contains("#") {
            throw Self.invalid(url, "query parameters and fragments are not supported")
        }
        let authority = rest.prefix { $0 != "/" }
        let path = rest.dropFirst(authority.count)

        self.init()
        var hostAndPort = authority
        if let at = authority.lastIndex(of: "@") {
            try parseCredentials(authority[..<at], url: url)
            hostAndPort = authority[authority.index(after: at)...]
        }
        try parseHostAndPort(hostAndPort, url: url)
        try parseDatabase(path, url: url)
    }

    /// The URL of the endpoint with the password replaced by `***`, safe to log.
    public var description: String {
        var text = "redis://"
        if password != nil {
            text += "\(username ?? ""):***@"
        } else if let username {
            text += "\(username)@"
        }
        return text + "\(Self.bracketed(host)):\(port)/\(database)"
    }

    /// `host:port`, as used in error messages.
    var address: String { "\(Self.bracketed(host)):\(port)" }

    private static func bracketed(_ host: String) -> String {
        host.contains(":") ? "[\(host)]" : host
    }

    private static func invalid(_ url: String, _ problem: String) -> RedisError {
        RedisError(.invalidURL, "invalid redis URL '\(RedisEndpoint.masked(url))': \(problem)")
    }

    /// The URL with anything between `://` and the last `@` replaced, so errors never echo a password.
    private static func masked(_ url: String) -> String {
        guard let schemeEnd = url.firstRange(of: "://"), let at = url.lastIndex(of: "@"), at > schemeEnd.upperBound
        else { return url }
        return url[..<schemeEnd.upperBound] + "***" + url[at...]
    }

    private mutating func parseCredentials(_ userInfo: Substring, url: String) throws(RedisError) {
        guard let colon = userInfo.firstIndex(of: ":") else {
            throw Self.invalid(url, "credentials must be written as user:password@ or :password@")
        }
        let user = try Self.percentDecoded(userInfo[..<colon], url: url)
        let password = try Self.percentDecoded(userInfo[userInfo.index(after: colon)...], url: url)
        guard !password.isEmpty else {
            throw Self.invalid(url, "the password after ':' is empty")
        }
        self.username = user.isEmpty ? nil : user
        self.password = password
    }

    private mutating func parseHostAndPort(_ text: Substring, url: String) throws(RedisError) {
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw Self.invalid(url, "missing ']' after the IPv6 address")
            }
            host = String(text[text.index(after: text.startIndex)..<close])
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else {
                    throw Self.invalid(url, "unexpected '\(after)' after the IPv6 address")
                }
                portText = after.dropFirst()
            }
        } else {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2 else {
                throw Self.invalid(url, "IPv6 addresses must be written in brackets, like [::1]")
            }
            host = String(parts[0])
            portText = parts.count == 2 ? parts[1] : nil
        }
        guard !host.isEmpty else {
            throw Self.invalid(url, "the host is missing")
        }
        if let portText {
            guard let port = Int(portText), (1...65_535).contains(port) else {
                throw Self.invalid(url, "the port '\(portText)' is not a number between 1 and 65535")
            }
            self.port = port
        }
    }

    private mutating func parseDatabase(_ path: Substring, url: String) throws(RedisError) {
        let text = path.dropFirst()
        guard !text.isEmpty else { return }
        guard let database = Int(text), database >= 0 else {
            throw Self.invalid(url, "the database '\(text)' is not a non-negative number")
        }
        self.database = database
    }

    private static func percentDecoded(_ text: Substring, url: String) throws(RedisError) -> String {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                throw invalid(url, "bad percent-encoding in the credentials")
            }
            bytes.append(high << 4 | low)
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw invalid(url, "the credentials are not valid UTF-8")
        }
        return decoded
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
