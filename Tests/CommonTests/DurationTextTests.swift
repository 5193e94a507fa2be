import Common
import Testing

@Suite struct DurationTextTests {
    @Test(arguments: [
        ("30s", 30_000), ("250ms", 250), ("5m", 300_000), ("1m30s", 90_000), ("2h", 7_200_000), ("7d", 604_800_000), ("1.5", 1500),
        ("1h30m", 5_400_000), ("1m30.5s", 90_500), ("0s", 0), ("0", 0),
    ])
    func test_parse_good(_ text: String, _ millis: Int64) {
        #expect(DurationText.parse(text) == .milliseconds(millis))
    }

    @Test(arguments: ["", "s", "5x", "-1s", "1s2", "abc", "1 s", "5m-", "٣s", "100000000d", "nan", "inf"])
    func test_parse_bad(_ text: String) {
        #expect(DurationText.parse(text) == nil)
    }

    /// `format` writes what `parse` reads back, for whole and compound durations.
    @Test(arguments: [0, 250, 1000, 1500, 90_000, 5_400_000, 93_784_005])
    func test_format_roundTrips(_ millis: Int64) {
        let duration = Duration.milliseconds(millis)
        #expect(DurationText.parse(DurationText.format(duration)) == duration)
    }

    @Test func test_format_reads_well() {
        #expect(DurationText.format(.seconds(300)) == "5m")
        #expect(DurationText.format(.milliseconds(1500)) == "1s500ms")
        #expect(DurationText.format(.zero) == "0s")
        #expect(DurationText.format(.seconds(90_061)) == "1d1h1m1s")
    }
}
