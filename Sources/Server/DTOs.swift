import ConfigCenter
import Foundation

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
        self.author = version.author
        self.client = version.client
        self.deleted = version.tombstone
        self.conflict = version.conflict ? true : nil
        self.size = version.value.count
        self.updated_at = Timestamps.iso8601(millis: version.stamp.wall)
    }
}

enum Timestamps {
    static func iso8601(millis: Int64) -> String {
        let date = Date(timeIntervalSince1970: Double(millis) / 1000)
        return date.formatted(.iso8601.year().month().day().timeZone(separator: .omitted).time(includingFractionalSeconds: true).timeSeparator(.colon).dateSeparator(.dash))
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
