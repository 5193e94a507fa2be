import Metrics
import Monitor
import Testing

@Suite struct PrometheusTextTests {
    @Test func test_render_countersAndGauges_helpTypeAndOrderedLines() {
        // Given: families and series out of order.
        let families = [
            MetricFamily(
                name: "gossamer_requests_total",
                help: "Requests served.",
                kind: .counter,
                series: [
                    MetricSeries(labels: ["route": "/v1/kv", "code": "200"], value: .scalar(12)),
                    MetricSeries(labels: ["route": "/v1/kv", "code": "404"], value: .scalar(1)),
                    MetricSeries(labels: ["code": "200", "route": "/health"], value: .scalar(3)),
                ]
            ),
            MetricFamily(
                name: "gossamer_disk_used_ratio", help: "Used share of the disk.", kind: .gauge,
                series: [
                    MetricSeries(labels: ["mount": "/"], value: .scalar(0.25))
                ]),
        ]

        // When
        let output = PrometheusText.render(families)

        // Then
        #expect(
            output.text == """
                # HELP gossamer_disk_used_ratio Used share of the disk.
                # TYPE gossamer_disk_used_ratio gauge
                gossamer_disk_used_ratio{mount="/"} 0.25
                # HELP gossamer_requests_total Requests served.
                # TYPE gossamer_requests_total counter
                gossamer_requests_total{code="200",route="/health"} 3
                gossamer_requests_total{code="200",route="/v1/kv"} 12
                gossamer_requests_total{code="404",route="/v1/kv"} 1

                """
        )
        #expect(output.rejected.isEmpty)
    }

    @Test func test_render_histogram_cumulativeBucketsThenInfSumAndCount() {
        // Given
        let registry = MetricsRegistry()
        registry.describe("gossamer_request_duration_seconds", help: "Request latency.")
        let timer = Timer(label: "gossamer_request_duration_seconds", dimensions: [("route", "kv")], factory: registry)
        timer.recordMilliseconds(3)
        timer.recordMilliseconds(30)
        timer.recordSeconds(20)

        // When
        let output = PrometheusText.render(
            registry.families().filter { $0.name == "gossamer_request_duration_seconds" })

        // Then
        #expect(
            output.text == """
                # HELP gossamer_request_duration_seconds Request latency.
                # TYPE gossamer_request_duration_seconds histogram
                gossamer_request_duration_seconds_bucket{route="kv",le="0.005"} 1
                gossamer_request_duration_seconds_bucket{route="kv",le="0.01"} 1
                gossamer_request_duration_seconds_bucket{route="kv",le="0.025"} 1
                gossamer_request_duration_seconds_bucket{route="kv",le="0.05"} 2
                gossamer_request_duration_seconds_bucket{route="kv",le="0.1"} 2
                gossamer_request_duration_seconds_bucket{route="kv",le="0.25"} 2
                gossamer_request_duration_seconds_bucket{route="kv",le="0.5"} 2
                gossamer_request_duration_seconds_bucket{route="kv",le="1"} 2
                gossamer_request_duration_seconds_bucket{route="kv",le="2.5"} 2
                gossamer_request_duration_seconds_bucket{route="kv",le="5"} 2
                gossamer_request_duration_seconds_bucket{route="kv",le="10"} 2
                gossamer_request_duration_seconds_bucket{route="kv",le="+Inf"} 3
                gossamer_request_duration_seconds_sum{route="kv"} 20.033
                gossamer_request_duration_seconds_count{route="kv"} 3

                """
        )
    }

    @Test func test_render_labelValues_escapesBackslashQuoteAndNewline() {
        // Given
        let family = MetricFamily(
            name: "gossamer_paths", help: "Paths.", kind: .gauge,
            series: [
                MetricSeries(labels: ["path": #"C:\dir "quoted""# + "\nnext"], value: .scalar(1))
            ])

        // When
        let output = PrometheusText.render([family])

        // Then
        #expect(output.text.contains(#"gossamer_paths{path="C:\\dir \"quoted\"\nnext"} 1"#))
    }

    @Test func test_render_helpText_escapesBackslashAndNewline() {
        // Given
        let family = MetricFamily(
            name: "gossamer_x", help: "a \\ b\nc \"d\"", kind: .gauge,
            series: [
                MetricSeries(value: .scalar(1))
            ])

        // When
        let output = PrometheusText.render([family])

        // Then: quotes are not escaped in help text.
        #expect(output.text.hasPrefix(#"# HELP gossamer_x a \\ b\nc "d""# + "\n"))
    }

    @Test func test_render_noHelp_usesTheNameAsHelp() {
        // Given
        let family = MetricFamily(name: "gossamer_x", kind: .gauge, series: [MetricSeries(value: .scalar(1))])

        // When
        let output = PrometheusText.render([family])

        // Then
        #expect(output.text == "# HELP gossamer_x gossamer_x\n# TYPE gossamer_x gauge\ngossamer_x 1\n")
    }

    @Test func test_render_specialValues_writtenAsGoParses() {
        // Given
        let family = MetricFamily(
            name: "gossamer_x", help: "x", kind: .gauge,
            series: [
                MetricSeries(labels: ["v": "a"], value: .scalar(.infinity)),
                MetricSeries(labels: ["v": "b"], value: .scalar(-.infinity)),
                MetricSeries(labels: ["v": "c"], value: .scalar(.nan)),
                MetricSeries(labels: ["v": "d"], value: .scalar(0.00001)),
                MetricSeries(labels: ["v": "e"], value: .scalar(-0.0)),
                MetricSeries(labels: ["v": "f"], value: .scalar(1e20)),
            ])

        // When
        let lines = PrometheusText.render([family]).text.split(separator: "\n").dropFirst(2)

        // Then
        #expect(
            Array(lines) == [
                #"gossamer_x{v="a"} +Inf"#, #"gossamer_x{v="b"} -Inf"#, #"gossamer_x{v="c"} NaN"#,
                #"gossamer_x{v="d"} 1e-05"#, #"gossamer_x{v="e"} 0"#, #"gossamer_x{v="f"} 1e+20"#,
            ]
        )
    }

    @Test func test_render_invalidMetricName_isRejectedAndTheRestServed() {
        // Given
        let families = [
            MetricFamily(name: "gossamer.dotted", kind: .gauge, series: [MetricSeries(value: .scalar(1))]),
            MetricFamily(name: "gossamer_ok", help: "ok", kind: .gauge, series: [MetricSeries(value: .scalar(2))]),
            MetricFamily(name: "gossamer_ok", help: "again", kind: .gauge, series: [MetricSeries(value: .scalar(3))]),
        ]

        // When
        let output = PrometheusText.render(families)

        // Then
        #expect(output.text == "# HELP gossamer_ok ok\n# TYPE gossamer_ok gauge\ngossamer_ok 2\n")
        #expect(
            output.rejected == [
                PrometheusText.Rejection(metric: "gossamer.dotted", reason: "invalid metric name"),
                PrometheusText.Rejection(metric: "gossamer_ok", reason: "duplicate metric name"),
            ]
        )
    }

    @Test func test_render_invalidLabelNames_rejectTheirSeriesOnly() {
        // Given
        let families = [
            MetricFamily(
                name: "gossamer_g", help: "g", kind: .gauge,
                series: [
                    MetricSeries(labels: ["mount-point": "/"], value: .scalar(1)),
                    MetricSeries(labels: ["__reserved": "x"], value: .scalar(2)),
                    MetricSeries(labels: ["mount": "/"], value: .scalar(3)),
                ]),
            MetricFamily(
                name: "gossamer_h", help: "h", kind: .histogram,
                series: [
                    MetricSeries(
                        labels: ["le": "1"],
                        value: .histogram(HistogramValue(bounds: [], cumulativeCounts: [], sum: 0, count: 0)))
                ]),
        ]

        // When
        let output = PrometheusText.render(families)

        // Then
        #expect(output.text == "# HELP gossamer_g g\n# TYPE gossamer_g gauge\ngossamer_g{mount=\"/\"} 3\n")
        #expect(
            output.rejected.map(\.description) == [
                "gossamer_g: invalid label name 'mount-point'",
                "gossamer_g: invalid label name '__reserved'",
                "gossamer_h: label 'le' is reserved for histogram buckets",
            ]
        )
    }

    @Test func test_render_valueNotFittingTheType_isRejected() {
        // Given
        let histogram = MetricValue.histogram(HistogramValue(bounds: [1], cumulativeCounts: [0], sum: 0, count: 0))
        let families = [
            MetricFamily(name: "gossamer_c_total", help: "c", kind: .counter, series: [MetricSeries(value: histogram)]),
            MetricFamily(name: "gossamer_h", help: "h", kind: .histogram, series: [MetricSeries(value: .scalar(1))]),
        ]

        // When
        let output = PrometheusText.render(families)

        // Then
        #expect(output.text.isEmpty)
        #expect(
            output.rejected.map(\.description) == [
                "gossamer_c_total: a counter series needs a scalar value",
                "gossamer_h: a histogram series needs a histogram value",
            ]
        )
    }

    @Test(arguments: [
        ("gossamer_up", true), ("_x", true), ("a:b:c", true), ("x9", true),
        ("", false), ("9x", false), ("gossamer-up", false), ("gossamer up", false), ("gossamér", false),
    ])
    func test_isValidMetricName_names_matchThePrometheusPattern(name: String, valid: Bool) {
        #expect(PrometheusText.isValidMetricName(name) == valid)
    }

    @Test(arguments: [
        ("mount", true), ("_x", true), ("le", true),
        ("", false), ("a:b", false), ("9x", false), ("__name__", false), ("a-b", false),
    ])
    func test_isValidLabelName_names_matchThePrometheusPattern(name: String, valid: Bool) {
        #expect(PrometheusText.isValidLabelName(name) == valid)
    }

    @Test func test_render_registryRenderedTwice_isIdentical() {
        // Given
        let registry = MetricsRegistry()
        for index in 0..<50 {
            Counter(
                label: "gossamer_c_total", dimensions: [("k", "\(index)"), ("z", "\(index % 3)")], factory: registry
            )
            .increment(by: index)
        }

        // When
        let first = PrometheusText.render(registry.families()).text
        let second = PrometheusText.render(registry.families()).text

        // Then
        #expect(first == second)
        #expect(
            first.contains(
                "# TYPE gossamer_metrics_series_dropped_total counter\ngossamer_metrics_series_dropped_total 0\n"))
    }
}
