import Foundation
import GRDB
import Testing

@testable import ConfigCenter

/// Checkpoints run off the commit path, on their own connection (real SQLite files in temp dirs).
@Suite struct WALCheckpointerTests {
    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gossamer-wal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    func size(_ url: URL) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? NSNumber)?.intValue ?? 0
    }

    /// Until `condition` holds or `timeout` runs out; whether it held.
    func eventually(_ timeout: Duration, _ condition: () -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }

    /// The store's writer checkpoints by itself only past 32,768 pages, so pages reach the database file within
    /// moments of a few hundred writes only through the background checkpointer.
    @Test func test_store_copiesTheLogIntoTheDatabaseFile_inTheBackground() async throws {
        let dir = try self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try ConfigStore(directory: dir, settings: ConfigSettings())
        let file = dir.appendingPathComponent("gossamer.sqlite")
        let before = self.size(file)
        let value = Data(repeating: UInt8(ascii: "x"), count: 4096)
        for index in 0..<300 { try await store.put("wal/k\(index)", value: value) }
        let copied = try await self.eventually(.seconds(5)) { self.size(file) > before + 1_000_000 }
        #expect(copied, "database file \(before) -> \(self.size(file)) bytes")
        #expect(try await store.get("wal/k299")?.value == value)
    }

    /// Under writes that never pause, the log still starts over: without that, 2,000 commits of a 4 KiB row
    /// would leave a log of 16 MB or more.
    @Test func test_continuousWrites_logStaysBounded() async throws {
        let dir = try self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("db.sqlite").path
        var configuration = Configuration()
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA wal_autocheckpoint = 0") }
        configuration.busyMode = .timeout(10)  // as the store's: a RESTART checkpoint holds writers back briefly
        let pool = try DatabasePool(path: path, configuration: configuration)
        try await pool.write { db in try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)") }
        let checkpointer = try WALCheckpointer(path: path, interval: .milliseconds(5), restartFrames: 64)
        defer { checkpointer.stop() }
        let value = Data(repeating: 7, count: 4096)
        var largest = 0
        for index in 0..<2_000 {
            try await pool.write { db in try db.execute(sql: "INSERT OR REPLACE INTO t VALUES (?, ?)", arguments: [index % 50, value]) }
            largest = max(largest, self.size(URL(fileURLWithPath: path + "-wal")))
        }
        #expect(largest < 8_000_000, "the log grew to \(largest) bytes")
        let rows = try await pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM t") }
        #expect(rows == 50)
    }
}
