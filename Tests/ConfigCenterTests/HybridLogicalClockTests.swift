import Testing

@testable import ConfigCenter

@Suite struct HybridLogicalClockTests {
    @Test func test_tick_wallClockAdvances_counterResets() {
        // Given
        var clock = HybridLogicalClock(node: "a")
        // When
        let first = clock.tick(physicalMillis: 100)
        let second = clock.tick(physicalMillis: 200)
        // Then
        #expect(first == Stamp(wall: 100, counter: 0, node: "a"))
        #expect(second == Stamp(wall: 200, counter: 0, node: "a"))
    }

    @Test func test_tick_wallClockStandsStillOrStepsBack_stampsStillIncrease() {
        var clock = HybridLogicalClock(node: "a")
        let first = clock.tick(physicalMillis: 100)
        let same = clock.tick(physicalMillis: 100)
        let back = clock.tick(physicalMillis: 50)
        #expect(first < same && same < back)
        #expect(back == Stamp(wall: 100, counter: 2, node: "a"))
    }

    @Test func test_observe_remoteAhead_laterLocalStampsSortAfterIt() {
        var clock = HybridLogicalClock(node: "a")
        _ = clock.tick(physicalMillis: 100)
        let remote = Stamp(wall: 500, counter: 7, node: "b")
        clock.observe(remote, physicalMillis: 120)
        let next = clock.tick(physicalMillis: 130)
        #expect(next > remote)
        #expect(next == Stamp(wall: 500, counter: 8, node: "a"))
    }

    @Test func test_stamp_ordering_wallThenCounterThenNode() {
        #expect(Stamp(wall: 1, counter: 9, node: "z") < Stamp(wall: 2, counter: 0, node: "a"))
        #expect(Stamp(wall: 2, counter: 0, node: "z") < Stamp(wall: 2, counter: 1, node: "a"))
        #expect(Stamp(wall: 2, counter: 1, node: "a") < Stamp(wall: 2, counter: 1, node: "b"))
    }

    @Test(arguments: ["1763750000123.0@node-a", "0.0@n", "5.42@a@b"])
    func test_stamp_text_roundTrips(_ text: String) throws {
        let stamp = try #require(Stamp(text))
        #expect(stamp.description == text)
    }

    @Test(arguments: ["", "abc", "1.2", "@n", "x.1@n", "1.x@n", "1.2@", "-1.0@n"])
    func test_stamp_badText_isRejected(_ text: String) {
        #expect(Stamp(text) == nil)
    }
}

@Suite struct ConfigKeyTests {
    @Test(arguments: ["a", "prod/payments/db.yaml", "x/y.z/w-1_2", "ünïcode/键"])
    func test_validate_goodKeys_pass(_ key: String) throws {
        try ConfigKey.validate(key)
    }

    @Test(arguments: [
        ("", "empty"), ("/a", "starts with '/'"), ("a/", "ends with '/'"), ("a//b", "empty segment"),
        ("a/../b", "'..' segment"), ("./a", "'.' segment"), ("a\u{0001}b", "control character"),
        (String(repeating: "k", count: 513), "the limit is 512"),
    ])
    func test_validate_badKeys_failNamingTheProblem(_ key: String, _ problem: String) {
        #expect {
            try ConfigKey.validate(key)
        } throws: { error in
            let error = error as? ConfigStoreError
            return error?.code == .badKey && error?.message.contains(problem) == true
        }
    }

    @Test func test_upperBound_prefixRange_coversExactlyThePrefix() throws {
        let upper = try #require(ConfigKey.upperBound(ofPrefix: "app/"))
        #expect(upper == "app0")
        for key in ["app/", "app/x", "app/\u{10FFFF}"] { #expect(key >= "app/" && key < upper) }
        for key in ["app", "apq", "app0"] { #expect(!(key >= "app/" && key < upper)) }
    }
}
