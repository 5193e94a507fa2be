import ConfigCenter
import Foundation
import Hummingbird
import NIOCore
import NIOFoundationCompat

/// `POST /v1/txn`: up to 64 operations applied all-or-nothing.
struct TxnController: Sendable {
    let store: ConfigStore
    var replicator: Replicator? = nil

    func addRoutes(to router: Router<AgentRequestContext>) {
        router.post("/v1/txn", use: self.txn)
    }

    @Sendable func txn(request: Request, context: AgentRequestContext) async throws -> Response {
        let flags = try QueryFlags(request, allowed: WriteConcern.parameters, endpoint: "POST /v1/txn")
        let concern = try WriteConcern.parse(flags)
        if let mediaType = request.headers[.contentType], !mediaType.lowercased().hasPrefix("application/json") {
            throw APIError(.unsupportedMediaType, code: "unsupported_media_type", "POST /v1/txn takes application/json, not '\(mediaType)'")
        }
        let limit = self.store.settings.maxTxnOps * (self.store.settings.maxValueBytes * 4 / 3 + 1024)
        let body = try await request.body.collect(upTo: limit)
        let dto: TxnRequestDTO
        do {
            dto = try JSONDecoder().decode(TxnRequestDTO.self, from: Data(buffer: body))
        } catch let error as DecodingError {
            throw APIError.badRequest("transaction body is not valid: \(DecodingErrorText.describe(error))", code: "bad_json")
        }
        let ops = try dto.ops.enumerated().map { index, op throws(APIError) in try Self.op(op, index: index) }
        let receipt = try await self.store.transaction(ops, origin: KVController.origin(request, context))
        try await concern?.enforce(revision: receipt.revision, replicator: self.replicator)
        let results = zip(dto.ops, receipt.results).map { op, result -> TxnResponseDTO.Result in
            switch result {
            case .put(let version):
                return .init(op: op.op, key: op.key, version: VersionDTO(version, includeValue: false))
            case .deleted(let versions):
                return .init(op: op.op, key: op.key, deleted: versions.count)
            case .checked:
                return .init(op: op.op, key: op.key)
            case .got(let version):
                return .init(op: op.op, key: op.key, version: version.map { VersionDTO($0, includeValue: true) })
            }
        }
        return try JSONBody.response(TxnResponseDTO(results: results, revision: receipt.revision))
    }

    static func op(_ op: TxnRequestDTO.Op, index: Int) throws(APIError) -> TxnOp {
        switch op.op {
        case "set":
            let value: Data
            switch (op.value, op.value_base64) {
            case (let text?, nil): value = Data(text.utf8)
            case (nil, let base64?):
                guard let decoded = Data(base64Encoded: base64) else {
                    throw APIError.badRequest("ops[\(index)].value_base64 is not valid base64")
                }
                value = decoded
            default:
                throw APIError.badRequest("ops[\(index)] (set) needs exactly one of 'value' or 'value_base64'")
            }
            try KVController.refuseReserved(op.key)
            return .put(key: op.key, value: value, contentType: op.type, cas: op.cas)
        case "delete":
            try KVController.refuseReserved(op.key)
            return .delete(key: op.key, cas: op.cas)
        case "delete-tree":
            guard !op.key.isEmpty else { throw APIError.badRequest("ops[\(index)] (delete-tree) needs a non-empty prefix") }
            try KVController.refuseReserved(op.key, prefix: true)
            return .deletePrefix(prefix: op.key)
        case "check":
            guard let version = op.version else {
                throw APIError.badRequest("ops[\(index)] (check) needs 'version' (0: the key must not exist)")
            }
            return .check(key: op.key, version: version)
        case "get":
            return .get(key: op.key)
        default:
            throw APIError.badRequest("ops[\(index)].op '\(op.op)' is unknown; use set, delete, delete-tree, check or get")
        }
    }
}
