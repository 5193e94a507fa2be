import ConfigCenter
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOFoundationCompat

/// `GET /v1/snapshot`: a consistent copy of the whole store in the snapshot format (`Snapshot`), for
/// `gossamer snapshot save`.
public struct SnapshotController: Sendable {
    let store: ConfigStore

    public init(store: ConfigStore) {
        self.store = store
    }

    public func addRoutes(to router: Router<AgentRequestContext>) {
        router.get("/v1/snapshot", use: self.snapshot)
    }

    /// Saves the snapshot to a temporary file, then streams it. The file is unlinked as soon as it is open,
    /// so it never outlives the request (not even when the client goes away mid-transfer).
    @Sendable func snapshot(request: Request, context: AgentRequestContext) async throws -> Response {
        _ = try QueryFlags(request, allowed: [], endpoint: "GET /v1/snapshot")
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gossamer-snapshot-\(UUID().uuidString).snap")
        let info: SnapshotInfo
        let file: FileHandle
        let size: Int
        do {
            defer { try? FileManager.default.removeItem(at: url) }
            info = try await self.store.saveSnapshot(to: url)
            file = try FileHandle(forReadingFrom: url)
            size = Int(try file.seekToEnd())
            try file.seek(toOffset: 0)
        } catch let error as ConfigStoreError {
            throw error
        } catch {
            throw APIError(.internalServerError, code: "storage_error", "reading the snapshot file failed: \(error)")
        }
        var headers: HTTPFields = [:]
        headers[.contentType] = "application/octet-stream"
        headers[.contentDisposition] = "attachment; filename=\"\(Self.fileName(info))\""
        headers[.gossamerSnapshotSHA256] = info.sha256
        let chunk = 1 << 20
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody(contentLength: size) { writer in
                defer { try? file.close() }
                while let data = try file.read(upToCount: chunk), !data.isEmpty {
                    try await writer.write(ByteBuffer(data: data))
                }
                try await writer.finish(nil)
            })
    }

    /// `gossamer-<node>-r<revision>.snap`, with anything unusual in the node name replaced.
    static func fileName(_ info: SnapshotInfo) -> String {
        let node = String(info.node.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") ? $0 : "_" })
        return "gossamer-\(node)-r\(info.revision).snap"
    }
}

extension HTTPField.Name {
    /// SHA-256 of the SQLite bytes in a snapshot (the same as its metadata line says).
    static let gossamerSnapshotSHA256 = Self("X-Gossamer-Snapshot-SHA256")!
}
