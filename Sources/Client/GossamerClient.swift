import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// A small client of the agent's HTTP API, used by the CLI (and by tests that drive a real agent).
public struct GossamerClient: Sendable {
    /// Base address, e.g. `http://127.0.0.1:7700`.
    public let base: String
    /// Time limit of one request (blocking reads and watches use their own).
    public var timeout: TimeAmount = .seconds(30)

    /// The HTTP client every request uses: a refused or unreachable agent fails at once (connect attempts are
    /// not retried until the request's deadline, which for a watch is a year away).
    static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration(timeout: .init(connect: .seconds(3)))
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    public init(base: String) {
        var base = base
        while base.hasSuffix("/") { base.removeLast() }
        if !base.contains("://") { base = "http://" + base }
        self.base = base
    }

    /// A response with its body fully read.
    public struct Reply: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        public var body: Data

        public func header(_ name: String) -> String? {
            self.headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
        }

        /// The `error.message` of an API error body, or the body as text.
        public var errorMessage: String {
            if let object = try? JSONSerialization.jsonObject(with: self.body) as? [String: Any],
                let error = object["error"] as? [String: Any], let message = error["message"] as? String
            {
                return message
            }
            return String(decoding: self.body, as: UTF8.self)
        }
    }

    /// The HTTP methods the API uses.
    public enum Method: String, Sendable {
        case GET, PUT, DELETE, POST, PATCH
    }

    /// Sends one request and reads the whole answer.
    public func send(
        _ method: Method, _ path: String, query: [(String, String?)] = [], body: Data? = nil,
        headers: [(String, String)] = [], timeout: TimeAmount? = nil
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: self.url(path, query: query))
        request.method = HTTPMethod(rawValue: method.rawValue)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(data: body)) }
        do {
            let response = try await Self.http.execute(request, timeout: timeout ?? self.timeout)
            let bytes = try await response.body.collect(upTo: 64 * 1024 * 1024)
            return Reply(status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) }, body: Data(buffer: bytes))
        } catch let error as HTTPClientError where error == .connectTimeout || error == .deadlineExceeded {
            throw ClientError("the agent at \(self.base) did not answer in time")
        } catch let error as ClientError {
            throw error
        } catch {
            throw ClientError("cannot reach the agent at \(self.base) (\(error)); is `gossamer agent` running? Set --addr or GOSSAMER_ADDR")
        }
    }

    /// Downloads a snapshot of the agent's store (`GET /v1/snapshot`): the file's bytes, not yet verified
    /// (`Snapshot.read` in ConfigCenter checks them). Allows up to 10 minutes and 16 GiB.
    public func snapshot() async throws -> Data {
        let request = HTTPClientRequest(url: self.url("/v1/snapshot", query: []))
        let response: HTTPClientResponse
        do {
            response = try await Self.http.execute(request, timeout: .minutes(10))
        } catch let error as HTTPClientError where error == .connectTimeout || error == .deadlineExceeded {
            throw ClientError("the agent at \(self.base) did not answer in time")
        } catch {
            throw ClientError("cannot reach the agent at \(self.base) (\(error)); is `gossamer agent` running? Set --addr or GOSSAMER_ADDR")
        }
        guard response.status == .ok else {
            let bytes = try await response.body.collect(upTo: 1024 * 1024)
            let reply = Reply(status: Int(response.status.code), headers: [], body: Data(buffer: bytes))
            throw ClientError("\(reply.errorMessage) (HTTP \(reply.status))")
        }
        do {
            return Data(buffer: try await response.body.collect(upTo: 16 << 30))
        } catch {
            throw ClientError("the snapshot download from \(self.base) broke off: \(error)")
        }
    }

    /// Opens a streaming GET (Server-Sent Events) and hands each event to `onEvent` until the stream ends
    /// or `onEvent` returns false.
    public func stream(
        _ path: String, query: [(String, String?)] = [], headers: [(String, String)] = [],
        onEvent: (ServerSentEvent) async throws -> Bool
    ) async throws {
        var request = HTTPClientRequest(url: self.url(path, query: query))
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response: HTTPClientResponse
        do {
            response = try await Self.http.execute(request, timeout: .hours(24 * 365))
        } catch {
            throw ClientError("cannot reach the agent at \(self.base) (\(error)); is `gossamer agent` running? Set --addr or GOSSAMER_ADDR")
        }
        guard response.status == .ok else {
            let bytes = try await response.body.collect(upTo: 1024 * 1024)
            let reply = Reply(status: Int(response.status.code), headers: [], body: Data(buffer: bytes))
            throw ClientError("HTTP \(reply.status): \(reply.errorMessage)")
        }
        var parser = ServerSentEvent.Parser()
        for try await buffer in response.body {
            for event in parser.feed(Array(buffer.readableBytesView)) {
                guard try await onEvent(event) else { return }
            }
        }
    }

    func url(_ path: String, query: [(String, String?)]) -> String {
        var url = self.base + path
        if !query.isEmpty {
            url += "?" + query.map { name, value in value.map { "\(name)=\(Self.escape($0))" } ?? name }.joined(separator: "&")
        }
        return url
    }

    /// Percent-encodes a path or query component (keeps `/` in paths).
    public static func escape(_ text: String, keepSlash: Bool = false) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~" + (keepSlash ? "/" : ""))
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

/// An error of the client: the message says what to do.
public struct ClientError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// One Server-Sent Event.
public struct ServerSentEvent: Sendable, Equatable {
    public var id: String?
    public var event: String
    public var data: String

    public init(id: String?, event: String, data: String) {
        self.id = id
        self.event = event
        self.data = data
    }

    /// Incremental parser of a `text/event-stream` body.
    public struct Parser: Sendable {
        private var pending: [UInt8] = []
        private var id: String?
        private var event = "message"
        private var data: [String] = []

        public init() {}

        public mutating func feed(_ bytes: [UInt8]) -> [ServerSentEvent] {
            self.pending.append(contentsOf: bytes)
            var events: [ServerSentEvent] = []
            while let newline = self.pending.firstIndex(of: 0x0A) {
                var line = String(decoding: self.pending[..<newline], as: UTF8.self)
                self.pending.removeSubrange(...newline)
                if line.hasSuffix("\r") { line.removeLast() }
                if line.isEmpty {
                    if !self.data.isEmpty || self.event != "message" {
                        events.append(ServerSentEvent(id: self.id, event: self.event, data: self.data.joined(separator: "\n")))
                    }
                    self.event = "message"
                    self.data = []
                    continue
                }
                let field: Substring
                var value: Substring
                if let colon = line.firstIndex(of: ":") {
                    field = line[..<colon]
                    value = line[line.index(after: colon)...]
                    if value.hasPrefix(" ") { value = value.dropFirst() }
                } else {
                    field = line[...]
                    value = ""
                }
                switch field {
                case "id": self.id = String(value)
                case "event": self.event = String(value)
                case "data": self.data.append(String(value))
                default: break
                }
            }
            return events
        }
    }
}
