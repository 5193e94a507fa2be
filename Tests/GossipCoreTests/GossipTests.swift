@testable import GossipCore
import TestSupport
import Testing

@Suite struct GossipTests {
    @Test func test_gossipTick_emptyQueue_sendsNothingAndRearms() {
        // Given
        var fixture = Fixture()
        fixture.drainQueue()
        // When
        let directives = fixture.fire(.gossipTick)
        // Then
        #expect(directives == [.armTimer(.gossipTick, at: fixture.now + .milliseconds(100))])
    }

    @Test func test_gossipTick_queuedUpdate_goesToThreeRandomMembers() {
        // Given
        var fixture = Fixture(members: ["b", "c", "d", "e", "f"])
        // When
        let directives = fixture.fire(.gossipTick)
        // Then
        let targets = directives.sentPackets.map(\.to)
        #expect(targets.count == 3 && Set(targets).count == 3 && !targets.contains(Fixture.address("a")))
    }

    @Test func test_queuedUpdate_isSentRetransmitMultTimesCeilLog10N() {
        // Given: N = 5 ⇒ 4 · ⌈log10 6⌉ = 4 sends per update
        var fixture = Fixture()
        fixture.drainQueue()
        _ = fixture.receive([.suspect(.init(incarnation: 1, name: "b", from: "c"))], from: "c")
        // When
        var sends = 0
        for _ in 0..<10 {
            sends += fixture.fire(.gossipTick).sentMessages.filter { $0.message.suspect != nil }.count
        }
        // Then
        #expect(sends == 4)
        #expect(fixture.instance.broadcastQueueDepth == 0)
    }

    @Test func test_newerUpdateAboutMember_replacesOlderInQueue() {
        // Given
        var fixture = Fixture()
        fixture.drainQueue()
        _ = fixture.receive([.suspect(.init(incarnation: 1, name: "b", from: "c"))], from: "c")
        // When
        _ = fixture.receive([.alive(.init(incarnation: 2, name: "b", address: Fixture.address("b")))], from: "b")
        // Then
        #expect(fixture.instance.broadcastQueueDepth == 1)
        let sent = fixture.fire(.gossipTick).sentMessages.map(\.message)
        #expect(sent.allSatisfy { $0.suspect == nil })
        #expect(sent.contains { $0.alive?.incarnation == 2 })
    }

    @Test func test_manyUpdates_packCompoundPacketsWithinBudget() {
        // Given: 200 members joined, so 200 queued alive messages
        var fixture = Fixture(members: (0..<200).map { "member-\($0)" })
        // When
        let directives = fixture.fire(.gossipTick)
        // Then
        let sizes = directives.compactMap { if case .send(let bytes, _) = $0 { bytes.count } else { nil } }
        #expect(!sizes.isEmpty)
        #expect(sizes.allSatisfy { $0 <= 1_400 && $0 > 1_200 })
        #expect(directives.sentPackets.allSatisfy { $0.messages.count > 10 })
    }

    @Test func test_broadcastQueue_prefersFewestTransmittedThenNewest() {
        // Given
        var queue = BroadcastQueue()
        queue.enqueue([1, 1], key: "x", maxDepth: 100)
        _ = queue.take(budget: 100, transmitLimit: 5)  // x sent once
        queue.enqueue([2, 2], key: "y", maxDepth: 100)
        queue.enqueue([3, 3], key: "z", maxDepth: 100)
        // When
        let first = queue.take(budget: 2, transmitLimit: 5)
        let second = queue.take(budget: 2, transmitLimit: 5)
        // Then: never-sent before sent-once, newest first among never-sent
        #expect(first == [[3, 3]] && second == [[2, 2]])
        #expect(queue.count == 3)
    }

    @Test func test_broadcastQueue_overCapacity_dropsMostTransmittedAndCounts() {
        // Given
        var queue = BroadcastQueue()
        queue.enqueue([1], key: "old", maxDepth: 2)
        _ = queue.take(budget: 10, transmitLimit: 5)
        queue.enqueue([2], key: "b", maxDepth: 2)
        // When
        let dropped = queue.enqueue([3], key: "c", maxDepth: 2)
        // Then
        #expect(dropped == 1)
        #expect(queue.take(budget: 10, transmitLimit: 5).sorted { $0[0] < $1[0] } == [[2], [3]])
    }

    @Test func test_pingAndAck_piggybackQueuedGossip() throws {
        // Given
        var fixture = Fixture(members: ["b"])
        _ = fixture.receive([.alive(.init(incarnation: 1, name: "c", address: Fixture.address("c")))], from: "c")
        // When
        let ack = fixture.receive([.ping(.init(seq: 1, target: "a"))], from: "b")
        // Then
        let packet = try #require(ack.sentPackets.first)
        #expect(packet.messages.first == .ack(.init(seq: 1)))
        #expect(packet.messages.contains { $0.alive?.name == "c" })
    }

    @Test func test_malformedDatagram_isCountedAndIgnored() {
        // Given
        var fixture = Fixture()
        // When
        let directives = fixture.instance.onPacket([0x47, 0x53, 1], from: Fixture.address("x"), now: fixture.now, using: &fixture.rng)
        // Then
        #expect(directives == [.ignored(.malformed(.truncated))])
        #expect(fixture.instance.metrics.malformedPackets == 1)
    }

    @Test func test_metrics_countEncodedAndDecodedTraffic() {
        // Given
        var fixture = Fixture()
        let before = fixture.instance.metrics
        // When
        let directives = fixture.receive([.ping(.init(seq: 1, target: "a"))], from: "b")
        // Then
        let metrics = fixture.instance.metrics
        #expect(metrics.packetsDecoded == before.packetsDecoded + 1)
        #expect(metrics.packetsEncoded == before.packetsEncoded + 1)
        let sent = directives.compactMap { if case .send(let bytes, _) = $0 { bytes.count } else { nil } }.reduce(0, +)
        #expect(metrics.bytesEncoded == before.bytesEncoded + sent)
    }
}
