import GossipCore
import TestSupport
import Testing

@Suite struct MembershipTests {
    // MARK: - Alive

    @Test func test_alive_unknownMember_joinsAndIsGossiped() {
        // Given
        var fixture = Fixture(members: [])
        // When
        let directives = fixture.receive([.alive(.init(incarnation: 3, name: "b", address: Fixture.address("b"), metadata: ["role": "db"]))], from: "b")
        // Then
        let member = SWIM.Member(name: "b", address: Fixture.address("b"), status: .alive, incarnation: 3, metadata: ["role": "db"])
        #expect(directives.membershipEvents == [.joined(member)])
        #expect(fixture.instance.broadcastQueueDepth == 1)
        #expect(fixture.instance.members.map(\.name) == ["a", "b"])
    }

    @Test func test_alive_notNewerIncarnation_isIgnored() {
        // Given
        var fixture = Fixture(members: ["b"])
        // When
        let directives = fixture.receive([.alive(.init(incarnation: 1, name: "b", address: Fixture.address("b"), metadata: ["x": "y"]))], from: "b")
        // Then
        #expect(directives.membershipEvents.isEmpty)
        #expect(fixture.instance.member(named: "b")?.metadata == [:])
    }

    @Test func test_alive_newerIncarnationWithNewMetadata_updates() {
        // Given
        var fixture = Fixture(members: ["b"])
        // When
        let directives = fixture.receive([.alive(.init(incarnation: 2, name: "b", address: Fixture.address("b"), metadata: ["x": "y"]))], from: "b")
        // Then
        #expect(directives.membershipEvents.map(\.member.metadata) == [["x": "y"]])
        if case .updated = directives.membershipEvents.first {} else { Issue.record("expected .updated") }
    }

    @Test func test_alive_liveMemberFromOtherAddress_isAConflict() {
        // Given
        var fixture = Fixture(members: ["b"])
        let other = SWIM.Address(host: "elsewhere", port: 1)
        // When
        let directives = fixture.receive([.alive(.init(incarnation: 5, name: "b", address: other))], from: "c")
        // Then
        #expect(directives == [.ignored(.addressConflict(name: "b", address: other))])
        #expect(fixture.instance.member(named: "b")?.address == Fixture.address("b"))
    }

    @Test func test_alive_metadataOverLimit_isRejected() {
        // Given
        var settings = SWIM.Settings.lan
        settings.maxMetadataBytes = 16
        var fixture = Fixture(members: [], settings: settings)
        let metadata = ["key": String(repeating: "x", count: 32)]
        // When
        let directives = fixture.receive([.alive(.init(incarnation: 1, name: "b", address: Fixture.address("b"), metadata: metadata))], from: "b")
        // Then
        #expect(directives == [.ignored(.metadataTooLarge(name: "b", size: SWIM.Codec.metadataSize(metadata)))])
        #expect(fixture.instance.member(named: "b") == nil)
    }

    @Test func test_updateMetadata_overLimit_isRefusedAndWithinLimit_bumpsIncarnation() {
        // Given
        var fixture = Fixture()
        // When
        let tooLarge = fixture.instance.updateMetadata(["k": String(repeating: "x", count: 3_000)])
        let updated = fixture.instance.updateMetadata(["k": "v"])
        // Then
        #expect(tooLarge == .tooLarge(size: SWIM.Codec.metadataSize(["k": String(repeating: "x", count: 3_000)]), limit: 2_048))
        #expect(updated == .updated(incarnation: 1))
        #expect(fixture.instance.myself.metadata == ["k": "v"])
    }

    // MARK: - Suspicion

    @Test func test_suspect_aliveMember_startsSuspicionAtMaximumTimeout() {
        // Given: N = 5, so min = 0.5 · 1 · 1 s = 500 ms, max = 4 · min = 2 s
        var fixture = Fixture()
        // When
        let directives = fixture.receive([.suspect(.init(incarnation: 1, name: "b", from: "c"))], from: "c")
        // Then
        #expect(directives.membershipEvents.map(\.member.status) == [.suspect])
        #expect(directives.armedTimers[.suspicion(member: "b")] == fixture.now + .milliseconds(2_000))
        #expect(fixture.instance.metrics.suspicionsRaised == 1)
    }

    @Test func test_suspicionHeardOfFromAnother_probesSuspectAtOnce_carryingTheSuspicion() throws {
        // Given: N = 5, so the 3 members besides suspect and accuser are fewer than `suspicionProbers`
        var fixture = Fixture()
        // When
        let directives = fixture.receive([.suspect(.init(incarnation: 1, name: "b", from: "c"))], from: "c")
        // Then: a ping to b now, with the suspicion for b to refute (buddy system), and its probe window
        let toSuspect = directives.sentMessages.filter { $0.to == Fixture.address("b") }.map(\.message)
        let ping = try #require(toSuspect.compactMap(\.ping).first)
        #expect(ping.target == "b")
        #expect(toSuspect.compactMap(\.suspect) == [.init(incarnation: 1, name: "b", from: "c")])
        #expect(directives.armedTimers[.probeDeadline(seq: ping.seq)] == fixture.now + .milliseconds(450))
        #expect(fixture.instance.metrics.suspicionProbes == 1)
        // And: its failure, one window later, confirms the suspicion (the deadline moves closer)
        let before = try #require(directives.armedTimers[.suspicion(member: "b")])
        fixture.advance(.milliseconds(150))
        _ = fixture.fire(.probeTimeout(seq: ping.seq))
        fixture.advance(.milliseconds(300))
        _ = fixture.fire(.probeDeadline(seq: ping.seq))  // waits for the TCP fallback's verdict
        let failed = fixture.instance.onStreamPingResult(seq: ping.seq, reply: nil, now: fixture.now, using: &fixture.rng)
        let after = failed.armedTimers[.suspicion(member: "b")]
        #expect(after.map { $0 < before } == true)
    }

    @Test func test_suspicionProbersZero_checksSuspectAtNextTickOnly() throws {
        // Given
        var settings = SWIM.Settings.lan
        settings.suspicionProbers = 0
        var fixture = Fixture(settings: settings)
        // When
        let directives = fixture.receive([.suspect(.init(incarnation: 1, name: "b", from: "c"))], from: "c")
        let next = try #require(fixture.probe().ping)
        // Then
        #expect(directives.sentMessages.compactMap(\.message.ping).isEmpty)
        #expect(next.target == "b")
        #expect(fixture.instance.metrics.suspicionProbes == 0)
    }

    @Test func test_suspicion_expires_declaresDeadAndGossipsIt() {
        // Given
        var fixture = Fixture()
        _ = fixture.receive([.suspect(.init(incarnation: 1, name: "b", from: "c"))], from: "c")
        // When
        fixture.advance(.milliseconds(1_999))
        let early = fixture.fire(.suspicion(member: "b"))
        fixture.advance(.milliseconds(1))
        let due = fixture.fire(.suspicion(member: "b"))
        // Then
        #expect(early.isEmpty)
        #expect(due.membershipEvents.map(\.member.status) == [.dead])
        #expect(fixture.instance.member(named: "b")?.status == .dead)
        let gossip = fixture.fire(.gossipTick).sentMessages.compactMap { $0.message.dead }
        #expect(gossip.contains(.init(incarnation: 1, name: "b", from: "a")))
    }

    @Test func test_suspicion_independentConfirmations_shrinkTimeoutToMinimum() {
        // Given: K = min(3, N − 2) = 3
        var fixture = Fixture()
        let start = fixture.now
        _ = fixture.receive([.suspect(.init(incarnation: 1, name: "b", from: "c"))], from: "c")
        // When
        let repeated = fixture.receive([.suspect(.init(incarnation: 1, name: "b", from: "c"))], from: "c")
        let one = fixture.receive([.suspect(.init(incarnation: 1, name: "b", from: "d"))], from: "d")
        let two = fixture.receive([.suspect(.init(incarnation: 1, name: "b", from: "e"))], from: "e")
        let three = fixture.receive([.suspect(.init(incarnation: 1, name: "b", from: "a"))], from: "a")
        // Then
        #expect(repeated.armedTimers.isEmpty)  // the first accuser does not confirm itself
        let first = try! #require(one.armedTimers[.suspicion(member: "b")])
        let second = try! #require(two.armedTimers[.suspicion(member: "b")])
        #expect(first < start + .milliseconds(2_000) && second < first)
        #expect(three.armedTimers[.suspicion(member: "b")] == start + .milliseconds(500))
    }

    @Test func test_suspicionTimeout_formula_matchesLifeguard() {
        // Given
        let minimum = Duration.seconds(1)
        let maximum = Duration.seconds(6)
        // When / Then
        #expect(SWIM.Instance.suspicionTimeout(confirmations: 0, expected: 3, minimum: minimum, maximum: maximum) == maximum)
        #expect(SWIM.Instance.suspicionTimeout(confirmations: 3, expected: 3, minimum: minimum, maximum: maximum) == minimum)
        #expect(SWIM.Instance.suspicionTimeout(confirmations: 1, expected: 3, minimum: minimum, maximum: maximum) == .milliseconds(3_500))
        #expect(SWIM.Instance.suspicionTimeout(confirmations: 0, expected: 0, minimum: minimum, maximum: maximum) == minimum)
    }

    @Test(arguments: [(1, 500), (8, 500), (10, 500), (100, 1_000), (1_000, 1_500)])
    func test_suspicionMinimum_scalesWithLog10OfClusterSize(clusterSize: Int, milliseconds: Int) {
        // Given / When
        let minimum = SWIM.Instance.suspicionMinimum(clusterSize: clusterSize, settings: .lan)
        // Then
        let error = minimum - .milliseconds(milliseconds)
        #expect(error < .microseconds(1) && error > .microseconds(-1))
    }

    @Test func test_suspect_thenAliveWithHigherIncarnation_recovers() {
        // Given
        var fixture = Fixture()
        _ = fixture.receive([.suspect(.init(incarnation: 1, name: "b", from: "c"))], from: "c")
        // When
        let directives = fixture.receive([.alive(.init(incarnation: 2, name: "b", address: Fixture.address("b")))], from: "b")
        fixture.advance(.seconds(10))
        let expired = fixture.fire(.suspicion(member: "b"))
        // Then
        if case .recovered = directives.membershipEvents.first {} else { Issue.record("expected .recovered") }
        #expect(expired.isEmpty)
        #expect(fixture.instance.metrics.suspicionsRefuted == 1)
    }

    // MARK: - Refutation

    @Test func test_suspectAboutMyself_refutesWithHigherIncarnationAndHealthPenalty() {
        // Given
        var fixture = Fixture()
        // When
        _ = fixture.receive([.suspect(.init(incarnation: 0, name: "a", from: "b"))], from: "b")
        // Then
        #expect(fixture.instance.myself.incarnation == 1)
        #expect(fixture.instance.localHealth == 1)
        let gossip = fixture.fire(.gossipTick).sentMessages.compactMap { $0.message.alive }
        #expect(gossip.contains { $0.name == "a" && $0.incarnation == 1 })
    }

    @Test func test_deadAboutMyself_refutes() {
        // Given
        var fixture = Fixture()
        // When
        _ = fixture.receive([.dead(.init(incarnation: 4, name: "a", from: "b"))], from: "b")
        // Then
        #expect(fixture.instance.myself.incarnation == 5)
        #expect(fixture.instance.myself.status == .alive)
    }

    @Test func test_aliveAboutMyselfSameIncarnationOtherMetadata_refutesAfterRestart() {
        // Given: we restarted with new tags at incarnation 0; peers still gossip our old record
        var fixture = Fixture(metadata: ["version": "2"])
        // When
        _ = fixture.receive([.alive(.init(incarnation: 0, name: "a", address: Fixture.address("a"), metadata: ["version": "1"]))], from: "b")
        // Then
        #expect(fixture.instance.myself.incarnation == 1)
        #expect(fixture.instance.myself.metadata == ["version": "2"])
    }

    @Test func test_aliveAboutMyselfIdentical_isNotRefuted() {
        // Given
        var fixture = Fixture()
        // When
        _ = fixture.receive([.alive(.init(incarnation: 0, name: "a", address: Fixture.address("a")))], from: "b")
        // Then
        #expect(fixture.instance.myself.incarnation == 0)
    }

    @Test func test_staleSuspicionAboutMyself_requeuesCurrentAliveWithoutBump() {
        // Given
        var fixture = Fixture()
        _ = fixture.receive([.suspect(.init(incarnation: 0, name: "a", from: "b"))], from: "b")
        fixture.drainQueue()
        // When: someone who missed the refutation pings us with the old suspicion (buddy system)
        let directives = fixture.receive([.suspect(.init(incarnation: 0, name: "a", from: "c")), .ping(.init(seq: 5, target: "a"))], from: "c")
        // Then: no new incarnation, and the ack carries our current alive
        #expect(fixture.instance.myself.incarnation == 1)
        let ack = directives.sentPackets.first { $0.to == Fixture.address("c") }
        #expect(ack?.messages.contains(.alive(.init(incarnation: 1, name: "a", address: Fixture.address("a")))) == true)
    }

    // MARK: - Dead, left, reaping, rejoin

    @Test func test_dead_thenHigherIncarnationAlive_rejoins() {
        // Given
        var fixture = Fixture()
        _ = fixture.receive([.dead(.init(incarnation: 1, name: "b", from: "c"))], from: "c")
        // When
        let stale = fixture.receive([.alive(.init(incarnation: 1, name: "b", address: Fixture.address("b")))], from: "b")
        let fresh = fixture.receive([.alive(.init(incarnation: 2, name: "b", address: Fixture.address("b")))], from: "b")
        // Then
        #expect(stale.membershipEvents.isEmpty)
        #expect(fresh.membershipEvents == [.joined(SWIM.Member(name: "b", address: Fixture.address("b"), status: .alive, incarnation: 2))])
    }

    @Test func test_left_marksMemberLeftAndStopsProbingIt() {
        // Given
        var fixture = Fixture(members: ["b", "c"])
        // When
        let directives = fixture.receive([.dead(.init(incarnation: 2, name: "b", from: "b"))], from: "b")
        var targets: Set<String> = []
        for _ in 0..<6 {
            if let ping = fixture.probe().ping {
                targets.insert(ping.target)
                _ = fixture.receive([.ack(.init(seq: ping.seq))], from: ping.target)
            }
        }
        // Then
        if case .left = directives.membershipEvents.first {} else { Issue.record("expected .left") }
        #expect(targets == ["c"])
        #expect(fixture.instance.clusterSize == 2)
    }

    @Test func test_deadMember_isReapedAfterRetention() {
        // Given
        var settings = SWIM.Settings.lan
        settings.deadMemberRetention = .seconds(60)
        var fixture = Fixture(members: ["b", "c"], settings: settings)
        _ = fixture.receive([.dead(.init(incarnation: 1, name: "b", from: "c"))], from: "c")
        // When: probe passes go on for longer than the retention
        var reaped: [SWIM.MembershipEvent] = []
        for _ in 0..<4 {
            fixture.advance(.seconds(31))
            reaped += fixture.probe().directives.membershipEvents
        }
        // Then
        #expect(reaped.map(\.member.name) == ["b"])
        if case .reaped = reaped.first {} else { Issue.record("expected .reaped") }
        #expect(fixture.instance.member(named: "b") == nil)
    }
}
