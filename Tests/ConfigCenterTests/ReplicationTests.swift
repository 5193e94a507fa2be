import Foundation
import Logging
import Synchronization
import TestSupport
import Testing

@testable import ConfigCenter

/// Merge, digest, wire format and anti-entropy planning: the pure and store-level parts of replication.
@Suite struct ReplicationMergeTests {
    @Test func test_merge_remoteVersion_becomesCurrentAndIsWatched() async throws {
        // Given
        let wall = TestWall()
        let a = try makeStore(node: "a", wall: wall)
        let b = try makeStore(node: "b", wall: wall)
        let subscription = b.feed.subscribe(.prefix("app/"))
        let written = try await a.put("app/x", value: Data("1"))
        // When
        let report = try await b.merge([written])
        // Then
        #expect(report == MergeReport(applied: 1, current: 1))
        let held = try #require(try await b.get("app/x"))
        #expect(held.stamp == written.stamp && held.value == Data("1") && held.version == 1 && held.revision == 1)
        var events = subscription.events.makeAsyncIterator()
        guard case .change(let change) = await events.next() else {
            Issue.record("no change event")
            return
        }
        #expect(change.stamp == written.stamp)
        #expect(b.digest == a.digest)
    }

    @Test func test_merge_sameVersionTwice_secondIsDuplicateAndChangesNothing() async throws {
        let wall = TestWall()
        let a = try makeStore(node: "a", wall: wall)
        let b = try makeStore(node: "b", wall: wall)
        let written = try await a.put("k", value: Data("1"))
        _ = try await b.merge([written])
        let revision = try await b.revision()
        // When
        let report = try await b.merge([written, written])
        // Then
        #expect(report.duplicates == 2 && report.applied == 0)
        #expect(try await b.revision() == revision)
    }

    @Test func test_merge_concurrentWrites_sameWinnerAndOneConflictOnBothSides() async throws {
        // Given: both agents hold version 1, then write version 2 without seeing each other's.
        let wall = TestWall()
        let a = try makeStore(node: "a", wall: wall)
        let b = try makeStore(node: "b", wall: wall)
        let base = try await a.put("k", value: Data("base"))
        _ = try await b.merge([base])
        wall.advance(5)
        let fromA = try await a.put("k", value: Data("from a"))
        let fromB = try await b.put("k", value: Data("from b"))
        // When
        let onA = try await a.merge([fromB])
        let onB = try await b.merge([fromA])
        // Then: the higher stamp wins everywhere ("b" > "a" at the same wall and counter) and the loser is flagged.
        #expect(fromB.stamp > fromA.stamp)
        #expect(try await a.get("k")?.value == Data("from b"))
        #expect(try await b.get("k")?.value == Data("from b"))
        #expect(onA.conflicts == 1 && onB.conflicts == 1)
        for store in [a, b] {
            let conflicts = try await store.conflicts(prefix: "", limit: 10)
            #expect(conflicts.map(\.stamp) == [fromA.stamp])
        }
        #expect(a.digest == b.digest)
    }

    @Test func test_merge_lateAncestor_keptAsStaleHistoryNotConflictNotWatched() async throws {
        // Given: b receives a's version 2 before version 1.
        let wall = TestWall()
        let a = try makeStore(node: "a", wall: wall)
        let b = try makeStore(node: "b", wall: wall)
        let v1 = try await a.put("k", value: Data("1"))
        let v2 = try await a.put("k", value: Data("2"))
        _ = try await b.merge([v2])
        // When
        let report = try await b.merge([v1])
        // Then
        #expect(report.applied == 1 && report.current == 0 && report.conflicts == 0)
        #expect(try await b.get("k")?.stamp == v2.stamp)
        #expect(try await b.history("k", limit: 10).map(\.version) == [2, 1])
        let replay = try await b.changes(after: 0, filter: .key("k"), limit: 10)
        #expect(replay.map(\.stamp) == [v2.stamp])
        #expect(try await b.conflictCount() == 0)
    }

    @Test func test_merge_expiredTombstoneForForgottenKey_isIgnored() async throws {
        let wall = TestWall()
        let a = try makeStore(node: "a", wall: wall) { $0.retention.tombstoneHorizon = .seconds(10) }
        let b = try makeStore(node: "b", wall: wall) { $0.retention.tombstoneHorizon = .seconds(10) }
        _ = try await a.put("k", value: Data("1"))
        let tombstone = try #require(try await a.delete("k"))
        wall.advance(11_000)
        // When
        let report = try await b.merge([tombstone])
        // Then
        #expect(report.ignored == 1)
        #expect(try await b.current("k") == nil)
    }

    @Test func test_digest_sameDataMergedInDifferentOrders_sameRoot() async throws {
        let wall = TestWall()
        let origin = try makeStore(node: "o", wall: wall)
        var versions: [KVVersion] = []
        for index in 0..<50 {
            versions.append(try await origin.put("k/\(index % 17)", value: Data("\(index)")))
            wall.advance(1)
        }
        if let tombstone = try await origin.delete("k/3") { versions.append(tombstone) }
        let forward = try makeStore(node: "f", wall: wall)
        let backward = try makeStore(node: "r", wall: wall)
        _ = try await forward.merge(versions)
        _ = try await backward.merge(versions.reversed())
        #expect(forward.digest == origin.digest)
        #expect(backward.digest == origin.digest)
        #expect(forward.digest.root == backward.digest.root)
    }

    @Test func test_digest_rebuiltAfterReopen_equalsIncrementalOne() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gossamer-digest-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        var settings = ConfigSettings()
        settings.nodeName = "n"
        let incremental: KeyspaceDigest
        do {
            let store = try ConfigStore(directory: directory, settings: settings)
            for index in 0..<40 { try await store.put("d/\(index % 13)", value: Data("\(index)")) }
            try await store.delete("d/2")
            try await store.deletePrefix("d/1")
            incremental = store.digest
        }
        let reopened = try ConfigStore(directory: directory, settings: settings)
        #expect(reopened.digest == incremental)
        #expect(incremental != KeyspaceDigest())
    }

    @Test func test_forget_onlyWhenStampStillCurrent() async throws {
        let store = try makeStore()
        let first = try await store.put("k", value: Data("1"))
        _ = try await store.put("k", value: Data("2"))
        // When: asked to forget a stamp that is no longer current
        let report = try await store.forget([KeyStamp(key: "k", stamp: first.stamp, tombstone: false)])
        // Then
        #expect(report.applied == 0)
        #expect(try await store.get("k")?.value == Data("2"))
    }
}

@Suite struct ReplicationWireTests {
    static func sampleVersion(_ index: Int) -> KVVersion {
        KVVersion(
            key: "app/\(index)", value: Data(repeating: UInt8(index & 0xff), count: index), contentType: index % 2 == 0 ? "json" : nil,
            version: index + 1, revision: 0, stamp: Stamp(wall: 1_700_000_000_000 + Int64(index), counter: UInt32(index), node: "n\(index)"),
            parent: index == 0 ? nil : Stamp(wall: 1_700_000_000_000, counter: 0, node: "p"), author: index % 3 == 0 ? "alice" : nil,
            client: "127.0.0.1", tombstone: index % 5 == 4, appliedAt: 42)
    }

    static let samples: [ReplicationMessage] = {
        var digest = KeyspaceDigest()
        digest.replace(key: "a", old: nil, new: Stamp(wall: 1, counter: 2, node: "x"))
        return [
            .versions((0..<6).map(sampleVersion)),
            .versions([]),
            .applied(MergeReport(applied: 3, current: 2, duplicates: 1, conflicts: 1, ignored: 4)),
            .digest(node: "node-a", resyncing: true, digest: digest),
            .digestRequest,
            .keysInBuckets([0, 17, 255]),
            .keyStamps([KeyStamp(key: "k", stamp: Stamp(wall: 9, counter: 1, node: "z"), tombstone: true)]),
            .fetch(["a", "b/c", "ü"]),
        ]
    }()

    @Test func test_roundTrip_everyMessageKind() throws {
        for message in Self.samples {
            #expect(try ReplicationMessage.decode(message.encoded()) == message)
        }
    }

    @Test func test_decode_truncationsAndGarbage_throwNeverTrap() {
        var random = SeededRandom(seed: 7)
        var rejected = 0
        for message in Self.samples {
            let bytes = [UInt8](message.encoded())
            for cut in 0..<bytes.count {
                if (try? ReplicationMessage.decode(Data(bytes[0..<cut]))) == nil { rejected += 1 }
            }
            for _ in 0..<300 {
                var mutated = bytes
                let flips = Int.random(in: 1...4, using: &random)
                for _ in 0..<flips { mutated[Int.random(in: 0..<mutated.count, using: &random)] = UInt8.random(in: 0...255, using: &random) }
                _ = try? ReplicationMessage.decode(Data(mutated))
            }
        }
        for _ in 0..<2000 {
            let length = Int.random(in: 0..<200, using: &random)
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            _ = try? ReplicationMessage.decode(Data([0x47, 0x52, 1] + bytes))
        }
        // Every strict prefix of a message is refused.
        #expect(rejected == Self.samples.map { $0.encoded().count }.reduce(0, +))
    }

    @Test func test_decode_hugeCount_refusedWithoutAllocating() {
        var bytes: [UInt8] = [0x47, 0x52, 1, 1]
        bytes += [0xff, 0xff, 0xff, 0x7f]
        #expect(throws: ReplicationWireError.self) { try ReplicationMessage.decode(Data(bytes)) }
    }
}

@Suite struct RepairPlanTests {
    static func entry(_ key: String, _ wall: Int64, node: String = "a", tombstone: Bool = false) -> KeyStamp {
        KeyStamp(key: key, stamp: Stamp(wall: wall, counter: 0, node: node), tombstone: tombstone)
    }

    @Test func test_plan_fetchesNewerAndMissing_pushesOlderAndExtra() {
        let mine = [Self.entry("same", 5), Self.entry("mine-newer", 9), Self.entry("theirs-newer", 3), Self.entry("only-mine", 4)]
        let theirs = [Self.entry("same", 5), Self.entry("mine-newer", 8), Self.entry("theirs-newer", 7), Self.entry("only-theirs", 2)]
        let plan = RepairPlan(mine: mine, theirs: theirs, horizon: 0, settledBefore: 6, resyncBefore: nil)
        #expect(Set(plan.fetch) == ["theirs-newer", "only-theirs"])
        #expect(Set(plan.push) == ["mine-newer", "only-mine"])
        #expect(plan.missingHere == 1 && plan.missingThere == 1 && plan.different == 2)
        // Settled: differences whose newer stamp is older than 6 (only-mine at 4, only-theirs at 2).
        #expect(plan.settled == 2)
        #expect(plan.forget.isEmpty)
    }

    @Test func test_plan_expiredTombstones_forgottenNeverCopied() {
        let mine = [Self.entry("old-delete", 1, tombstone: true)]
        let theirs = [Self.entry("their-old-delete", 1, tombstone: true)]
        let plan = RepairPlan(mine: mine, theirs: theirs, horizon: 10, settledBefore: 0, resyncBefore: nil)
        #expect(plan.fetch.isEmpty && plan.push.isEmpty)
        #expect(plan.forget.map(\.key) == ["old-delete"])
    }

    @Test func test_plan_resyncing_dropsOldKeysThePeerForgot_keepsRecentOnes() {
        let mine = [Self.entry("deleted-while-away", 100), Self.entry("written-after-return", 900)]
        let plan = RepairPlan(mine: mine, theirs: [], horizon: 0, settledBefore: 0, resyncBefore: 500)
        #expect(plan.forget.map(\.key) == ["deleted-while-away"])
        #expect(plan.push == ["written-after-return"])
    }
}
