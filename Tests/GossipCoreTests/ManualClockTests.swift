import TestSupport
import Testing

@Suite struct ManualClockTests {
    @Test func test_manualClock_advancePastDeadline_wakesSleeperOnly() async throws {
        // Given
        let clock = ManualClock()
        let deadline = clock.now.advanced(by: .seconds(1))
        let sleeper = Task { try await clock.sleep(until: deadline) }
        while clock.sleeperCount == 0 { await Task.yield() }
        // When
        clock.advance(by: .milliseconds(500))
        let stillSleeping = clock.sleeperCount
        clock.advance(by: .milliseconds(500))
        // Then
        try await sleeper.value
        #expect(stillSleeping == 1)
        #expect(clock.now.offset == .seconds(1))
    }

    @Test func test_manualClock_cancelledSleeper_throwsCancellation() async {
        // Given
        let clock = ManualClock()
        let sleeper = Task { try await clock.sleep(until: clock.now.advanced(by: .seconds(5))) }
        while clock.sleeperCount == 0 { await Task.yield() }
        // When
        sleeper.cancel()
        // Then
        await #expect(throws: CancellationError.self) { try await sleeper.value }
    }
}

@Suite struct SeededRandomTests {
    @Test func test_seededRandom_sameSeed_sameSequence_differentSeed_differs() {
        // Given
        var a = SeededRandom(seed: 1)
        var b = SeededRandom(seed: 1)
        var c = SeededRandom(seed: 2)
        // When
        let first = (0..<8).map { _ in a.next() }
        // Then
        #expect(first == (0..<8).map { _ in b.next() })
        #expect(first != (0..<8).map { _ in c.next() })
    }
}
