import Foundation
import Synchronization
import Testing

@testable import ConfigCenter

/// A wall clock the test moves by hand.
final class TestWall: Sendable {
    let millis = Atomic<Int64>(1_000_000)
    func advance(_ by: Int64) { self.millis.add(by, ordering: .relaxed) }
    var now: Int64 { self.millis.load(ordering: .relaxed) }
}

func makeStore(node: String = "n1", wall: TestWall = TestWall(), configure: (inout ConfigSettings) -> Void = { _ in }) throws -> ConfigStore {
    var settings = ConfigSettings()
    settings.nodeName = node
    settings._wallMillis = { wall.now }
    configure(&settings)
    return try ConfigStore.inMemory(settings: settings)
}

extension Data {
    init(_ text: String) { self = Data(text.utf8) }
}

@Suite struct ConfigStoreTests {
    @Test func test_put_newKey_versionOneWithStampAndNoParent() async throws {
        // Given
        let store = try makeStore()
        // When
        let written = try await store.put("a/b", value: Data("v1"), contentType: "text", origin: .init(author: "alice", client: "127.0.0.1"))
        // Then
        #expect(written.version == 1)
        #expect(written.revision == 1)
        #expect(written.parent == nil)
        #expect(written.stamp.node == "n1")
        let read = try #require(try await store.get("a/b"))
        #expect(read == written)
        #expect(read.author == "alice" && read.client == "127.0.0.1" && read.contentType == "text")
    }

    @Test func test_put_existingKey_versionIncrementsAndParentIsPreviousStamp() async throws {
        let store = try makeStore()
        let first = try await store.put("k", value: Data("1"))
        let second = try await store.put("k", value: Data("2"))
        #expect(second.version == 2)
        #expect(second.parent == first.stamp)
        #expect(second.stamp > first.stamp)
        #expect(try await store.revision() == 2)
    }

    @Test func test_delete_isAVersion_andRecreateContinuesNumbering() async throws {
        let store = try makeStore()
        try await store.put("k", value: Data("1"))
        let tombstone = try #require(try await store.delete("k"))
        #expect(tombstone.version == 2 && tombstone.tombstone)
        #expect(try await store.get("k") == nil)
        #expect(try await store.current("k")?.tombstone == true)
        let again = try await store.put("k", value: Data("3"))
        #expect(again.version == 3)
        #expect(try await store.get("k", version: 2).tombstone)
    }

    @Test func test_delete_missingKey_writesNothing() async throws {
        let store = try makeStore()
        #expect(try await store.delete("nope") == nil)
        #expect(try await store.revision() == 0)
    }

    @Test func test_cas_zero_createsOnlyWhenAbsent() async throws {
        let store = try makeStore()
        try await store.put("k", value: Data("1"), cas: 0)
        await #expect {
            try await store.put("k", value: Data("2"), cas: 0)
        } throws: { error in
            let error = error as? ConfigStoreError
            return error?.code == .casMismatch && error?.currentVersion == 1
        }
        #expect(try await store.get("k")?.value == Data("1"))
    }

    @Test func test_cas_version_matchWritesMismatchRefusesWithCurrentVersion() async throws {
        let store = try makeStore()
        try await store.put("k", value: Data("1"))
        try await store.put("k", value: Data("2"), cas: 1)
        await #expect {
            try await store.put("k", value: Data("3"), cas: 1)
        } throws: { ($0 as? ConfigStoreError)?.currentVersion == 2 }
        await #expect(throws: ConfigStoreError.self) { try await store.delete("k", cas: 1) }
        #expect(try await store.get("k")?.version == 2)
    }

    @Test func test_cas_zeroAfterDelete_recreates() async throws {
        let store = try makeStore()
        try await store.put("k", value: Data("1"))
        try await store.delete("k")
        let recreated = try await store.put("k", value: Data("2"), cas: 0)
        #expect(recreated.version == 3)
    }

    @Test func test_transaction_failedCheck_writesNothingAndListsEveryFailure() async throws {
        let store = try makeStore()
        try await store.put("a", value: Data("1"))
        await #expect {
            try await store.transaction([
                .put(key: "b", value: Data("x"), contentType: nil, cas: nil),
                .check(key: "a", version: 5),
                .put(key: "c", value: Data("y"), contentType: nil, cas: 0),
                .check(key: "zz", version: 1),
            ])
        } throws: { error in
            let error = error as? ConfigStoreError
            return error?.code == .txnFailed && error?.failures.map(\.index) == [1, 3]
        }
        #expect(try await store.get("b") == nil)
        #expect(try await store.revision() == 1)
    }

    @Test func test_transaction_success_appliesAllWithConsecutiveRevisions() async throws {
        let store = try makeStore()
        try await store.put("a", value: Data("1"))
        try await store.put("old/x", value: Data("1"))
        try await store.put("old/y", value: Data("1"))
        let receipt = try await store.transaction([
            .check(key: "a", version: 1),
            .put(key: "b", value: Data("2"), contentType: nil, cas: 0),
            .delete(key: "a", cas: 1),
            .deletePrefix(prefix: "old/"),
            .get(key: "b"),
        ])
        #expect(receipt.revision == 3 + 4)
        #expect(receipt.results[0] == .checked)
        guard case .deleted(let removed) = receipt.results[3] else { Issue.record("expected deletes"); return }
        #expect(removed.map(\.key) == ["old/x", "old/y"])
        guard case .got(let got) = receipt.results[4] else { Issue.record("expected get"); return }
        #expect(got?.value == Data("2"))
        #expect(try await store.list(prefix: "").map(\.key) == ["b"])
    }

    @Test func test_transaction_limits_tooManyOpsOrDuplicateKeysRefused() async throws {
        let store = try makeStore()
        let tooMany = (0..<65).map { TxnOp.put(key: "k\($0)", value: Data("v"), contentType: nil, cas: nil) }
        await #expect { try await store.transaction(tooMany) } throws: { ($0 as? ConfigStoreError)?.code == .badRequest }
        await #expect {
            try await store.transaction([.put(key: "k", value: Data("1"), contentType: nil, cas: nil), .delete(key: "k", cas: nil)])
        } throws: { ($0 as? ConfigStoreError)?.message.contains("twice") == true }
    }

    @Test func test_put_oversizedValue_refusedAsTooLarge() async throws {
        let store = try makeStore { $0.maxValueBytes = 10 }
        await #expect { try await store.put("k", value: Data(count: 11)) } throws: { ($0 as? ConfigStoreError)?.code == .tooLarge }
        try await store.put("k", value: Data(count: 10))
    }

    @Test func test_put_brokenYAML_refusedAndNothingStored() async throws {
        let store = try makeStore()
        await #expect { try await store.put("k", value: Data("a: [1"), contentType: "yaml") } throws: {
            ($0 as? ConfigStoreError)?.code == .badValue
        }
        #expect(try await store.revision() == 0)
    }

    @Test func test_list_prefix_returnsLiveKeysInOrderOnly() async throws {
        let store = try makeStore()
        for key in ["app/b", "app/a", "apq", "app", "app/c/d"] { try await store.put(key, value: Data(key)) }
        try await store.delete("app/b")
        #expect(try await store.list(prefix: "app/").map(\.key) == ["app/a", "app/c/d"])
        #expect(try await store.list(prefix: "").count == 4)
        #expect(try await store.list(prefix: "app/", limit: 1).map(\.key) == ["app/a"])
    }

    @Test func test_history_newestFirstAndPaged() async throws {
        let store = try makeStore()
        for index in 1...5 { try await store.put("k", value: Data("\(index)")) }
        let page1 = try await store.history("k", limit: 2)
        #expect(page1.map(\.version) == [5, 4])
        let page2 = try await store.history("k", limit: 2, beforeVersion: 4)
        #expect(page2.map(\.version) == [3, 2])
        #expect(try await store.get("k", version: 3).value == Data("3"))
        await #expect { try await store.get("k", version: 9) } throws: { ($0 as? ConfigStoreError)?.code == .notFound }
    }

    @Test func test_diff_textVersions_unified() async throws {
        let store = try makeStore()
        try await store.put("k", value: Data("a\nb\n"))
        try await store.put("k", value: Data("a\nc\n"))
        let diff = try await store.diff("k", from: 1, to: 2)
        #expect(diff.contains("-b\n+c\n"))
        #expect(diff.hasPrefix("--- k@1\n+++ k@2\n"))
    }

    @Test func test_rollback_writesNewVersionWithOldValueAndKeepsHistory() async throws {
        let store = try makeStore()
        try await store.put("k", value: Data("good"), contentType: "text")
        try await store.put("k", value: Data("bad"))
        let rolled = try #require(try await store.rollback("k", to: 1))
        #expect(rolled.version == 3 && rolled.value == Data("good") && rolled.contentType == "text")
        #expect(try await store.history("k", limit: 10).count == 3)
    }

    @Test func test_compact_keepVersions_dropsOldButNeverCurrent() async throws {
        let store = try makeStore()
        for index in 1...5 { try await store.put("k", value: Data("\(index)")) }
        try await store.put("other", value: Data("x"))
        var retention = ConfigSettings.Retention()
        retention.keepVersions = 2
        let report = try await store.compact(retention: retention)
        #expect(report.versionsRemoved == 3)
        #expect(try await store.history("k", limit: 10).map(\.version) == [5, 4])
        #expect(try await store.get("other") != nil)
        #expect(try await store.compactedRevision() == 3)
    }

    @Test func test_compact_keepFor_dropsOnlyOldVersions() async throws {
        let wall = TestWall()
        let store = try makeStore(wall: wall)
        try await store.put("k", value: Data("old"))
        wall.advance(10_000)
        try await store.put("k", value: Data("new1"))
        try await store.put("k", value: Data("new2"))
        var retention = ConfigSettings.Retention()
        retention.keepFor = .seconds(5)
        #expect(try await store.compact(retention: retention).versionsRemoved == 1)
        #expect(try await store.history("k", limit: 10).map(\.version) == [3, 2])
    }

    @Test func test_compact_tombstonePastHorizon_keyForgotten() async throws {
        let wall = TestWall()
        let store = try makeStore(wall: wall)
        try await store.put("gone", value: Data("x"))
        try await store.delete("gone")
        try await store.put("kept", value: Data("x"))
        try await store.delete("kept")
        var retention = ConfigSettings.Retention()
        retention.tombstoneHorizon = .seconds(60)
        #expect(try await store.compact(retention: retention).keysForgotten == 0)
        wall.advance(61_000)
        #expect(try await store.compact(retention: retention).keysForgotten == 2)
        #expect(try await store.current("gone") == nil)
    }

    @Test func test_reopen_fileStore_keepsDataAndStampsKeepRising() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gossamer-test-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var settings = ConfigSettings()
        settings.nodeName = "n1"
        let wallHigh = TestWall()
        wallHigh.advance(1_000_000)
        settings._wallMillis = { wallHigh.now }
        let before: KVVersion
        do {
            let store = try ConfigStore(directory: dir, settings: settings)
            before = try await store.put("k", value: Data("1"))
        }
        // The wall clock steps back across the restart.
        settings._wallMillis = { 5 }
        let store = try ConfigStore(directory: dir, settings: settings)
        #expect(try await store.get("k") == before)
        let after = try await store.put("k", value: Data("2"))
        #expect(after.stamp > before.stamp)
        #expect(after.revision == 2)
    }

    @Test func test_groupCommit_concurrentWrites_allAppliedWithGapFreeRevisions() async throws {
        let store = try makeStore()
        let count = 300
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                group.addTask { try await store.put("k\(index % 37)", value: Data("\(index)")) }
            }
            try await group.waitForAll()
        }
        #expect(try await store.revision() == Int64(count))
        let changes = try await store.changes(after: 0, filter: .prefix(""), limit: 1000)
        #expect(changes.map(\.revision) == (1...Int64(count)).map { $0 })
        let versions = try await store.list(prefix: "").reduce(0) { $0 + $1.version }
        #expect(versions == count)
    }

    /// Callback puts (the HTTP fast path's) and awaited puts share the group commit: whichever kind leads a batch,
    /// every write is applied once, revisions stay gap-free, and each callback gets its own version or error.
    @Test func test_groupCommit_callbackAndAwaitedPutsMixed_allAppliedAndAnswered() async throws {
        let store = try makeStore()
        let count = 200
        let callbacks = try await withThrowingTaskGroup(of: Result<KVVersion, ConfigStoreError>?.self) { group in
            for index in 0..<count {
                group.addTask {
                    let key = "k\(index % 23)"
                    guard index.isMultiple(of: 2) else {
                        try await store.put(key, value: Data("\(index)"))
                        return nil
                    }
                    return await withCheckedContinuation { continuation in
                        store.put(key, value: Data("\(index)"), completion: { continuation.resume(returning: $0) })
                    }
                }
            }
            return try await group.reduce(into: [Result<KVVersion, ConfigStoreError>]()) { results, result in
                if let result { results.append(result) }
            }
        }
        #expect(callbacks.count == count / 2)
        let versions = try callbacks.map { try $0.get() }
        #expect(Set(versions.map(\.revision)).count == count / 2, "each callback got its own version")
        #expect(try await store.revision() == Int64(count))
        let changes = try await store.changes(after: 0, filter: .prefix(""), limit: 1000)
        #expect(changes.map(\.revision) == (1...Int64(count)).map { $0 })
        for version in versions { #expect(try await store.history(version.key, limit: 1000).contains(version)) }

        // Refused before any transaction (bad key, oversized value) and refused by it (compare failed): an error each.
        let refused = await withCheckedContinuation { continuation in
            store.put("bad//key", value: Data("x"), completion: { continuation.resume(returning: $0) })
        }
        #expect(throws: ConfigStoreError.self) { try refused.get() }
        let mismatch = await withCheckedContinuation { continuation in
            store.put("k0", value: Data("x"), cas: 1, completion: { continuation.resume(returning: $0) })
        }
        #expect(performing: { try mismatch.get() }, throws: { ($0 as? ConfigStoreError)?.code == .casMismatch })
        #expect(try await store.revision() == Int64(count), "refused writes wrote nothing")
    }

    @Test func test_concurrentCAS_exactlyOneWinner() async throws {
        let store = try makeStore()
        try await store.put("k", value: Data("0"))
        let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<20 {
                group.addTask {
                    do {
                        try await store.put("k", value: Data("\(index)"), cas: 1)
                        return true
                    } catch let error as ConfigStoreError where error.code == .casMismatch {
                        return false
                    }
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(wins == 1)
    }
}

@Suite struct ChangeFeedTests {
    @Test func test_subscribe_receivesMatchingChangesInRevisionOrder() async throws {
        let store = try makeStore()
        let subscription = store.feed.subscribe(.prefix("app/"))
        try await store.put("app/a", value: Data("1"))
        try await store.put("other", value: Data("1"))
        try await store.delete("app/a")
        var iterator = subscription.events.makeAsyncIterator()
        guard case .change(let first) = await iterator.next(), case .change(let second) = await iterator.next() else {
            Issue.record("expected two changes")
            return
        }
        #expect(first.key == "app/a" && !first.tombstone)
        #expect(second.key == "app/a" && second.tombstone && second.revision == 3)
        #expect(store.feed.revision == 3)
    }

    @Test func test_slowSubscriber_isCutOffAsLagged() async throws {
        let feed = ChangeFeed(bufferSize: 2)
        let subscription = feed.subscribe(.prefix(""))
        let change = KVVersion(
            key: "k", value: Data(), contentType: nil, version: 1, revision: 1, stamp: Stamp(wall: 1, counter: 0, node: "n"),
            parent: nil, author: nil, client: nil, tombstone: false, appliedAt: 1)
        feed.publish([change, change, change], revision: change.revision)
        var received = 0
        for await _ in subscription.events { received += 1 }
        #expect(received == 2)
        #expect(subscription.lagged)
        #expect(feed.subscriberCount == 0)
    }
}

@Suite struct ChangeFeedShutdownTests {
    @Test func test_closeAll_endsStreamsAndLaterSubscriptions() async throws {
        let feed = ChangeFeed()
        let before = feed.subscribe(.prefix(""))
        feed.closeAll()
        var count = 0
        for await _ in before.events { count += 1 }
        let after = feed.subscribe(.key("k"))
        for await _ in after.events { count += 1 }
        #expect(count == 0)
        #expect(feed.subscriberCount == 0)
    }
}
