import Foundation
import Testing

@testable import ConfigCenter

/// A fresh directory under the system temporary directory, removed by `remove()`.
private struct TempDir {
    let url: URL
    init() throws {
        self.url = FileManager.default.temporaryDirectory.appendingPathComponent("gossamer-snapshot-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.url, withIntermediateDirectories: true)
    }
    func path(_ name: String) -> URL { self.url.appendingPathComponent(name) }
    func remove() { try? FileManager.default.removeItem(at: self.url) }
}

private func fileStore(_ directory: URL, node: String = "n1") throws -> ConfigStore {
    var settings = ConfigSettings()
    settings.nodeName = node
    settings.durability = .normal
    return try ConfigStore(directory: directory, settings: settings)
}

/// Every history row of the store, oldest first.
private func allHistory(_ store: ConfigStore) async throws -> [KVVersion] {
    try await store.changes(after: 0, filter: .prefix(""), limit: .max)
}

/// Expects `body` to throw a `ConfigStoreError` whose message contains `text`.
private func expectFailure(_ text: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected an error containing '\(text)', but nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as ConfigStoreError {
        #expect(error.message.contains(text), "message: \(error.message)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a ConfigStoreError, got \(error)", sourceLocation: sourceLocation)
    }
}

@Suite struct SnapshotTests {
    @Test func test_saveAndRestore_fileStore_everyKeyValueAndHistoryIdentical() async throws {
        let temp = try TempDir()
        defer { temp.remove() }
        // Given a file store with puts, updates, a delete, a prefix delete and binary values
        let original = try fileStore(temp.path("source"))
        try await original.put("prod/db.yaml", value: Data("host: db1\n".utf8), contentType: "yaml", origin: .init(author: "alice", client: "10.0.0.1"))
        try await original.put("prod/db.yaml", value: Data("host: db2\n".utf8), contentType: "yaml", origin: .init(author: "bob"))
        try await original.put("prod/feature.json", value: Data(#"{"on":true}"#.utf8), contentType: "json")
        try await original.put("prod/blob", value: Data([0, 1, 2, 255, 254]))
        try await original.put("staging/a", value: Data("1".utf8))
        try await original.put("staging/b", value: Data("2".utf8))
        try await original.delete("prod/blob")
        try await original.deletePrefix("staging/")
        try await original.put("staging/a", value: Data("again".utf8))
        for index in 0..<50 { try await original.put("bulk/\(index)", value: Data(repeating: UInt8(index), count: 1000)) }
        let revision = try await original.revision()
        let liveKeys = try await original.counts().keys

        // When saved and restored into an empty directory
        let file = temp.path("backup.snap")
        let saved = try await original.saveSnapshot(to: file)
        let restored = try Snapshot.restore(file, intoDataDir: temp.path("restored"))

        // Then the metadata describes the store, and the file has the documented layout
        #expect(restored == saved)
        #expect(saved.node == "n1" && saved.revision == revision && saved.keys == liveKeys)
        let bytes = try Data(contentsOf: file)
        let text = String(decoding: bytes.prefix(200), as: UTF8.self)
        #expect(text.hasPrefix("GOSSAMER-SNAPSHOT 1\n{\"sha256\":\"\(saved.sha256)\",\"bytes\":\(saved.bytes),\"node\":\"n1\",\"revision\":\(revision),"))
        let sqlite = try Snapshot.read(file).1
        #expect(sqlite.count == saved.bytes && sqlite.starts(with: Data("SQLite format 3\0".utf8)))
        // No temporary files are left next to the snapshot
        #expect(try FileManager.default.contentsOfDirectory(atPath: temp.url.path).sorted() == ["backup.snap", "restored", "source"])

        // And a store opened on the restored directory is identical
        let copy = try fileStore(temp.path("restored"))
        #expect(try await copy.revision() == revision)
        #expect(try await copy.list(prefix: "") == original.list(prefix: ""))
        #expect(try await allHistory(copy) == allHistory(original))
        for key in ["prod/db.yaml", "prod/feature.json", "prod/blob", "staging/a", "staging/b", "bulk/7"] {
            #expect(try await copy.current(key) == original.current(key))
            #expect(try await copy.history(key, limit: 100) == original.history(key, limit: 100))
        }
        #expect(try await copy.get("prod/db.yaml")?.author == "bob")
        #expect(try await copy.get("prod/blob") == nil)
        // And it keeps working: the next write continues the revision and the key's version.
        let next = try await copy.put("prod/db.yaml", value: Data("host: db3\n".utf8), contentType: "yaml")
        #expect(next.revision == revision + 1 && next.version == 3)
    }

    @Test func test_saveSnapshot_inMemoryStore_restores() async throws {
        let temp = try TempDir()
        defer { temp.remove() }
        let store = try ConfigStore.inMemory()
        try await store.put("a", value: Data("1".utf8))
        try await store.put("a", value: Data("2".utf8))
        let info = try await store.saveSnapshot(to: temp.path("mem.snap"))
        #expect(info.revision == 2 && info.keys == 1 && info.node == "local")
        _ = try Snapshot.restore(temp.path("mem.snap"), intoDataDir: temp.path("data"))
        let copy = try fileStore(temp.path("data"))
        #expect(try await copy.get("a")?.value == Data("2".utf8))
        #expect(try await copy.history("a", limit: 10).count == 2)
    }

    @Test func test_read_truncatedFile_failsNamingSizes() async throws {
        let temp = try TempDir()
        defer { temp.remove() }
        let store = try fileStore(temp.path("source"))
        try await store.put("k", value: Data("v".utf8))
        let info = try await store.saveSnapshot(to: temp.path("full.snap"))
        let bytes = try Data(contentsOf: temp.path("full.snap"))
        try bytes.dropLast(100).write(to: temp.path("cut.snap"))

        expectFailure("snapshot is truncated: expected \(info.bytes) bytes, found \(info.bytes - 100)") {
            _ = try Snapshot.read(temp.path("cut.snap"))
        }
        expectFailure("snapshot is truncated") { _ = try Snapshot.restore(temp.path("cut.snap"), intoDataDir: temp.path("data")) }
        #expect(!FileManager.default.fileExists(atPath: temp.path("data/gossamer.sqlite").path))
        // Cut inside the metadata line, and inside the header
        try bytes.prefix(40).write(to: temp.path("cut2.snap"))
        expectFailure("snapshot is truncated") { _ = try Snapshot.read(temp.path("cut2.snap")) }
        try bytes.prefix(8).write(to: temp.path("cut3.snap"))
        expectFailure("snapshot is truncated") { _ = try Snapshot.read(temp.path("cut3.snap")) }
    }

    @Test func test_read_oneByteFlipped_failsWithSHA256Mismatch() async throws {
        let temp = try TempDir()
        defer { temp.remove() }
        let store = try fileStore(temp.path("source"))
        try await store.put("k", value: Data("v".utf8))
        _ = try await store.saveSnapshot(to: temp.path("good.snap"))
        var bytes = try Data(contentsOf: temp.path("good.snap"))
        let middle = bytes.count - 2000
        bytes[middle] ^= 0x01
        try bytes.write(to: temp.path("bad.snap"))

        expectFailure("snapshot is corrupt: SHA-256 mismatch") { _ = try Snapshot.read(temp.path("bad.snap")) }
        expectFailure("snapshot is corrupt: SHA-256 mismatch") {
            _ = try Snapshot.restore(temp.path("bad.snap"), intoDataDir: temp.path("data"))
        }
        #expect(!FileManager.default.fileExists(atPath: temp.path("data/gossamer.sqlite").path))
    }

    @Test func test_read_otherFiles_notASnapshot() throws {
        let temp = try TempDir()
        defer { temp.remove() }
        try Data("SQLite format 3\0 and more".utf8).write(to: temp.path("plain.sqlite"))
        expectFailure("not a Gossamer snapshot") { _ = try Snapshot.read(temp.path("plain.sqlite")) }
        try Data().write(to: temp.path("empty"))
        expectFailure("not a Gossamer snapshot") { _ = try Snapshot.read(temp.path("empty")) }
        try Data("GOSSAMER-SNAPSHOT 2\n{}\n".utf8).write(to: temp.path("future.snap"))
        expectFailure("format '2' is not supported") { _ = try Snapshot.read(temp.path("future.snap")) }
        try Data("GOSSAMER-SNAPSHOT 1\n{\"sha256\":1}\n".utf8).write(to: temp.path("badjson.snap"))
        expectFailure("snapshot is corrupt: the metadata line") { _ = try Snapshot.read(temp.path("badjson.snap")) }
        do {
            _ = try Snapshot.read(temp.path("missing.snap"))
            Issue.record("reading a missing file succeeded")
        } catch let error as ConfigStoreError {
            #expect(error.code == .notFound)
        }
    }

    @Test func test_restore_intoDirectoryWithStore_refusesAndLeavesItAlone() async throws {
        let temp = try TempDir()
        defer { temp.remove() }
        let source = try fileStore(temp.path("source"))
        try await source.put("k", value: Data("from snapshot".utf8))
        _ = try await source.saveSnapshot(to: temp.path("s.snap"))
        let existing = try fileStore(temp.path("busy"))
        try await existing.put("k", value: Data("already here".utf8))

        expectFailure("restore into an empty --data-dir") { _ = try Snapshot.restore(temp.path("s.snap"), intoDataDir: temp.path("busy")) }
        #expect(try await existing.get("k")?.value == Data("already here".utf8))

        // A directory that does not exist yet is created.
        _ = try Snapshot.restore(temp.path("s.snap"), intoDataDir: temp.path("new/nested"))
        #expect(try await fileStore(temp.path("new/nested")).get("k")?.value == Data("from snapshot".utf8))
        // And restoring twice into it is refused.
        expectFailure("empty --data-dir") { _ = try Snapshot.restore(temp.path("s.snap"), intoDataDir: temp.path("new/nested")) }
    }

    @Test func test_saveSnapshot_during200ConcurrentPuts_isAConsistentPrefix() async throws {
        let temp = try TempDir()
        defer { temp.remove() }
        let store = try fileStore(temp.path("source"))
        try await store.put("seed", value: Data("0".utf8))

        // Given 200 concurrent puts, spread over about 100 ms, and snapshots taken back to back meanwhile
        let (written, snapshots) = try await withThrowingTaskGroup(of: ([KVVersion], [SnapshotInfo]).self) { group in
            for index in 0..<200 {
                group.addTask {
                    try await Task.sleep(for: .milliseconds(index % 100))
                    let version = try await store.put("load/\(index)", value: Data("value \(index)".utf8), contentType: "text")
                    return ([version], [])
                }
            }
            group.addTask {
                var taken: [SnapshotInfo] = []
                var number = 0
                while true {
                    let info = try await store.saveSnapshot(to: temp.path("live-\(number).snap"))
                    taken.append(info)
                    number += 1
                    if info.revision == 201 { return ([], taken) }
                }
            }
            var written: [KVVersion] = []
            var snapshots: [SnapshotInfo] = []
            for try await (versions, taken) in group {
                written += versions
                snapshots += taken
            }
            return (written, snapshots)
        }
        #expect(written.count == 200)
        #expect(snapshots.contains { $0.revision > 1 && $0.revision < 201 }, "no snapshot landed while the puts ran: \(snapshots.map(\.revision))")

        for (number, info) in snapshots.enumerated() {
            // When restored (which runs PRAGMA integrity_check)
            let restored = try Snapshot.restore(temp.path("live-\(number).snap"), intoDataDir: temp.path("restored-\(number)"))
            #expect(restored == info)
            let copy = try fileStore(temp.path("restored-\(number)"))

            // Then it holds exactly the changes up to its revision: gap-free history, every put at or below it, none above
            let revision = info.revision
            #expect(try await copy.revision() == revision)
            let history = try await allHistory(copy)
            #expect(history.map(\.revision) == Array(1...revision))
            for version in written {
                let found = try await copy.current(version.key)
                if version.revision <= revision {
                    #expect(found == version)
                } else {
                    #expect(found == nil, "\(version.key) at revision \(version.revision) is after the snapshot's \(revision)")
                }
            }
            let included = written.filter { $0.revision <= revision }.count
            #expect(info.keys == included + 1)
            #expect(try await copy.counts().keys == included + 1)
        }
    }
}
