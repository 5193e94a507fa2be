import ConfigCenter
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The JSON form of one version of a key, as `GET /v1/kv/<key>` and history return it.
struct VersionDTO: Encodable, Sendable {
    var key: String
    /// The value as UTF-8 text, or base64 when `encoding` is `base64`. Absent in write receipts and history without `values`.
    var value: String?
    var encoding: String?
    var type: String?
    var version: Int
    var revision: Int64
    var stamp: String
    var parent: String?
    /// The agent that made the write (the node of its stamp).
    var origin: String
    var author: String?
    var client: String?
    var deleted: Bool
    var conflict: Bool?
    var size: Int
    var updated_at: String

    init(_ version: KVVersion, includeValue: Bool) {
        self.key = version.key
        if includeValue && !version.tombstone {
            if let text = String(data: version.value, encoding: .utf8) {
                self.value = text
                self.encoding = "utf-8"
            } else {
                self.value = version.value.base64EncodedString()
                self.encoding = "base64"
            }
        }
        self.type = version.contentType
        self.version = version.version
        self.revision = version.revision
        self.stamp = version.stamp.description
        self.parent = version.parent?.description
        self.origin = version.stamp.node
        self.author = version.author
        self.client = version.client
        self.deleted = version.tombstone
        self.conflict = version.conflict ? true : nil
        self.size = version.value.count
        self.updated_at = Timestamps.iso8601(millis: version.stamp.wall)
    }
}


/// `DELETE` answer.
struct DeleteDTO: Encodable {
    var deleted: Int
    var versions: [VersionDTO]
}

/// `POST /v1/txn` request body.
struct TxnRequestDTO: Decodable {
    struct Op: Decodable {
        /// `set`, `delete`, `delete-tree`, `check`, `get`.
        var op: String
        var key: String
        var value: String?
        var value_base64: String?
        var type: String?
        var cas: Int?
        var version: Int?
    }
    var ops: [Op]
}

/// `POST /v1/txn` answer.
struct TxnResponseDTO: Encodable {
    struct Result: Encodable {
        var op: String
        var key: String
        var version: VersionDTO?
        var deleted: Int?
    }
    var results: [Result]
    var revision: Int64
}

// MARK: - Fast JSON for versions

extension VersionDTO {
    /// The same JSON as `JSONEncoder` with sorted keys would write, built by hand: this is on every read
    /// and write answer, and the generic encoder costs more than the rest of a request.
    func appendJSON(to out: inout String) {
        out += "{"
        var first = true
        func field(_ name: String, _ raw: String) {
            if !first { out += "," }
            first = false
            out += "\""
            out += name
            out += "\":"
            out += raw
        }
        func string(_ name: String, _ value: String?) {
            guard let value else { return }
            field(name, JSONText.quoted(value))
        }
        string("author", self.author)
        string("client", self.client)
        if let conflict = self.conflict { field("conflict", conflict ? "true" : "false") }
        field("deleted", self.deleted ? "true" : "false")
        string("encoding", self.encoding)
        string("key", self.key)
        string("origin", self.origin)
        string("parent", self.parent)
        field("revision", String(self.revision))
        field("size", String(self.size))
        string("stamp", self.stamp)
        string("type", self.type)
        string("updated_at", self.updated_at)
        string("value", self.value)
        field("version", String(self.version))
        out += "}"
    }
}

extension JSONBody {
    static func response(_ version: VersionDTO, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
        var text = ""
        version.appendJSON(to: &text)
        text += "\n"
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func response(_ versions: [VersionDTO], status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
        var text = "["
        for (index, version) in versions.enumerated() {
            if index > 0 { text += "," }
            version.appendJSON(to: &text)
        }
        text += "]\n"
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
