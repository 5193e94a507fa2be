import ConfigCenter
import Foundation
import Hummingbird
import NIOCore
import NIOFoundationCompat
import Synchronization

/// `GET /v1/watch/<key-or-prefix>`: Server-Sent Events of every change, resumable by cursor.
///
/// The cursor is `<node>:<revision>` (each event's `id`). With `since=` (or `Last-Event-ID`) naming this node and
/// a revision still in history, the stream first replays every change after it; otherwise it first sends a
/// `snapshot` event with the current values. Then it streams live, with `heartbeat` events while idle.
struct WatchController: Sendable {
    let store: ConfigStore
    let settings: ServerSettings

    func addRoutes(to router: Router<AgentRequestContext>) {
        router.get("/v1/watch", use: self.watch)
        router.get("/v1/watch/**", use: self.watch)
    }

    /// Each change is encoded once, however many watchers send it.
    let encoded = EncodedEvents()

    @Sendable func watch(request: Request, context: AgentRequestContext) async throws -> Response {
        let flags = try QueryFlags(request, allowed: ["since", "recurse"], endpoint: "GET /v1/watch")
        let key = try KVController.key(request, prefix: "/v1/watch")
        let filter: ChangeFeed.Filter
        if flags.has("recurse") || key.isEmpty || key.hasSuffix("/") {
            try ConfigKey.validatePrefix(key)
            filter = .prefix(key)
        } else {
            try ConfigKey.validate(key)
            filter = .key(key)
        }
        let cursorText = flags["since"] ?? request.headers[.lastEventID]
        let cursor = try cursorText.map { text throws(APIError) -> (node: String, revision: Int64) in
            guard let colon = text.lastIndex(of: ":"), let revision = Int64(text[text.index(after: colon)...]), revision >= 0 else {
                throw APIError.badRequest("since must be a cursor '<node>:<revision>' (an event id), not '\(text)'")
            }
            return (String(text[..<colon]), revision)
        }

        // Subscribe before reading history, so nothing committed in between is missed; live events already
        // replayed are skipped by revision.
        let subscription = self.store.feed.subscribe(filter)
        let store = self.store
        let node = self.settings.nodeName
        let heartbeat = self.settings.watchHeartbeat
        let encoded = self.encoded
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                defer { subscription.cancel() }
                var last: Int64
                let current = try await store.revision()
                let floor = try await store.compactedRevision()
                if let cursor, cursor.node == node, cursor.revision >= floor, cursor.revision <= current {
                    last = cursor.revision
                    while true {
                        let page = try await store.changes(after: last, filter: filter, limit: 500)
                        for change in page {
                            try await writer.write(encoded.event(change, node: node))
                            last = change.revision
                        }
                        if page.count < 500 { break }
                    }
                    last = max(last, current)
                } else {
                    let snapshot = try await store.snapshot(filter)
                    try await writer.write(Self.snapshotEvent(snapshot.values, revision: snapshot.revision, node: node))
                    last = snapshot.revision
                }

                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        while true {
                            try await Task.sleep(for: heartbeat)
                            subscription.heartbeat()
                        }
                    }
                    defer { group.cancelAll() }
                    // Ends when the subscriber is cut off for lagging (or the agent stops): the client
                    // resumes from its last event id.
                    for await event in subscription.events {
                        switch event {
                        case .change(let change):
                            guard change.revision > last else { continue }
                            try await writer.write(encoded.event(change, node: node))
                            last = change.revision
                        case .heartbeat:
                            try await writer.write(ByteBuffer(string: "event: heartbeat\ndata: {\"revision\":\(store.feed.revision)}\n\n"))
                        }
                    }
                }
                try await writer.finish(nil)
            })
    }

    static func event(_ change: Change, node: String) throws -> ByteBuffer {
        var text = "id: \(node):\(change.revision)\nevent: \(change.tombstone ? "delete" : "put")\ndata: "
        VersionDTO(change, includeValue: true).appendJSON(to: &text)
        text += "\n\n"
        return ByteBuffer(string: text)
    }

    struct SnapshotDTO: Encodable {
        var revision: Int64
        var values: [VersionDTO]
    }

    static func snapshotEvent(_ values: [KVVersion], revision: Int64, node: String) throws -> ByteBuffer {
        let json = try JSONBody.encoder().encode(SnapshotDTO(revision: revision, values: values.map { VersionDTO($0, includeValue: true) }))
        var buffer = ByteBuffer(string: "id: \(node):\(revision)\nevent: snapshot\ndata: ")
        buffer.writeBytes(json)
        buffer.writeString("\n\n")
        return buffer
    }
}

/// The SSE bytes of recent changes, shared by every watcher of the same change.
final class EncodedEvents: Sendable {
    private let recent = Mutex<[Int64: ByteBuffer]>([:])
    private let capacity = 1024

    func event(_ change: Change, node: String) throws -> ByteBuffer {
        if let cached = self.recent.withLock({ $0[change.revision] }) { return cached }
        let buffer = try WatchController.event(change, node: node)
        self.recent.withLock { recent in
            if recent.count >= self.capacity { recent.removeAll(keepingCapacity: true) }
            recent[change.revision] = buffer
        }
        return buffer
    }
}
