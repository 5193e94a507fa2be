// RedisBench: registry lookups through our own Redis client (`RedisCache.RedisClient`), for bench/registry.sh.
// TASKS concurrent tasks each send pipelined batches of PIPELINE `HGETALL gossamer:svc:svc-<12-digit n>` (n random in
// 0..<SERVICES) through one client with CONNECTIONS connections, for DURATION seconds after a WARMUP, and print one
// JSON line on stdout: lookups/s, and p50/p99/max of the time per pipelined batch (from just before `pipeline(_:)`
// until its replies are back, so it includes the wait for a free connection: at most CONNECTIONS batches are in
// flight), and `cpu_us_per_lookup`: this process's CPU time (user + system, all threads, from getrusage) in the
// counted window divided by the lookups counted. On a shared machine that figure is far steadier than the rate.
//
// How it compares with `redis-benchmark -c 64 -P 16 -r 50 HGETALL gossamer:svc:svc-__rand_int__` (bench/registry.sh):
// - The same work per lookup: the same keys, one HGETALL each, every reply read and parsed in full. redis-benchmark
//   builds a hiredis reply tree per reply and frees it; here every reply becomes a `RedisValue` (one `[UInt8]` per
//   field and value) that the task inspects and frees. Nothing is cached or skipped.
// - The same offered load: 64 concurrent callers, each with a 16-command pipeline outstanding. redis-benchmark
//   gives each caller its own connection; our client multiplexes the callers onto CONNECTIONS connections (8 in
//   bench/registry.sh), which is how the client is meant to be used, and the wait for a connection counts in the
//   batch time. Fewer connections do not make the client cheaper per lookup (2, 4, 8 and 16 measured within noise),
//   and they make redis-server's share slightly cheaper, as in production.
// - redis-benchmark counts a request count over its whole run (connects included); RedisBench counts the lookups of
//   batches that start in the DURATION window after a WARMUP, over the time until the last of them returns.
//
//   swift build -c release --product RedisBench --scratch-path .build-release
//   .build-release/release/RedisBench --redis redis://127.0.0.1:6379/0 --duration 10
//
// Options (all but --redis have defaults):
//   --redis URL         the server (redis://host:port/db)
//   --duration S        measured seconds (default 10, 1-600)
//   --warmup S          seconds of the same load before, not counted (default 1, 0-60)
//   --tasks N           concurrent tasks (default 64)
//   --pipeline N        HGETALLs per batch (default 16)
//   --connections N     connections (and pool threads) of the client (default 8)
//   --services N        keys svc-000000000000 .. svc-<N-1> (default 50)
//   --seed N            random key choice (default 1)
//
// Every reply is checked: an error or a thrown RedisError counts under "errors" (the run stops after 1,000 of
// them), an empty hash (missing key) under "empty". The run is bounded by DURATION + WARMUP plus one command
// timeout (2 s) per task.

import Foundation
import RedisCache

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct Options: Sendable {
    var redis = ""
    var duration = 10
    var warmup = 1
    var tasks = 64
    var pipeline = 16
    var connections = 8
    var services = 50
    var seed: UInt64 = 1
}

/// What one task measured in the counted window.
struct TaskResult: Sendable {
    var lookups = 0
    var batchMilliseconds: [Double] = []
    var errors = 0
    var empty = 0
    var firstError: String?
}

func fail(_ message: String) -> Never {
    var text = "RedisBench: \(message)\n"
    text.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
    exit(2)
}

func parseOptions(_ arguments: [String]) -> Options {
    var options = Options()
    var index = 0
    func number(_ name: String, _ text: String, _ range: ClosedRange<Int>) -> Int {
        guard let value = Int(text), range.contains(value) else {
            fail("\(name) must be an integer in \(range.lowerBound)...\(range.upperBound), not '\(text)'")
        }
        return value
    }
    while index < arguments.count {
        let name = arguments[index]
        guard index + 1 < arguments.count else { fail("\(name) needs a value") }
        let value = arguments[index + 1]
        switch name {
        case "--redis": options.redis = value
        case "--duration": options.duration = number(name, value, 1...600)
        case "--warmup": options.warmup = number(name, value, 0...60)
        case "--tasks": options.tasks = number(name, value, 1...4096)
        case "--pipeline": options.pipeline = number(name, value, 1...1024)
        case "--connections": options.connections = number(name, value, 1...256)
        case "--services": options.services = number(name, value, 1...1_000_000)
        case "--seed": options.seed = UInt64(number(name, value, 0...Int(Int32.max)))
        default: fail("unknown option \(name)")
        }
        index += 2
    }
    if options.redis.isEmpty { fail("--redis URL is required") }
    return options
}

/// `gossamer:svc:svc-` and the number zero-padded to 12 digits, the names bench/lib/registrybench.py registers
/// (so that redis-benchmark's `__rand_int__` with `-r N` hits the same keys).
func serviceKey(_ number: Int) -> String {
    let digits = String(number)
    return "gossamer:svc:svc-" + String(repeating: "0", count: max(0, 12 - digits.count)) + digits
}

/// SplitMix64: a small deterministic generator per task (no shared state).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1e3 + Double(duration.components.attoseconds) / 1e15
}

/// Nearest-rank percentile of an ascending array (0 if empty), as bench/lib/benchcommon.py computes it.
func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(sorted.count - 1, max(0, rank))]
}

/// One task's loop: batches until `end`; only batches that start at or after `countFrom` are counted.
func lookupLoop(client: RedisClient, keys: [String], options: Options, task: Int,
                countFrom: ContinuousClock.Instant, end: ContinuousClock.Instant) async -> TaskResult {
    var rng = SplitMix64(state: options.seed &* 1_000_003 &+ UInt64(task))
    var result = TaskResult()
    while true {
        let start = ContinuousClock.now
        if start >= end || result.errors >= 1_000 { break }
        let batch = (0..<options.pipeline).map { _ in ["HGETALL", keys[Int(rng.next(upperBound: UInt64(keys.count)))]] }
        let counted = start >= countFrom
        do throws(RedisError) {
            let replies = try await client.pipeline(batch)
            let elapsed = milliseconds(start.duration(to: .now))
            guard counted else { continue }
            result.batchMilliseconds.append(elapsed)
            for reply in replies {
                switch reply {
                case .array(let fields):
                    result.lookups += 1
                    if fields.isEmpty { result.empty += 1 }
                default:
                    result.errors += 1
                    if result.firstError == nil { result.firstError = "unexpected reply \(reply)" }
                }
            }
        } catch {
            if counted {
                result.errors += 1
                if result.firstError == nil { result.firstError = error.message }
            }
        }
    }
    return result
}

/// The JSON line printed on stdout.
struct Report: Encodable {
    var client = "RedisCache.RedisClient"
    var tasks: Int
    var pipeline: Int
    var connections: Int
    var services: Int
    var durationS: Double
    var warmupS: Int
    var lookups: Int
    var batches: Int
    var lookupsPerS: Double
    var batchP50Ms: Double
    var batchP99Ms: Double
    var batchMaxMs: Double
    var errors: Int
    var empty: Int
    var firstError: String?
    /// This process's CPU time (user + system, all threads) in the counted window, per lookup, µs.
    var cpuUsPerLookup: Double
}

/// CPU seconds (user + system) this process has used so far.
func processCPUSeconds() -> Double {
    var usage = rusage()
    #if canImport(Glibc)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

func rounded(_ value: Double, _ digits: Double) -> Double {
    let scale = pow(10, digits)
    return (value * scale).rounded() / scale
}

func runBenchmark(_ options: Options) async -> Int32 {
    let endpoint: RedisEndpoint
    do throws(RedisError) {
        endpoint = try RedisEndpoint(url: options.redis)
    } catch {
        fail("bad --redis: \(error.message)")
    }
    let client = RedisClient(endpoint: endpoint, connections: options.connections)
    do throws(RedisError) {
        try await client.connect()
    } catch {
        await client.shutdown()
        fail("cannot reach \(endpoint): \(error.message)")
    }
    let keys = (0..<options.services).map(serviceKey)
    let begin = ContinuousClock.now
    let countFrom = begin + .seconds(options.warmup)
    let end = countFrom + .seconds(options.duration)
    // The CPU clock is read when the counted window opens (by a task that sleeps until then) and after the last
    // task ends.
    let cpuAtCountFrom = Task { () -> Double in
        try? await Task.sleep(until: countFrom, clock: .continuous)
        return processCPUSeconds()
    }
    let results = await withTaskGroup(of: TaskResult.self) { group in
        for task in 0..<options.tasks {
            group.addTask {
                await lookupLoop(client: client, keys: keys, options: options, task: task, countFrom: countFrom, end: end)
            }
        }
        var all: [TaskResult] = []
        for await result in group { all.append(result) }
        return all
    }
    let measured = milliseconds(countFrom.duration(to: .now)) / 1e3
    let cpuSeconds = processCPUSeconds() - (await cpuAtCountFrom.value)
    await client.shutdown()

    let lookups = results.reduce(0) { $0 + $1.lookups }
    let errors = results.reduce(0) { $0 + $1.errors }
    let empty = results.reduce(0) { $0 + $1.empty }
    let batches = results.flatMap(\.batchMilliseconds).sorted()
    let firstError = results.compactMap(\.firstError).first
    let report = Report(
        tasks: options.tasks, pipeline: options.pipeline, connections: options.connections, services: options.services,
        durationS: rounded(measured, 3), warmupS: options.warmup, lookups: lookups, batches: batches.count,
        lookupsPerS: rounded(Double(lookups) / max(measured, 1e-9), 1),
        batchP50Ms: rounded(percentile(batches, 50), 3), batchP99Ms: rounded(percentile(batches, 99), 3),
        batchMaxMs: rounded(batches.last ?? 0, 3), errors: errors, empty: empty, firstError: firstError,
        cpuUsPerLookup: rounded(cpuSeconds / Double(max(lookups, 1)) * 1e6, 2))
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.outputFormatting = [.sortedKeys]
    guard let json = try? encoder.encode(report), let line = String(data: json, encoding: .utf8) else {
        fail("cannot encode the report")
    }
    print(line)
    return errors == 0 ? 0 : 1
}

let status = await runBenchmark(parseOptions(Array(CommandLine.arguments.dropFirst())))
exit(status)
