import Metrics
import Monitor
import Testing

@Suite struct MetricsRegistryTests {
    /// The registry's samples named `name`.
    func samples(_ registry: MetricsRegistry, _ name: String) -> [Sample] {
        registry.samples().filter { $0.name == name }
    }

    @Test func test_counter_incrementedThroughSwiftMetrics_readsBackAsSample() {
        // Given
        let registry = MetricsRegistry()
        let counter = Counter(label: "gossamer_requests_total", dimensions: [("route", "/v1/kv")], factory: registry)

        // When
        counter.increment()
        counter.increment(by: 4)

        // Then
        #expect(
            self.samples(registry, "gossamer_requests_total") == [
                sample("gossamer_requests_total", ["route": "/v1/kv"], 5)
            ])
    }

    @Test func test_counter_negativeIncrement_isIgnored() {
        // Given
        let registry = MetricsRegistry()
        let counter = Counter(label: "gossamer_requests_total", factory: registry)
        counter.increment(by: 2)

        // When
        counter.increment(by: -1)

        // Then
        #expect(self.samples(registry, "gossamer_requests_total").map(\.value) == [2])
    }

    @Test func test_counter_reset_returnsToZero() {
        // Given
        let registry = MetricsRegistry()
        let counter = Counter(label: "gossamer_requests_total", factory: registry)
        counter.increment(by: 7)

        // When
        counter.reset()

        // Then
        #expect(self.samples(registry, "gossamer_requests_total").map(\.value) == [0])
    }

    @Test func test_floatingPointCounter_sameLabelAsCounter_sharesTheSeries() {
        // Given
        let registry = MetricsRegistry()
        let whole = Counter(label: "gossamer_bytes_total", factory: registry)
        let fractional = FloatingPointCounter(label: "gossamer_bytes_total", factory: registry)

        // When
        whole.increment(by: 2)
        fractional.increment(by: 0.5)
        fractional.increment(by: 0.25)

        // Then
        #expect(self.samples(registry, "gossamer_bytes_total").map(\.value) == [2.75])
    }

    @Test func test_counter_createdTwice_sharesOneSeries() {
        // Given
        let registry = MetricsRegistry()
        let first = Counter(label: "gossamer_hits_total", dimensions: [("a", "1"), ("b", "2")], factory: registry)
        let second = Counter(label: "gossamer_hits_total", dimensions: [("b", "2"), ("a", "1")], factory: registry)

        // When
        first.increment()
        second.increment()

        // Then
        #expect(
            self.samples(registry, "gossamer_hits_total") == [sample("gossamer_hits_total", ["a": "1", "b": "2"], 2)])
    }

    @Test func test_gauge_recordedTwice_readsTheLastValue() {
        // Given
        let registry = MetricsRegistry()
        let gauge = Gauge(label: "gossamer_disk_used_ratio", dimensions: [("mount", "/")], factory: registry)

        // When
        gauge.record(0.5)
        gauge.record(0.93)

        // Then
        #expect(
            self.samples(registry, "gossamer_disk_used_ratio") == [
                sample("gossamer_disk_used_ratio", ["mount": "/"], 0.93)
            ])
    }

    @Test func test_meter_setIncrementDecrement_movesTheGauge() {
        // Given
        let registry = MetricsRegistry()
        let meter = Meter(label: "gossamer_connections", factory: registry)

        // When
        meter.set(10)
        meter.increment(by: 2.5)
        meter.decrement(by: 0.5)

        // Then
        #expect(self.samples(registry, "gossamer_connections").map(\.value) == [12])
    }

    @Test func test_recorder_aggregating_exposesCumulativeBucketsSumAndCount() {
        // Given
        var settings = MetricsRegistry.Settings()
        settings.buckets["gossamer_batch_size"] = [10, 1, 100, 10, .infinity]
        let registry = MetricsRegistry(settings: settings)
        let recorder = Recorder(label: "gossamer_batch_size", dimensions: [("kind", "put")], factory: registry)

        // When
        for value in [0.5, 1, 5, 50, 500] { recorder.record(value) }

        // Then: bounds sorted and deduplicated, +Inf implicit; a value equal to a bound counts in it.
        let labels = ["kind": "put"]
        let expected: [Sample] = [
            sample("gossamer_batch_size_bucket", labels.merging(["le": "1"]) { $1 }, 2),
            sample("gossamer_batch_size_bucket", labels.merging(["le": "10"]) { $1 }, 3),
            sample("gossamer_batch_size_bucket", labels.merging(["le": "100"]) { $1 }, 4),
            sample("gossamer_batch_size_bucket", labels.merging(["le": "+Inf"]) { $1 }, 5),
            sample("gossamer_batch_size_sum", labels, 556.5),
            sample("gossamer_batch_size_count", labels, 5),
        ]
        #expect(registry.samples().filter { $0.name.hasPrefix("gossamer_batch_size") } == expected)
    }

    @Test func test_timer_recordsNanoseconds_asSecondsInDefaultBuckets() throws {
        // Given
        let registry = MetricsRegistry()
        let timer = Timer(label: "gossamer_request_duration_seconds", factory: registry)

        // When
        timer.recordMilliseconds(20)
        timer.recordSeconds(3)

        // Then
        let family = try #require(registry.families().first { $0.name == "gossamer_request_duration_seconds" })
        #expect(family.kind == .histogram)
        guard case .histogram(let histogram) = family.series.first?.value else {
            Issue.record("not a histogram: \(family)")
            return
        }
        #expect(histogram.bounds == MetricsRegistry.Settings().defaultBuckets)
        #expect(histogram.count == 2)
        #expect(abs(histogram.sum - 3.02) < 1e-9)
        #expect(histogram.cumulativeCounts == [0, 0, 1, 1, 1, 1, 1, 1, 1, 2, 2])
    }

    @Test func test_seriesCap_exceeded_dropsNewSeriesAndCountsThem() {
        // Given
        var settings = MetricsRegistry.Settings()
        settings.maxSeriesPerMetric = 3
        let registry = MetricsRegistry(settings: settings)

        // When
        let counters = (0..<5).map {
            Counter(label: "gossamer_ids_total", dimensions: [("id", "\($0)")], factory: registry)
        }
        for counter in counters { counter.increment() }

        // Then
        #expect(self.samples(registry, "gossamer_ids_total").count == 3)
        #expect(registry.droppedSeries == 2)
        #expect(self.samples(registry, MetricsRegistry.droppedSeriesMetric).map(\.value) == [2])
    }

    @Test func test_seriesCap_existingSeries_stillReturnedAtTheCap() {
        // Given
        var settings = MetricsRegistry.Settings()
        settings.maxSeriesPerMetric = 1
        let registry = MetricsRegistry(settings: settings)
        Counter(label: "gossamer_x_total", factory: registry).increment()

        // When
        Counter(label: "gossamer_x_total", factory: registry).increment()

        // Then
        #expect(self.samples(registry, "gossamer_x_total").map(\.value) == [2])
        #expect(registry.droppedSeries == 0)
    }

    @Test func test_kindClash_gaugeNamedLikeACounter_isDropped() {
        // Given
        let registry = MetricsRegistry()
        Counter(label: "gossamer_things", factory: registry).increment()

        // When
        Gauge(label: "gossamer_things", factory: registry).record(42)

        // Then
        #expect(self.samples(registry, "gossamer_things").map(\.value) == [1])
        #expect(registry.droppedSeries == 1)
    }

    @Test func test_repeatedDimensionName_isDropped() {
        // Given
        let registry = MetricsRegistry()

        // When
        Counter(label: "gossamer_dupes_total", dimensions: [("a", "1"), ("a", "2")], factory: registry).increment()

        // Then
        #expect(self.samples(registry, "gossamer_dupes_total").isEmpty)
        #expect(registry.droppedSeries == 1)
    }

    @Test func test_destroy_removesTheSeriesAndEmptyFamily() {
        // Given
        let registry = MetricsRegistry()
        let kept = Gauge(label: "gossamer_level", dimensions: [("a", "1")], factory: registry)
        let destroyed = Gauge(label: "gossamer_level", dimensions: [("a", "2")], factory: registry)
        let alone = Counter(label: "gossamer_alone_total", factory: registry)
        kept.record(1)
        destroyed.record(2)

        // When
        destroyed.destroy()
        alone.destroy()

        // Then
        #expect(self.samples(registry, "gossamer_level") == [sample("gossamer_level", ["a": "1"], 1)])
        #expect(!registry.families().contains { $0.name == "gossamer_alone_total" })
    }

    @Test func test_families_orderedByNameThenLabels_withHelp() {
        // Given
        let registry = MetricsRegistry()
        registry.describe("gossamer_b", help: "B things.")
        Gauge(label: "gossamer_b", dimensions: [("x", "2")], factory: registry).record(1)
        Gauge(label: "gossamer_b", dimensions: [("x", "1")], factory: registry).record(1)
        Gauge(label: "gossamer_a", factory: registry).record(1)

        // When
        let families = registry.families()

        // Then
        #expect(families.map(\.name) == ["gossamer_a", "gossamer_b", MetricsRegistry.droppedSeriesMetric])
        #expect(families[1].help == "B things.")
        #expect(families[1].series.map(\.labels) == [["x": "1"], ["x": "2"]])
        #expect(families[0].help == nil)
    }

    @Test func test_counter_concurrentIncrements_countsEveryOne() async {
        // Given
        let registry = MetricsRegistry()
        let counter = Counter(label: "gossamer_parallel_total", factory: registry)
        let histogram = Recorder(label: "gossamer_parallel_sizes", factory: registry)

        // When: 8 tasks increment 10,000 times each.
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    for _ in 0..<10_000 {
                        counter.increment()
                        histogram.record(1)
                    }
                }
            }
        }

        // Then
        #expect(self.samples(registry, "gossamer_parallel_total").map(\.value) == [80_000])
        #expect(self.samples(registry, "gossamer_parallel_sizes_count").map(\.value) == [80_000])
    }
}
