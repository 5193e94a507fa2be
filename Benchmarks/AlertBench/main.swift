// AlertBench: the alert engine's cost on one agent, the issue's benchmark: "1,000 rules over 10,000 series evaluated
// on one agent: evaluation time per round and CPU share. Goal: one round of 1,000 rules ≤ 50 ms."
//
//   swift run -c release AlertBench                                   # 50 rounds, 1,000 rules, 10,000 series
//   swift run -c release AlertBench --rounds 200 --rules 2000 --series 20000
//   swift run -c release AlertBench --hot-percent 0.5                  # a calmer day: 0.5% of series over 0.9
//
// Setup: a `MetricsRegistry` holds `--series` gauges, 100 per metric name (`gossamer_bench_mNNN_ratio`), labelled
// `instance` (100 values), `zone` (4 values) and, on every other metric, `route` (5 values). Values sit in 0…0.8 with
// a little noise each round. Rounds are grouped in windows of three; in each window a pseudo-random `--hot-percent`
// of the series (default 5%) is "hot" (0.93…0.99), so alerts keep going pending, firing and resolving and annotations
// are rendered. 5% of 10,000 series over threshold at once is an alert storm, not a quiet day: with the rule mix below
// it keeps about 1,500 alerts pending or firing and about 1,000 transitions per round.
//
// Rules (`--rules`, spread over the metrics): 50% per-series (`aggregate: none`, `> 0.9`, recover 0.85) with no
// matcher, a `zone` matcher or a `zone` + `route` matcher; 20% `max` per zone; 20% `sum` per zone just above the
// quiet sum (so one hot series tips it); 10% `avg` over the whole metric below a floor that never trips. A quarter
// of the rules have `for: 30s`, a quarter `for: 15s`, the rest fire at once. Every rule has labels and two
// annotation templates.
//
// One round, as the agent runs it every 15 s: `registry.samples()` (read every metric), `evaluator.evaluate(…)` with
// `now` 15 s after the previous round (every rule is due), then `JSONEncoder().encode(state)` (the agent persists the
// state each round). The values are perturbed between rounds, outside the timings. One warm-up round is not counted.
// The run stops after `--rounds` rounds or 60 s, whichever comes first.
//
// Output: p50/p99/max milliseconds per phase and per round, process CPU time per round, the CPU share at the default
// 15 s interval (p50 round ÷ 15 s), transitions per round, and a final greppable line:
//   RESULT round_p50_ms=… round_p99_ms=… eval_p50_ms=… cpu_share_pct=… goal_ms=50

import CoreMetrics
import Foundation
import Monitor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// MARK: - Arguments

struct Options {
    var rounds = 50
    var rules = 1_000
    var series = 10_000
    /// Percentage of series over the threshold in each window of three rounds.
    var hotPercent = 5.0
    /// Stop once this much wall time was spent in rounds.
    var budget: Duration = .seconds(60)
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("AlertBench: \(message)\n".utf8))
    exit(2)
}

func parseOptions(_ arguments: [String]) -> Options {
    var options = Options()
    var rest = arguments.dropFirst()
    while let flag = rest.popFirst() {
        if flag == "--hot-percent" {
            guard let text = rest.popFirst(), let value = Double(text), (0...100).contains(value) else {
                fail("--hot-percent needs a number in 0...100")
            }
            options.hotPercent = value
            continue
        }
        guard ["--rounds", "--rules", "--series"].contains(flag) else {
            fail("unknown argument '\(flag)'; use --rounds N, --rules N, --series N, --hot-percent P")
        }
        guard let text = rest.popFirst(), let value = Int(text), value > 0, value <= 1_000_000 else {
            fail("\(flag) needs an integer in 1...1000000")
        }
        switch flag {
        case "--rounds": options.rounds = value
        case "--rules": options.rules = value
        default: options.series = value
        }
    }
    return options
}

// MARK: - Deterministic randomness

/// SplitMix64: a seeded generator so every run sees the same series and rules.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        self.state &+= 0x9e37_79b9_7f4a_7c15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

// MARK: - Workload

let seriesPerMetric = 100
let zones = 4
let routes = 5
let hotRounds = 3  // the hot set changes every three rounds
let interval: Duration = .seconds(15)

/// One gauge of the registry and how its value moves.
struct BenchSeries {
    var metric: Int
    var instance: Int
    var handler: any RecorderHandler
    var base: Double
    var seed: UInt64

    /// Whether the series is hot at `round`: a pseudo-random draw per series and window of ``hotRounds`` rounds.
    func isHot(_ round: Int, percent: Double) -> Bool {
        var draw = SplitMix64(state: self.seed ^ UInt64(round / hotRounds) &* 0x2545_f491_4f6c_dd1d)
        return Double(draw.next() % 10_000) < percent * 100
    }
}

func metricName(_ metric: Int) -> String {
    "gossamer_bench_m\(String(metric + 1000).dropFirst())_ratio"
}

func zone(_ instance: Int) -> String { "zone-\(instance % zones)" }
func route(_ instance: Int) -> String { "/api/r\(instance % routes)" }

func makeSeries(count: Int, registry: MetricsRegistry, rng: inout SplitMix64) -> [BenchSeries] {
    (0..<count).map { index in
        let metric = index / seriesPerMetric
        let instance = index % seriesPerMetric
        var dimensions = [("instance", "node-\(instance)"), ("zone", zone(instance))]
        if metric.isMultiple(of: 2) {
            dimensions.append(("route", route(instance)))
        }
        return BenchSeries(
            metric: metric,
            instance: instance,
            handler: registry.makeRecorder(label: metricName(metric), dimensions: dimensions, aggregate: false),
            base: Double.random(in: 0.05..<0.8, using: &rng),
            seed: rng.next()
        )
    }
}

/// Sets every gauge for `round`: the base value with noise, or a hot value during a hot spell.
func perturb(_ series: [BenchSeries], round: Int, hotPercent: Double, rng: inout SplitMix64) {
    for item in series {
        let value =
            item.isHot(round, percent: hotPercent)
            ? Double.random(in: 0.93..<0.99, using: &rng)
            : max(0, item.base + Double.random(in: -0.04..<0.04, using: &rng))
        item.handler.record(value)
    }
}

func makeRules(count: Int, metrics: Int, series: [BenchSeries]) -> [AlertRule] {
    // The quiet sum per (metric, zone), to put the sum thresholds just above it.
    var quietSum: [Int: Double] = [:]
    for item in series {
        quietSum[item.metric * zones + item.instance % zones, default: 0] += item.base
    }
    return (0..<count).map { index in
        let metric = index % metrics
        let variant = index / metrics  // distinct matchers for rules sharing a metric
        let instance = variant % seriesPerMetric
        let forDuration: Duration =
            switch index % 4 {
            case 0: .seconds(30)
            case 1: .seconds(15)
            default: .zero
            }
        let annotations = [
            "summary": "{{ $labels.instance }} in {{ $labels.zone }} at {{ $value }}",
            "description": "bench rule \(index) on \(metricName(metric)) crossed its threshold",
        ]
        let labels = ["team": "team-\(index % 5)", "bench": "true"]
        let severity: AlertRule.Severity = index.isMultiple(of: 3) ? .critical : .warning
        let name = "bench-\(index)"
        switch index % 10 {
        case 0..<5:
            var match: [String: String] = [:]
            if index % 3 >= 1 { match["zone"] = zone(instance) }
            if index % 3 == 2, metric.isMultiple(of: 2) { match["route"] = route(instance) }
            return AlertRule(
                name: name, metric: metricName(metric), match: match, aggregate: .none, op: .greaterThan,
                threshold: 0.9, recover: 0.85, for: forDuration, severity: severity, labels: labels,
                annotations: annotations)
        case 5, 6:
            return AlertRule(
                name: name, metric: metricName(metric), match: ["zone": zone(instance)], aggregate: .max,
                op: .greaterThan, threshold: 0.9, recover: 0.85, for: forDuration, severity: severity, labels: labels,
                annotations: annotations)
        case 7, 8:
            let quiet = quietSum[metric * zones + instance % zones] ?? 0
            return AlertRule(
                name: name, metric: metricName(metric), match: ["zone": zone(instance)], aggregate: .sum,
                op: .greaterThan, threshold: quiet + 0.5, for: forDuration, severity: severity, labels: labels,
                annotations: annotations)
        default:
            return AlertRule(
                name: name, metric: metricName(metric), aggregate: .avg, op: .lessThan, threshold: 0.01,
                for: forDuration, severity: severity, labels: labels, annotations: annotations)
        }
    }
}

// MARK: - Measurement

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1e3 + Double(duration.components.attoseconds) / 1e15
}

/// This process' CPU time (user + system, all threads).
func processCPUTime() -> Duration {
    var spec = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &spec)
    return .seconds(spec.tv_sec) + .nanoseconds(spec.tv_nsec)
}

struct Percentiles {
    var p50: Double
    var p99: Double
    var max: Double

    /// Nearest-rank percentiles of `values` (not empty).
    init(_ values: [Double]) {
        let sorted = values.sorted()
        func rank(_ fraction: Double) -> Double {
            sorted[Swift.max(0, Int((fraction * Double(sorted.count)).rounded(.up)) - 1)]
        }
        self.p50 = rank(0.5)
        self.p99 = rank(0.99)
        self.max = sorted[sorted.count - 1]
    }
}

func format(_ value: Double, _ digits: Int = 2) -> String {
    String(format: "%.\(digits)f", value)
}

// MARK: - Run

let options = parseOptions(CommandLine.arguments)
let metricCount = (options.series + seriesPerMetric - 1) / seriesPerMetric
var settings = MetricsRegistry.Settings()
settings.maxSeriesPerMetric = seriesPerMetric
let registry = MetricsRegistry(settings: settings)
var rng = SplitMix64(state: 42)
let series = makeSeries(count: options.series, registry: registry, rng: &rng)
let rules = makeRules(count: options.rules, metrics: metricCount, series: series)
if let invalid = rules.first(where: { !$0.validate().isValid }) {
    fail("rule \(invalid.name) is invalid: \(invalid.validate().errors)")
}
let evaluator = AlertEvaluator()
let start = WallTime(millisecondsSinceEpoch: 1_700_000_000_000)

print(
    "AlertBench: \(rules.count) rules over \(series.count) series (\(metricCount) metrics),"
        + " \(options.hotPercent)% hot, up to \(options.rounds) rounds"
)

var state = AlertState()
var sampling: [Double] = []
var evaluation: [Double] = []
var encoding: [Double] = []
var totals: [Double] = []
var cpu: [Double] = []
var transitionCounts: [Int] = []
var moves: [String: Int] = [:]
var sampleCount = 0
var stateBytes = 0
var checksum = 0
let clock = ContinuousClock()
let runStart = clock.now

// Round 0 is the warm-up, not counted.
for round in 0...options.rounds {
    if round > 1, runStart.duration(to: clock.now) > options.budget {
        print("stopped after \(round - 1) rounds: the \(options.budget) budget is spent")
        break
    }
    perturb(series, round: round, hotPercent: options.hotPercent, rng: &rng)
    let now = start + interval * round

    let cpuBefore = processCPUTime()
    let t0 = clock.now
    let samples = registry.samples()
    let t1 = clock.now
    let (next, transitions) = evaluator.evaluate(rules: rules, samples: samples, now: now, state: state)
    let t2 = clock.now
    // As the agent saves it (AlertLog): the state's hand-written JSON, plus each transition's.
    var data = next.jsonText()
    for transition in transitions { data += transition.jsonText() }
    let t3 = clock.now
    let cpuAfter = processCPUTime()

    state = next
    checksum &+= data.utf8.count &+ samples.count
    guard round > 0 else { continue }
    sampling.append(milliseconds(t0.duration(to: t1)))
    evaluation.append(milliseconds(t1.duration(to: t2)))
    encoding.append(milliseconds(t2.duration(to: t3)))
    totals.append(milliseconds(t0.duration(to: t3)))
    cpu.append(milliseconds(cpuAfter - cpuBefore))
    transitionCounts.append(transitions.count)
    for transition in transitions {
        moves["\(transition.from.rawValue)→\(transition.to.rawValue)", default: 0] += 1
    }
    sampleCount = samples.count
    stateBytes = data.utf8.count
}

guard !totals.isEmpty else { fail("no round was measured") }

// MARK: - Report

let total = Percentiles(totals)
let sample = Percentiles(sampling)
let eval = Percentiles(evaluation)
let encode = Percentiles(encoding)
let cpuPerRound = Percentiles(cpu)
let intervalMilliseconds = milliseconds(interval)
let cpuShare = total.p50 / intervalMilliseconds * 100
let meanTransitions = Double(transitionCounts.reduce(0, +)) / Double(transitionCounts.count)

print("measured rounds: \(totals.count); samples per round: \(sampleCount); state JSON: \(stateBytes) bytes")
print("")
print("phase        p50 ms    p99 ms    max ms")
for (name, figures) in [("sampling", sample), ("evaluation", eval), ("encoding", encode), ("round", total)] {
    let padded = name.padding(toLength: 10, withPad: " ", startingAt: 0)
    let columns = [figures.p50, figures.p99, figures.max].map {
        format($0, 3).padding(toLength: 8, withPad: " ", startingAt: 0)
    }
    print("\(padded)   \(columns.joined(separator: "  "))")
}
print("")
print("process CPU per round: p50 \(format(cpuPerRound.p50, 3)) ms, max \(format(cpuPerRound.max, 3)) ms")
print("CPU share at a 15 s interval: \(format(cpuShare, 4))% of one core (p50 round / 15 s)")
print(
    "transitions per round: mean \(format(meanTransitions, 1)), max \(transitionCounts.max() ?? 0);"
        + " alerts at the end: \(state.alerts.count)"
)
print(
    "transitions by kind: " + moves.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
print(
    "goal: one round of \(rules.count) rules ≤ 50 ms: p50 \(total.p50 <= 50 ? "met" : "MISSED"),"
        + " p99 \(total.p99 <= 50 ? "met" : "MISSED")"
)
print("checksum \(checksum)")
print(
    "RESULT round_p50_ms=\(format(total.p50, 3)) round_p99_ms=\(format(total.p99, 3))"
        + " eval_p50_ms=\(format(eval.p50, 3)) cpu_share_pct=\(format(cpuShare, 4)) goal_ms=50"
)
