import Foundation
import Testing

@testable import ConfigCenter

/// The in-memory log of a node's own writes answers `localWrites` exactly as SQLite does, or not at all.
@Suite struct OwnWritesTests {
    /// Every cursor and several limits: the answer from memory equals the one read from history.
    private func expectSameAsHistory(_ store: ConfigStore, from: Int64 = 0, _ comment: Comment? = nil) async throws -> Int {
        let top = try await store.revision()
        var fromMemory = 0
        for cursor in from...top {
            for limit in [1, 3, 512] {
                let history = try await store.localWritesFromHistory(after: cursor, limit: limit)
                guard let memory = store.ownWrites.read(after: cursor, limit: limit) else { continue }
                fromMemory += 1
                // What a push sends (the `conflict` flag a later merge sets on history is not sent, nor kept in memory).
                #expect(
                    ReplicationMessage.versions(memory.versions).encoded() == ReplicationMessage.versions(history.versions).encoded(),
                    "cursor \(cursor), limit \(limit) \(comment?.description ?? "")")
                #expect(memory.versions.map(\.revision) == history.versions.map(\.revision))
                #expect(memory.scannedTo == history.scannedTo, "cursor \(cursor), limit \(limit)")
            }
        }
        return fromMemory
    }

    @Test func test_localWrites_fromMemory_equalHistory_withPeersWritesInBetween() async throws {
        let wall = TestWall()
        let a = try makeStore(node: "a", wall: wall)
        let b = try makeStore(node: "b", wall: wall)
        for index in 0..<40 {
            wall.advance(1)
            switch index % 5 {
            case 0: try await a.put("k\(index % 7)", value: Data("\(index)"), contentType: "text", origin: .init(author: "al"))
            case 1: try await a.delete("k\((index + 1) % 7)")
            case 2: _ = try await a.merge([try await b.put("k\(index % 7)", value: Data("b\(index)"))])
            case 3: _ = try await a.transaction([.put(key: "t/\(index)", value: Data("x"), contentType: nil, cas: nil), .delete(key: "k3", cas: nil)])
            default: _ = try await a.deletePrefix("t/")
            }
        }
        let answered = try await self.expectSameAsHistory(a)
        #expect(answered > 100, "the log covers everything written since the store opened")
    }

    @Test func test_log_coversOnlyWhatItHolds() async throws {
        // A store reopened on existing history starts empty: older cursors read SQLite.
        let store = try makeStore(node: "a")
        try await store.put("a", value: Data("1"))
        #expect(store.ownWrites.read(after: 0, limit: 10)?.versions.count == 1)

        // Past its capacity the oldest entries go, and with them the cover of their cursors.
        let log = OwnWrites(node: "a", revision: 0, maxVersions: 2)
        let versions = (1...4).map { revision in
            KVVersion(
                key: "k", value: Data(), contentType: nil, version: Int(revision), revision: revision,
                stamp: Stamp(wall: revision, counter: 0, node: "a"), parent: nil, author: nil, client: nil, tombstone: false,
                appliedAt: revision)
        }
        log.record(Array(versions[0..<3]), upTo: 3, invalidate: false)
        #expect(log.read(after: 0, limit: 10) == nil, "revision 1 was dropped")
        #expect(log.read(after: 1, limit: 10)?.versions.map(\.revision) == [2, 3])
        log.record([versions[3]], upTo: 5, invalidate: false)
        #expect(log.read(after: 3, limit: 10)?.versions.map(\.revision) == [4])
        #expect(log.read(after: 3, limit: 10)?.scannedTo == 5, "a later revision that was not this node's is scanned past")
        #expect(log.read(after: 6, limit: 10) == nil, "not committed yet as far as the log knows")
        log.record([], upTo: 6, invalidate: true)
        #expect(log.read(after: 5, limit: 10) == nil && log.read(after: 6, limit: 10)?.versions.isEmpty == true)
    }

    @Test func test_compactionAndForget_emptyTheLog_thenHistoryAnswers() async throws {
        let wall = TestWall()
        let store = try makeStore(node: "a", wall: wall) { $0.retention.keepVersions = 1 }
        for index in 0..<5 {
            wall.advance(1)
            try await store.put("k", value: Data("\(index)"))
        }
        #expect(store.ownWrites.read(after: 0, limit: 10)?.versions.count == 5)
        let report = try await store.compact()
        #expect(report.versionsRemoved == 4)
        #expect(store.ownWrites.read(after: 0, limit: 10) == nil, "compacted versions are not served from memory")
        #expect(try await store.localWrites(after: 0, limit: 10).versions.map(\.version) == [5])
        wall.advance(1)
        try await store.put("k", value: Data("new"))
        #expect(try await self.expectSameAsHistory(store, from: 5) > 0)
    }
}
