import ConfigCenter
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOFoundationCompat
import Registry

/// `/v1/kv/<key>`: get, list, history, diff, blocking read, put, delete and rollback.
struct KVController: Sendable {
    let store: ConfigStore
    let settings: ServerSettings
    /// Replication (nil on an agent without gossip): write concerns and `?holders`.
    var replicator: Replicator? = nil

    func addRoutes(to router: Router<AgentRequestContext>) {
        for path: RouterPath in ["/v1/kv", "/v1/kv/**"] {
            router.get(path, use: self.get)
            router.put(path, use: self.put)
            router.delete(path, use: self.delete)
            router.post(path, use: self.post)
            router.patch(path) { _, _ -> Response in
                throw APIError(
                    .methodNotAllowed, code: "method_not_allowed", "PATCH is not supported on /v1/kv; use PUT to write a key",
                    headers: [.allow: "GET, PUT, DELETE, POST"])
            }
        }
    }

    // MARK: - GET

    @Sendable func get(request: Request, context: AgentRequestContext) async throws -> Response {
        let flags = try QueryFlags(
            request, allowed: ["raw", "recurse", "keys", "version", "history", "diff", "index", "wait", "limit", "before", "holders"],
            endpoint: "GET /v1/kv")
        try flags.exclusive(["recurse", "history", "diff", "version", "index"])
        try flags.exclusive(["keys", "history", "diff", "version", "index"])
        for other in ["recurse", "keys", "history", "diff", "version", "index", "raw"] { try flags.exclusive(["holders", other]) }
        let key = try Self.key(request)
        if flags.has("holders") { return try await self.holders(key) }

        if flags.has("recurse") || flags.has("keys") || key.isEmpty || key.hasSuffix("/") {
            if flags.has("raw") { throw APIError.badRequest("'raw' returns one value; it cannot be combined with a listing") }
            let limit = try flags.int("limit", min: 1) ?? Int.max
            let versions = try await self.store.list(prefix: key, limit: limit)
            if flags.has("keys") { return try JSONBody.response(versions.map(\.key)) }
            return try JSONBody.response(versions.map { VersionDTO($0, includeValue: true) })
        }
        if flags.has("history") {
            let limit = try flags.int("limit", min: 1, max: 1000) ?? 20
            let before = try flags.int("before", min: 1)
            let versions = try await self.store.history(key, limit: limit, beforeVersion: before)
            if versions.isEmpty && before == nil {
                throw APIError(.notFound, code: "not_found", "key '\(key)' has no history")
            }
            return try JSONBody.response(versions.map { VersionDTO($0, includeValue: true) })
        }
        if let diff = flags["diff"] {
            let parts = diff.split(separator: ",")
            guard parts.count == 2, let from = Int(parts[0]), let to = Int(parts[1]), from > 0, to > 0 else {
                throw APIError.badRequest("diff takes two versions as 'A,B' (e.g. ?diff=1,3), not '\(diff)'")
            }
            let text = try await self.store.diff(key, from: from, to: to)
            return JSONBody.text(text, contentType: "text/x-diff; charset=utf-8")
        }
        if let version = try flags.int("version", min: 1) {
            return try self.answer(try await self.store.get(key, version: version), raw: flags.has("raw"), key: key)
        }
        if let index = flags["index"] {
            return try await self.blockingGet(key: key, index: index, flags: flags)
        }
        if flags.has("wait") { throw APIError.badRequest("'wait' needs 'index' (the stamp you hold, from X-Gossamer-Stamp)") }
        return try self.answer(try await self.store.current(key), raw: flags.has("raw"), key: key)
    }

    /// Answers with the version (or 404 for a missing or deleted key), with its stamp in `X-Gossamer-Stamp`.
    private func answer(_ version: KVVersion?, raw: Bool, key: String) throws -> Response {
        guard let version, !version.tombstone else {
            var headers: HTTPFields = [:]
            headers[.gossamerStamp] = version?.stamp.description ?? "0"
            var error = APIError(.notFound, code: "not_found", "key '\(key)' does not exist")
            if let version { error.message = "key '\(key)' was deleted at version \(version.version)" }
            error.headers = headers
            throw error
        }
        let (found, body) = Self.found(version, raw: raw)
        return Response(status: .ok, headers: found, body: .init(byteBuffer: body))
    }

    /// The 200 answer for a live version — its headers (stamp, version, content type) and body (the raw value, or the
    /// version's JSON) — for the router and the event-loop fast path alike.
    static func found(_ version: KVVersion, raw: Bool) -> (HTTPFields, ByteBuffer) {
        var headers: HTTPFields = [:]
        headers.reserveCapacity(8)
        headers[.gossamerStamp] = version.stamp.description
        headers[.gossamerVersion] = String(version.version)
        if raw {
            headers[.contentType] = Self.mediaType(for: version.contentType)
            return (headers, ByteBuffer(data: version.value))
        }
        var text = ""
        VersionDTO(version, includeValue: true).appendJSON(to: &text)
        text += "\n"
        headers[.contentType] = "application/json"
        return (headers, ByteBuffer(string: text))
    }

    /// `?index=<stamp>&wait=<duration>`: returns as soon as the key's stamp differs from `index`, or after `wait`.
    private func blockingGet(key: String, index: String, flags: QueryFlags) async throws -> Response {
        guard index == "0" || Stamp(index) != nil else {
            throw APIError.badRequest("index must be a stamp such as 1763750000123.0@node-a (from X-Gossamer-Stamp) or 0, not '\(index)'")
        }
        let wait = try flags.wait(self.settings)
        try ConfigKey.validate(key)
        let subscription = self.store.feed.subscribe(.key(key))
        defer { subscription.cancel() }
        var current = try await self.store.current(key)
        if (current?.stamp.description ?? "0") == index {
            let wait = wait
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    var events = subscription.events.makeAsyncIterator()
                    _ = await events.next()
                }
                group.addTask { try? await Task.sleep(for: wait) }
                await group.next()
                group.cancelAll()
            }
            current = try await self.store.current(key)
        }
        return try self.answer(current, raw: flags.has("raw"), key: key)
    }

    /// `?holders`: which version of the key each live agent holds (stale-check across the cluster).
    private func holders(_ key: String) async throws -> Response {
        try ConfigKey.validate(key)
        struct Row: Encodable {
            var node: String
            var version: Int?
            var stamp: String?
            var deleted: Bool?
            var error: String?
        }
        struct Answer: Encodable {
            var key: String
            var newest: String?
            var agree: Bool
            var nodes: [Row]
        }
        let rows: [(node: String, version: KVVersion?, error: String?)]
        if let replicator = self.replicator {
            rows = await replicator.versionsAcrossCluster(key)
        } else {
            rows = [(self.store.settings.nodeName, try await self.store.current(key), nil)]
        }
        let newest = rows.compactMap { $0.version?.stamp }.max()
        let answer = Answer(
            key: key, newest: newest?.description,
            agree: rows.allSatisfy { $0.error == nil && $0.version?.stamp == newest },
            nodes: rows.map { Row(node: $0.node, version: $0.version?.version, stamp: $0.version?.stamp.description, deleted: $0.version?.tombstone, error: $0.error) })
        return try JSONBody.response(answer)
    }

    // MARK: - PUT

    @Sendable func put(request: Request, context: AgentRequestContext) async throws -> Response {
        let flags = try QueryFlags(request, allowed: ["cas", "type"] + WriteConcern.parameters, endpoint: "PUT /v1/kv")
        let concern = try WriteConcern.parse(flags)
        let key = try Self.key(request)
        let limit = self.store.settings.maxValueBytes
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, code: "value_too_large", "the value is larger than the limit of \(limit) bytes")
        }
        try Self.refuseReserved(key)
        let contentType = flags["type"] ?? Self.contentType(fromMediaType: request.headers[.contentType])
        let version = try await self.store.put(
            key, value: Data(buffer: body), contentType: contentType, cas: try flags.int("cas"), origin: Self.origin(request, context))
        try await concern?.enforce(revision: version.revision, replicator: self.replicator)
        let (headers, answer) = Self.written(version)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: answer))
    }

    /// The answer to a `PUT`: the new version's metadata, without its value.
    static func written(_ version: KVVersion) -> (HTTPFields, ByteBuffer) {
        var text = ""
        VersionDTO(version, includeValue: false).appendJSON(to: &text)
        text += "\n"
        return ([.gossamerStamp: version.stamp.description, .contentType: "application/json"], ByteBuffer(string: text))
    }

    // MARK: - DELETE

    @Sendable func delete(request: Request, context: AgentRequestContext) async throws -> Response {
        let flags = try QueryFlags(request, allowed: ["cas", "recurse"] + WriteConcern.parameters, endpoint: "DELETE /v1/kv")
        let concern = try WriteConcern.parse(flags)
        try flags.exclusive(["cas", "recurse"])
        let key = try Self.key(request)
        try Self.refuseReserved(key, prefix: flags.has("recurse"))
        let origin = Self.origin(request, context)
        let versions: [KVVersion]
        if flags.has("recurse") {
            guard !key.isEmpty else {
                throw APIError.badRequest("refusing to delete every key: give a prefix, e.g. DELETE /v1/kv/staging/?recurse")
            }
            versions = try await self.store.deletePrefix(key, origin: origin)
        } else {
            versions = try await self.store.delete(key, cas: try flags.int("cas"), origin: origin).map { [$0] } ?? []
        }
        if let last = versions.map(\.revision).max() { try await concern?.enforce(revision: last, replicator: self.replicator) }
        return try JSONBody.response(DeleteDTO(deleted: versions.count, versions: versions.map { VersionDTO($0, includeValue: false) }))
    }

    // MARK: - POST (rollback)

    @Sendable func post(request: Request, context: AgentRequestContext) async throws -> Response {
        let flags = try QueryFlags(request, allowed: ["rollback"] + WriteConcern.parameters, endpoint: "POST /v1/kv")
        let concern = try WriteConcern.parse(flags)
        let key = try Self.key(request)
        guard let target = try flags.int("rollback", min: 1) else {
            throw APIError.badRequest("POST /v1/kv/<key> needs ?rollback=<version>; to write a value use PUT")
        }
        try Self.refuseReserved(key)
        let version = try await self.store.rollback(key, to: target, origin: Self.origin(request, context))
        guard let version else {
            return try JSONBody.response(DeleteDTO(deleted: 0, versions: []))
        }
        try await concern?.enforce(revision: version.revision, replicator: self.replicator)
        return try JSONBody.response(VersionDTO(version, includeValue: false))
    }

    // MARK: - Helpers

    /// The key from the path after `/v1/kv/`, percent-decoded.
    static func key(_ request: Request, prefix: String = "/v1/kv") throws(APIError) -> String {
        var rest = request.uri.path.dropFirst(prefix.count)
        if rest.hasPrefix("/") { rest = rest.dropFirst() }
        // Most keys are plain: only a path with an escape pays for decoding.
        if !rest.utf8.contains(UInt8(ascii: "%")) { return String(rest) }
        guard let key = String(rest).removingPercentEncoding else {
            throw APIError.badRequest("the key in the path is not valid percent-encoded UTF-8", code: "bad_key")
        }
        return key
    }

    /// Refuses writes under the registry's reserved prefix (or a prefix that covers it).
    static func refuseReserved(_ key: String, prefix: Bool = false) throws(APIError) {
        let reserved = RegistryKeys.reservedPrefix
        if key.hasPrefix(reserved) || (prefix && !key.isEmpty && reserved.hasPrefix(key)) {
            throw APIError(
                .forbidden, code: "reserved_key",
                "keys under '\(reserved)' are managed by Gossamer: the service registry (/v1/services) and alerting (/v1/alerts); read them here, change them there (docs/api.md)")
        }
    }

    static func origin(_ request: Request, _ context: AgentRequestContext) -> WriteOrigin {
        WriteOrigin(author: request.headers[.gossamerAuthor].map { String($0.prefix(256)) }, client: context.clientAddress)
    }

    static func mediaType(for contentType: String?) -> String {
        switch contentType {
        case "json": "application/json"
        case "yaml": "application/yaml"
        case "text", "properties", "toml", "ini": "text/plain; charset=utf-8"
        case "xml": "application/xml"
        default: "application/octet-stream"
        }
    }

    /// A content type implied by the request's `Content-Type`, when `?type=` is not given.
    static func contentType(fromMediaType mediaType: String?) -> String? {
        // The type before any parameters, without surrounding blanks (Foundation's trimming bridges to NSString:
        // 2% of a PUT's CPU).
        guard let full = mediaType?.utf8 else { return nil }
        let isBlank = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        let head = full.prefix { $0 != UInt8(ascii: ";") }
        guard let first = head.firstIndex(where: { !isBlank($0) }), let last = head.lastIndex(where: { !isBlank($0) }) else {
            return nil
        }
        switch String(decoding: full[first...last], as: UTF8.self).lowercased() {
        case "application/json": return "json"
        case "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml": return "yaml"
        default: return nil
        }
    }
}

extension HTTPField.Name {
    static let gossamerStamp = Self("X-Gossamer-Stamp")!
    static let gossamerVersion = Self("X-Gossamer-Version")!
    static let gossamerRevision = Self("X-Gossamer-Revision")!
    static let gossamerNode = Self("X-Gossamer-Node")!
    static let gossamerAuthor = Self("X-Gossamer-Author")!
    static let lastEventID = Self("Last-Event-ID")!
    static let gossamerIndex = Self("X-Gossamer-Index")!
}
