import GossipCore
import TestSupport
import Testing

/// Layer 2: N = 100 members over the deterministic simulator.
@Suite struct SimulationTests {
    static let n = 100

    /// Counts `.failed` declarations per subject name.
    final class DeathLog {
        var deaths: [String: [(observer: Int, time: SWIM.Instant)]] = [:]
        func record(_ observer: Int, _ time: SWIM.Instant, _ event: SWIM.MembershipEvent) {
            if case .failed(let member) = event { self.deaths[member.name, default: []].append((observer, time)) }
        }
    }

    static func converged(seed: UInt64, loss: Double = 0) -> (Simulation, DeathLog) {
        let simulation = Simulation(memberCount: n, network: SimulatedNetwork(lossProbability: loss), seed: seed)
        let log = DeathLog()
        simulation.onMembershipEvent = log.record
        simulation.startConverged()
        simulation.run(for: .seconds(2))
        return (simulation, log)
    }

    @Test func test_simulation_hundredJoinThroughOneSeed_allConverge() {
        // Given
        let simulation = Simulation(memberCount: Self.n, seed: 1)
        let everyone = Array(0..<Self.n)
        // When: one member every 10 ms joins through member 0
        simulation.startAll(joiningThrough: [0], stagger: .milliseconds(10))
        let converged = simulation.run(until: { $0.isConverged(everyone) }, step: .milliseconds(250), timeout: .seconds(60))
        // Then
        #expect(converged, "not converged at \(simulation.now)")
        #expect(simulation.now < SWIM.Instant(.seconds(10)))
    }

    @Test func test_simulation_crashedMember_everySurvivorMarksDeadQuickly() {
        // Given
        let (simulation, log) = Self.converged(seed: 2)
        let victim = 42
        let survivors = (0..<Self.n).filter { $0 != victim }
        // When
        let crashedAt = simulation.now
        simulation.crash(victim)
        let detected = simulation.run(until: { $0.all(survivors, see: victim, as: .dead) }, step: .milliseconds(10), timeout: .seconds(30))
        // Then: observed 2.3–2.8 s at N = 100; Serf/3 at N = 64 is 3.5 s
        let detection = simulation.now - crashedAt
        #expect(detected)
        #expect(detection < .milliseconds(3_500), "detection took \(detection)")
        #expect(log.deaths.keys.sorted() == [Simulation.name(victim)])
    }

    @Test func test_simulation_tenPercentLossForTenMinutes_noFalsePositive() {
        // Given
        let (simulation, log) = Self.converged(seed: 3, loss: 0.1)
        // When
        simulation.run(for: .seconds(600))
        // Then
        #expect(log.deaths.isEmpty, "false positives: \(log.deaths.keys.sorted())")
        #expect(simulation.isConverged(Array(0..<Self.n)))
        #expect(simulation.stats.datagramsDropped > 0)
    }

    @Test func test_simulation_pausedShorterThanSuspicionTimeout_refutesAndIsNeverDeclaredDead() {
        // Given: the minimum suspicion timeout at N = 100 is 1.8 s
        let (simulation, log) = Self.converged(seed: 4)
        let paused = 17
        // When
        simulation.pause(paused)
        simulation.run(for: .milliseconds(1_200))
        simulation.resume(paused)
        simulation.run(for: .seconds(10))
        // Then
        #expect(log.deaths.isEmpty)
        #expect(simulation.isConverged(Array(0..<Self.n)))
        #expect(simulation.instances[paused].metrics.selfRefutations >= 1)
    }

    @Test func test_simulation_pausedLongerThanSuspicionTimeout_isDeclaredDeadThenRejoinsWithHigherIncarnation() {
        // Given
        let (simulation, log) = Self.converged(seed: 5)
        let paused = 23
        let others = (0..<Self.n).filter { $0 != paused }
        // When
        simulation.pause(paused)
        let dead = simulation.run(until: { $0.all(others, see: paused, as: .dead) }, timeout: .seconds(20))
        let deadIncarnation = simulation.view(of: 0, about: paused)?.incarnation ?? 0
        simulation.resume(paused)
        let back = simulation.run(until: { $0.isConverged(Array(0..<Self.n)) }, timeout: .seconds(30))
        // Then
        #expect(dead && back)
        #expect(simulation.instances[paused].myself.incarnation > deadIncarnation)
        #expect(others.allSatisfy { (simulation.view(of: $0, about: paused)?.incarnation ?? 0) > deadIncarnation })
        #expect(log.deaths.keys.sorted() == [Simulation.name(paused)])
    }

    @Test func test_simulation_crashedMemberRestarts_rejoinsWithHigherIncarnation() {
        // Given
        let (simulation, _) = Self.converged(seed: 6)
        let victim = 9
        let others = (0..<Self.n).filter { $0 != victim }
        simulation.crash(victim)
        #expect(simulation.run(until: { $0.all(others, see: victim, as: .dead) }, timeout: .seconds(20)))
        let deadIncarnation = simulation.view(of: 0, about: victim)?.incarnation ?? 0
        // When: a fresh process (incarnation 0) with the same name and address
        simulation.restart(victim, joiningThrough: [0])
        let back = simulation.run(until: { $0.isConverged(Array(0..<Self.n)) }, timeout: .seconds(30))
        // Then
        #expect(back)
        #expect(simulation.instances[victim].myself.incarnation > deadIncarnation)
    }

    @Test func test_simulation_partitionHeals_bothSidesConvergeThroughPushPull() {
        // Given
        let (simulation, _) = Self.converged(seed: 7)
        let left = Array(0..<50)
        let right = Array(50..<Self.n)
        // When: a 60 s split, long enough for each side to declare the other dead
        simulation.partition([left, right])
        simulation.run(for: .seconds(60))
        let split = simulation.all(left, see: 75, as: .dead) && simulation.all(right, see: 25, as: .dead)
        simulation.heal()
        let pushPullsBefore = simulation.instances.map(\.metrics.pushPullsMerged).reduce(0, +)
        let healed = simulation.run(until: { $0.isConverged(Array(0..<Self.n)) }, step: .seconds(1), timeout: .seconds(600))
        // Then
        #expect(split)
        #expect(healed, "not healed at \(simulation.now)")
        #expect(simulation.instances.map(\.metrics.pushPullsMerged).reduce(0, +) > pushPullsBefore)
    }

    @Test func test_simulation_userBroadcasts_reachEveryMemberExactlyOnce() {
        // Given
        let (simulation, _) = Self.converged(seed: 8, loss: 0.05)
        var received: [String: Int] = [:]
        simulation.onUserBroadcast = { receiver, _, origin, payload in
            received["\(receiver)/\(origin)/\(payload)", default: 0] += 1
        }
        // When
        simulation.broadcast(from: 0, [1])
        simulation.broadcast(from: 0, [2])
        simulation.broadcast(from: 50, [3])
        simulation.run(for: .seconds(10))
        // Then: 3 broadcasts × 99 receivers, each once
        #expect(received.count == 3 * (Self.n - 1))
        #expect(received.values.allSatisfy { $0 == 1 })
    }

    @Test func test_simulation_sameSeed_sameRun() {
        // Given
        func run() -> ([SWIM.Metrics], Simulation.Stats) {
            let simulation = Simulation(memberCount: 30, network: SimulatedNetwork(lossProbability: 0.1), seed: 99)
            simulation.startAll()
            simulation.run(for: .seconds(5))
            simulation.crash(3)
            simulation.run(for: .seconds(10))
            return (simulation.instances.map(\.metrics), simulation.stats)
        }
        // When
        let first = run()
        let second = run()
        // Then
        #expect(first.0 == second.0)
        #expect(first.1 == second.1)
    }
}
