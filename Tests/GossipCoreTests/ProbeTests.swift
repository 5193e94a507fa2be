import GossipCore
import TestSupport
import Testing

@Suite struct ProbeTests {
    @Test func test_probeTick_withMembers_pingsAndArmsTimeoutDeadlineAndNextTick() throws {
        // Given
        var fixture = Fixture()
        let start = fixture.now
        // When
        let (directives, ping, target) = fixture.probe()
        // Then
        let sent = try #require(ping)
        #expect(target == Fixture.address(sent.target))
        let timers = directives.armedTimers
        #expect(timers[.probeTimeout(seq: sent.seq)] == start + .milliseconds(150))
        #expect(timers[.probeDeadline(seq: sent.seq)] == start + .milliseconds(450))
        #expect(timers[.probeTick] == start + .seconds(1))
    }

    @Test func test_probeOrder_onePass_visitsEveryMemberExactlyOnce() {
        // Given
        var fixture = Fixture(members: ["b", "c", "d", "e", "f", "g"])
        // When
        var targets: [String] = []
        for _ in 0..<12 {
            if let ping = fixture.probe().ping {
                targets.append(ping.target)
                _ = fixture.receive([.ack(.init(seq: ping.seq))], from: ping.target)
            }
        }
        // Then: two full passes, each a permutation
        #expect(Set(targets.prefix(6)) == ["b", "c", "d", "e", "f", "g"])
        #expect(Set(targets.suffix(6)) == ["b", "c", "d", "e", "f", "g"])
    }

    @Test func test_probe_ackBeforeTimeout_succeedsWithoutSuspicion() throws {
        // Given
        var fixture = Fixture()
        let ping = try #require(fixture.probe().ping)
        // When
        _ = fixture.receive([.ack(.init(seq: ping.seq))], from: ping.target)
        fixture.advance(.milliseconds(150))
        let timeout = fixture.fire(.probeTimeout(seq: ping.seq))
        fixture.advance(.milliseconds(150))
        let deadline = fixture.fire(.probeDeadline(seq: ping.seq))
        // Then
        #expect(timeout.isEmpty && deadline.isEmpty)
        #expect(fixture.instance.member(named: ping.target)?.status == .alive)
        #expect(fixture.instance.metrics.probesSucceeded == 1)
    }

    @Test func test_probe_ackTimeout_sendsIndirectPingsAndStreamPingInParallel() throws {
        // Given
        var fixture = Fixture()
        let ping = try #require(fixture.probe().ping)
        // When
        fixture.advance(.milliseconds(150))
        let directives = fixture.fire(.probeTimeout(seq: ping.seq))
        // Then
        let requests = directives.sentMessages.compactMap { $0.message.indirectPing }
        let helpers = directives.sentMessages.filter { $0.message.indirectPing != nil }.map(\.to)
        #expect(requests.count == 3)
        #expect(requests.allSatisfy { $0.seq == ping.seq && $0.target == ping.target && $0.wantsNack })
        #expect(!helpers.contains(Fixture.address(ping.target)) && Set(helpers).count == 3)
        let stream = directives.compactMap { directive -> SWIM.Instant? in
            if case .startStreamPing(ping.seq, Fixture.address(ping.target), _, let deadline) = directive { deadline } else { nil }
        }
        #expect(stream == [fixture.now + .milliseconds(300)])  // the end of the 450 ms probe window
    }

    @Test func test_probe_noAnswerByDeadline_suspectsTargetAndPenalisesMissingNacks() throws {
        // Given
        var fixture = Fixture()
        let ping = try #require(fixture.probe().ping)
        fixture.advance(.milliseconds(150))
        _ = fixture.fire(.probeTimeout(seq: ping.seq))
        fixture.advance(.milliseconds(150))
        // When
        let atDeadline = fixture.fire(.probeDeadline(seq: ping.seq))
        let afterStream = fixture.instance.onStreamPingResult(seq: ping.seq, reply: nil, now: fixture.now, using: &fixture.rng)
        // Then: the verdict waits for the TCP fallback, then suspects
        #expect(atDeadline.membershipEvents.isEmpty)
        #expect(afterStream.membershipEvents.map(\.member.name) == [ping.target])
        #expect(fixture.instance.member(named: ping.target)?.status == .suspect)
        #expect(afterStream.armedTimers[.suspicion(member: ping.target)] != nil)
        #expect(fixture.instance.localHealth == 3)  // three helpers, no nack
    }

    @Test func test_probe_allHelpersNack_noHealthPenalty() throws {
        // Given
        var fixture = Fixture()
        let ping = try #require(fixture.probe().ping)
        fixture.advance(.milliseconds(150))
        let helpers = fixture.fire(.probeTimeout(seq: ping.seq)).sentMessages.filter { $0.message.indirectPing != nil }
        // When
        for helper in helpers {
            _ = fixture.instance.onPacket(SWIM.Codec.encode(SWIM.Packet([.nack(.init(seq: ping.seq))])), from: helper.to, now: fixture.now, using: &fixture.rng)
        }
        fixture.advance(.milliseconds(150))
        _ = fixture.instance.onStreamPingResult(seq: ping.seq, reply: nil, now: fixture.now, using: &fixture.rng)
        _ = fixture.fire(.probeDeadline(seq: ping.seq))
        // Then
        #expect(fixture.instance.localHealth == 0)
        #expect(fixture.instance.member(named: ping.target)?.status == .suspect)
    }

    @Test func test_probe_indirectAck_preventsSuspicion() throws {
        // Given
        var fixture = Fixture()
        let ping = try #require(fixture.probe().ping)
        fixture.advance(.milliseconds(150))
        let helper = try #require(fixture.fire(.probeTimeout(seq: ping.seq)).sentMessages.first { $0.message.indirectPing != nil })
        // When
        _ = fixture.instance.onPacket(SWIM.Codec.encode(SWIM.Packet([.ack(.init(seq: ping.seq))])), from: helper.to, now: fixture.now, using: &fixture.rng)
        fixture.advance(.milliseconds(150))
        let directives = fixture.fire(.probeDeadline(seq: ping.seq))
        // Then
        #expect(directives.membershipEvents.isEmpty)
        #expect(fixture.instance.member(named: ping.target)?.status == .alive)
    }

    @Test func test_probe_streamPingAnswersButUdpDoesNot_reportsMisconfiguredWithoutSuspicion() throws {
        // Given
        var fixture = Fixture()
        let ping = try #require(fixture.probe().ping)
        fixture.advance(.milliseconds(150))
        _ = fixture.fire(.probeTimeout(seq: ping.seq))
        // When
        let ack = SWIM.Codec.encode(SWIM.Packet([.ack(.init(seq: ping.seq))]))
        _ = fixture.instance.onStreamPingResult(seq: ping.seq, reply: ack, now: fixture.now, using: &fixture.rng)
        fixture.advance(.milliseconds(150))
        let directives = fixture.fire(.probeDeadline(seq: ping.seq))
        // Then
        #expect(directives.contains(.networkMisconfigured(member: ping.target, address: Fixture.address(ping.target))))
        #expect(directives.membershipEvents.isEmpty)
        #expect(fixture.instance.member(named: ping.target)?.status == .alive)
    }

    @Test func test_localHealth_failedProbes_stretchProbeIntervalAndTimeout_successShrinksIt() throws {
        // Given: a probe that fails with no nacks raises health by 3
        var fixture = Fixture()
        var settings = SWIM.Settings.lan
        settings.streamPingFallback = false
        fixture = Fixture(settings: settings)
        let first = try #require(fixture.probe().ping)
        _ = fixture.fire(.probeTimeout(seq: first.seq))
        _ = fixture.fire(.probeDeadline(seq: first.seq))
        #expect(fixture.instance.localHealth == 3)
        // When
        let (directives, ping, _) = fixture.probe()
        let second = try #require(ping)
        // Then: interval, timeout and window scaled by health + 1 = 4
        #expect(directives.armedTimers[.probeTick] == fixture.now + .seconds(4))
        #expect(directives.armedTimers[.probeTimeout(seq: second.seq)] == fixture.now + .milliseconds(600))
        #expect(directives.armedTimers[.probeDeadline(seq: second.seq)] == fixture.now + .milliseconds(1_800))
        // And a direct ack lowers it again
        _ = fixture.receive([.ack(.init(seq: second.seq))], from: second.target)
        #expect(fixture.instance.localHealth == 2)
    }

    @Test func test_localHealth_neverExceedsMaxMultiplier() {
        // Given
        var fixture = Fixture()
        // When: refute many suspicions about ourselves
        for incarnation in 0..<20 {
            _ = fixture.receive([.suspect(.init(incarnation: SWIM.Incarnation(incarnation) * 2, name: "a", from: "b"))], from: "b")
        }
        // Then
        #expect(fixture.instance.localHealth == 7)
    }

    @Test func test_buddySystem_pingToSuspect_carriesTheSuspicionFirst() throws {
        // Given
        var fixture = Fixture(members: ["b"])
        _ = fixture.receive([.suspect(.init(incarnation: 1, name: "b", from: "c"))], from: "c")
        // When
        let directives = fixture.fire(.probeTick)
        // Then
        let packet = try #require(directives.sentPackets.first { $0.to == Fixture.address("b") })
        #expect(packet.messages.first?.suspect == .init(incarnation: 1, name: "b", from: "c"))
        #expect(packet.messages.contains { if case .ping(let ping) = $0 { ping.target == "b" } else { false } })
    }

    @Test func test_suspectLearnedFromGossip_isProbedAheadOfRoundRobin() throws {
        // Given
        var fixture = Fixture(members: ["b", "c", "d", "e", "f", "g", "h"])
        _ = fixture.receive([.suspect(.init(incarnation: 1, name: "f", from: "c"))], from: "c")
        // When
        let ping = try #require(fixture.probe().ping)
        // Then
        #expect(ping.target == "f")
    }

    // MARK: - Serving probes

    @Test func test_ping_forMe_isAckedWithSameSeq() {
        // Given
        var fixture = Fixture()
        // When
        let directives = fixture.receive([.ping(.init(seq: 42, target: "a"))], from: "b")
        // Then
        #expect(directives.sentMessages.first?.to == Fixture.address("b"))
        #expect(directives.sentMessages.first?.message == .ack(.init(seq: 42)))
    }

    @Test func test_ping_forAnotherName_isIgnoredWithoutAck() {
        // Given
        var fixture = Fixture()
        // When
        let directives = fixture.receive([.ping(.init(seq: 42, target: "old-name"))], from: "b")
        // Then
        #expect(directives == [.ignored(.pingForAnotherMember(target: "old-name"))])
    }

    @Test func test_indirectPing_targetAcks_relaysAckToRequester() throws {
        // Given
        var fixture = Fixture()
        let request = fixture.receive([.indirectPing(.init(seq: 9, target: "c", targetAddress: Fixture.address("c")))], from: "b")
        let relayed = try #require(request.sentMessages.compactMap { message -> SWIM.Message.Ping? in
            if case .ping(let ping) = message.message, message.to == Fixture.address("c") { ping } else { nil }
        }.first)
        // When
        let directives = fixture.receive([.ack(.init(seq: relayed.seq))], from: "c")
        // Then
        #expect(directives.sentMessages.first?.to == Fixture.address("b"))
        #expect(directives.sentMessages.first?.message == .ack(.init(seq: 9)))
    }

    @Test func test_indirectPing_targetSilent_sendsNackAfterProbeTimeout() throws {
        // Given
        var fixture = Fixture()
        let request = fixture.receive([.indirectPing(.init(seq: 9, target: "c", targetAddress: Fixture.address("c")))], from: "b")
        let (timer, deadline) = try #require(request.armedTimers.first)
        #expect(deadline == fixture.now + .milliseconds(150))
        // When
        fixture.advance(.milliseconds(150))
        let directives = fixture.fire(timer)
        // Then
        #expect(directives.sentMessages.first?.message == .nack(.init(seq: 9)))
        #expect(directives.sentMessages.first?.to == Fixture.address("b"))
    }

    @Test func test_ack_unknownSeq_isIgnored() {
        // Given
        var fixture = Fixture()
        // When
        let directives = fixture.receive([.ack(.init(seq: 999))], from: "b")
        // Then
        #expect(directives == [.ignored(.unknownSequence(999))])
    }
}
