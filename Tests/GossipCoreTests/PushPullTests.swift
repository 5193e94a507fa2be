import GossipCore
import TestSupport
import Testing

@Suite struct PushPullTests {
    static func state(from name: String, _ members: [SWIM.Member], payload: [UInt8] = []) -> [UInt8] {
        SWIM.Codec.encode(SWIM.Packet([.pushPull(.init(from: name, join: false, members: members, appPayload: payload))]))
    }

    @Test func test_join_seeds_startsJoinPushPullWithEachOtherSeed() {
        // Given
        var fixture = Fixture(members: [])
        // When
        let directives = fixture.instance.join(seeds: [Fixture.address("s1"), Fixture.address("a"), Fixture.address("s2"), Fixture.address("s1")], now: fixture.now, using: &fixture.rng)
        // Then
        #expect(directives == [.startPushPull(to: Fixture.address("s1"), join: true), .startPushPull(to: Fixture.address("s2"), join: true)])
    }

    @Test func test_pushPullRequest_carriesWholeTableAndAppPayload() throws {
        // Given
        var fixture = Fixture(members: ["b", "c"])
        _ = fixture.receive([.dead(.init(incarnation: 1, name: "c", from: "b"))], from: "b")
        // When
        let bytes = fixture.instance.pushPullRequest(join: true, appPayload: [9, 9])
        // Then
        guard case .pushPull(let state) = try SWIM.Codec.decodeStream(bytes) else { Issue.record("not a push-pull"); return }
        #expect(state.from == "a" && state.join && state.appPayload == [9, 9])
        #expect(state.members.map(\.name).sorted() == ["a", "b", "c"])
        #expect(state.members.first { $0.name == "c" }?.status == .dead)
    }

    @Test func test_streamRequest_pushPull_repliesThenMergesAndDeliversAppPayload() throws {
        // Given
        var fixture = Fixture(members: [])
        let remote = [SWIM.Member(name: "b", address: Fixture.address("b"), incarnation: 2), SWIM.Member(name: "c", address: Fixture.address("c"))]
        // When
        let directives = fixture.instance.onStreamRequest(Self.state(from: "b", remote, payload: [1]), from: Fixture.address("b"), appPayload: [7], now: fixture.now, using: &fixture.rng)
        // Then
        guard case .replyOnStream(let reply) = directives.first, case .pushPull(let state) = try SWIM.Codec.decodeStream(reply) else {
            Issue.record("expected a reply first")
            return
        }
        #expect(state.members.map(\.name) == ["a"] && state.appPayload == [7])
        #expect(directives.membershipEvents.map(\.member.name).sorted() == ["b", "c"])
        #expect(directives.contains(.deliverAppPayload(from: "b", payload: [1])))
    }

    @Test func test_pushPullResponse_remoteDeadBecomesSuspicionNotDeath() {
        // Given
        var fixture = Fixture(members: ["b", "c"])
        let remote = [SWIM.Member(name: "c", address: Fixture.address("c"), status: .dead, incarnation: 1)]
        // When
        let directives = fixture.instance.onPushPullResponse(Self.state(from: "b", remote), from: Fixture.address("b"), now: fixture.now, using: &fixture.rng)
        // Then
        #expect(directives.membershipEvents.map(\.member.status) == [.suspect])
    }

    @Test func test_pushPullResponse_remoteSaysWeAreDead_refutesAndTellsItDirectly() throws {
        // Given
        var fixture = Fixture(members: ["b"])
        let remote = [SWIM.Member(name: "b", address: Fixture.address("b"), incarnation: 1), SWIM.Member(name: "a", address: Fixture.address("a"), status: .dead, incarnation: 0)]
        // When
        let directives = fixture.instance.onPushPullResponse(Self.state(from: "b", remote), from: Fixture.address("b"), now: fixture.now, using: &fixture.rng)
        // Then
        #expect(fixture.instance.myself.incarnation == 1)
        let echo = try #require(directives.sentPackets.first)
        #expect(echo.to == Fixture.address("b"))
        #expect(echo.messages.first == .alive(.init(incarnation: 1, name: "a", address: Fixture.address("a"))))
    }

    @Test func test_streamRequest_pingForMe_repliesAck() throws {
        // Given
        var fixture = Fixture()
        let request = SWIM.Codec.encode(SWIM.Packet([.ping(.init(seq: 3, target: "a"))]))
        // When
        let directives = fixture.instance.onStreamRequest(request, from: Fixture.address("b"), now: fixture.now, using: &fixture.rng)
        // Then
        guard case .replyOnStream(let reply) = directives.first else { Issue.record("no reply"); return }
        #expect(try SWIM.Codec.decodeStream(reply) == .ack(.init(seq: 3)))
    }

    @Test func test_streamRequest_malformed_isIgnoredWithoutReply() {
        // Given
        var fixture = Fixture()
        // When
        let directives = fixture.instance.onStreamRequest([1, 2, 3, 4, 5], from: Fixture.address("b"), now: fixture.now, using: &fixture.rng)
        // Then
        #expect(directives == [.ignored(.malformed(.badMagic))])
    }

    @Test func test_pushPullTick_exchangesWithALiveMemberAndScalesIntervalAbove32() {
        // Given
        var small = Fixture(members: ["b"])
        var large = Fixture(members: (0..<99).map { "m\($0)" })
        // When
        let smallTick = small.fire(.pushPullTick)
        let largeTick = large.fire(.pushPullTick)
        // Then: N = 100 ⇒ 30 s · (⌈log2 100⌉ − 5 + 1) = 90 s
        #expect(smallTick.contains(.startPushPull(to: Fixture.address("b"), join: false)))
        #expect(smallTick.armedTimers[.pushPullTick] == small.now + .seconds(30))
        #expect(largeTick.armedTimers[.pushPullTick] == large.now + .seconds(90))
    }
}

@Suite struct BroadcastAndLeaveTests {
    @Test func test_userBroadcast_deliveredOnceDespiteDuplicates() {
        // Given
        var fixture = Fixture()
        let message = SWIM.Message.userBroadcast(.init(origin: "b", seq: 1, payload: [42]))
        // When
        let first = fixture.receive([message], from: "b")
        let again = fixture.receive([message], from: "c")
        // Then
        #expect(first.contains(.deliverUserBroadcast(origin: "b", payload: [42])))
        #expect(!again.contains { if case .deliverUserBroadcast = $0 { true } else { false } })
        #expect(fixture.instance.metrics.userBroadcastDuplicates == 1)
    }

    @Test func test_userBroadcast_queuedForOthersAndNotDeliveredToOrigin() {
        // Given
        var fixture = Fixture()
        fixture.drainQueue()
        // When
        let outcome = fixture.instance.broadcast([1, 2, 3], using: &fixture.rng)
        let sent = fixture.fire(.gossipTick)
        // Then
        guard case .queued(let seq) = outcome else { Issue.record("not queued"); return }
        #expect(sent.sentMessages.contains { $0.message == .userBroadcast(.init(origin: "a", seq: seq, payload: [1, 2, 3])) })
        let echoed = fixture.receive([.userBroadcast(.init(origin: "a", seq: seq, payload: [1, 2, 3]))], from: "b")
        #expect(!echoed.contains { if case .deliverUserBroadcast = $0 { true } else { false } })
    }

    @Test func test_userBroadcast_largerThanPacket_isRefused() {
        // Given
        var fixture = Fixture()
        // When
        let outcome = fixture.instance.broadcast([UInt8](repeating: 0, count: 2_000), using: &fixture.rng)
        // Then
        if case .tooLarge = outcome {} else { Issue.record("expected tooLarge") }
    }

    @Test func test_leave_sendsLeftWithBumpedIncarnationAndStopsProbing() {
        // Given
        var fixture = Fixture()
        // When
        let directives = fixture.instance.leave(now: fixture.now, using: &fixture.rng)
        let tick = fixture.fire(.probeTick)
        // Then
        let left = directives.sentMessages.compactMap { $0.message.dead }
        #expect(left.count == 3 && left.allSatisfy { $0 == .init(incarnation: 1, name: "a", from: "a") })
        #expect(fixture.instance.myself.status == .left)
        #expect(tick.isEmpty)
        // And claims about us are no longer refuted
        _ = fixture.receive([.dead(.init(incarnation: 1, name: "a", from: "b"))], from: "b")
        #expect(fixture.instance.myself.incarnation == 1)
    }
}

@Suite struct SettingsTests {
    @Test func test_profiles_haveDocumentedNumbers() {
        // Given / When
        let lan = SWIM.Settings.lan
        let wan = SWIM.Settings.wan
        let local = SWIM.Settings.local
        // Then
        #expect(lan.probeInterval == .seconds(1) && lan.probeTimeout == .milliseconds(150) && lan.probeWindow == .milliseconds(450))
        #expect(lan.suspicionMult == 0.5 && lan.suspicionMaxTimeoutMult == 4 && lan.suspicionProbers == 8)
        #expect(lan.awarenessMaxMultiplier == 8 && lan.maxPacketSize == 1_400)
        #expect(wan.probeInterval == .seconds(5) && wan.probeWindow == .seconds(5) && wan.suspicionMult == 6)
        #expect(local.indirectChecks == 1 && local.probeInterval == .milliseconds(200) && local.probeWindow == .milliseconds(200))
        #expect(local.suspicionMult == 3 && local.suspicionMaxTimeoutMult == 3)
        #expect(throws: Never.self) { try lan.validate() }
        #expect(throws: Never.self) { try wan.validate() }
        #expect(throws: Never.self) { try local.validate() }
    }

    @Test func test_validate_timeoutLongerThanWindow_orWindowLongerThanInterval_throws() {
        // Given
        var timeout = SWIM.Settings.lan
        timeout.probeTimeout = .milliseconds(500)
        var window = SWIM.Settings.lan
        window.probeWindow = .seconds(2)
        // When / Then
        #expect(throws: SWIM.SettingsError.self) { try timeout.validate() }
        #expect(throws: SWIM.SettingsError.self) { try window.validate() }
    }
}
