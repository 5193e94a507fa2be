// SimBench: the gossip simulator's figures for the benchmark table. For N = 100, 1,000 (and 10,000 when
// SIM_MAX >= 10000) members and 0 %, 5 %, 10 % datagram loss, one `SimulationReport` run each: seconds and
// gossip rounds until a broadcast reached every member, seconds until the first and until every survivor marked
// a crashed member dead, false positives per member-hour over a quiet window, and datagrams per member per second.
//
//   swift run -c release SimBench                 # N = 100 and 1,000: about 30 s
//   SIM_MAX=10000 swift run -c release SimBench   # adds N = 10,000: ~10 GB of memory and many minutes
//
// Everything runs in virtual time in one process (no sockets); each run is bounded by the report's own timeouts
// (one minute of virtual time for dissemination, two for detection).
//
// Environment:
//   SIM_MAX    largest N to run (default 1000; sizes are 100, 1000, 10000 up to this)
//   SIM_SIZES  explicit sizes instead, e.g. "100 500" (each >= 3, at most 10000)
//   SIM_LOSS   loss probabilities in percent (default "0 5 10")
//   SIM_QUIET  seconds of virtual quiet time observed for false positives (default 120: 3.3 member-hours at
//              N=100, 33 at N=1,000)
//   SIM_SEED   seed of every run (default 1)

import GossipCore
import TestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

func environment(_ name: String) -> String? {
    guard let raw = getenv(name) else { return nil }
    let value = String(cString: raw).trimmingCharacters(in: " ")
    return value.isEmpty ? nil : value
}

/// Writes a line to standard error (progress notes stay out of the table on standard output).
func printError(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
}

func fail(_ message: String) -> Never {
    printError("SimBench: \(message)")
    exit(2)
}

func integers(_ name: String, default fallback: [Int], range: ClosedRange<Int>) -> [Int] {
    guard let text = environment(name) else { return fallback }
    let values = text.split(whereSeparator: { $0 == " " || $0 == "," }).map { Int($0) }
    guard !values.isEmpty, values.allSatisfy({ $0.map(range.contains) ?? false }) else {
        fail("\(name) must be integers in \(range.lowerBound)...\(range.upperBound), not '\(text)'")
    }
    return values.compactMap { $0 }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        var slice = Substring(self)
        while slice.first == set { slice.removeFirst() }
        while slice.last == set { slice.removeLast() }
        return String(slice)
    }
}

func wallSeconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// `value` with one decimal.
func tenths(_ value: Double) -> String {
    let scaled = Int((value * 10).rounded())
    return "\(scaled / 10).\(scaled % 10)"
}

/// Peak resident set of this process in MiB (Linux: VmHWM), or nil.
func peakResidentMiB() -> Double? {
    guard let file = fopen("/proc/self/status", "r") else { return nil }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(decoding: line.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.hasPrefix("VmHWM:") {
            let digits = text.split(separator: " ").dropFirst().first.flatMap { Double($0) }
            return digits.map { $0 / 1024 }
        }
    }
    return nil
}

let maxSize = integers("SIM_MAX", default: [1_000], range: 3...10_000)[0]
let sizes = integers("SIM_SIZES", default: [100, 1_000, 10_000].filter { $0 <= maxSize }, range: 3...10_000)
let lossPercents = integers("SIM_LOSS", default: [0, 5, 10], range: 0...90)
let quietSeconds = integers("SIM_QUIET", default: [120], range: 1...3_600)[0]
let seed = UInt64(integers("SIM_SEED", default: [1], range: 0...Int(Int32.max))[0])

let settings = SWIM.Settings.lan
print("SimBench: SWIM simulator, `lan` settings (probe \(settings.probeInterval), gossip \(settings.gossipInterval), suspicion multiplier \(settings.suspicionMult)), seed \(seed), quiet window \(quietSeconds) s")
print("sizes \(sizes.map(String.init).joined(separator: ", ")); loss \(lossPercents.map { "\($0)%" }.joined(separator: ", "))")
print("")

var reports: [SimulationReport] = []
let clock = ContinuousClock()
for size in sizes {
    for loss in lossPercents {
        let started = clock.now
        let report = SimulationReport.run(
            memberCount: size,
            lossProbability: Double(loss) / 100,
            settings: settings,
            seed: seed,
            quietPeriod: .seconds(quietSeconds)
        )
        let elapsed = wallSeconds(clock.now - started)
        reports.append(report)
        var note = "N=\(size) loss=\(loss)%: \(tenths(elapsed)) s wall"
        if let peak = peakResidentMiB() { note += ", peak RSS \(Int(peak)) MiB" }
        printError("  \(note)")
    }
}

print(SimulationReport.markdownTable(reports))
print("")
let observed = reports.map { "N=\($0.memberCount) \(Int(($0.lossProbability * 100).rounded()))%: \(tenths($0.memberHoursObserved))" }
print("member-hours observed for false positives: \(observed.joined(separator: ", "))")
print("dissemination: one broadcast until every other member delivered it (rounds = seconds / gossip interval);")
print("first detection / all survivors: from a crash until the first / every survivor marked the member dead;")
print("false positives: healthy members declared dead during the quiet window and detection, per member-hour;")
print("'—' means not reached within the report's timeout (60 s dissemination, 120 s detection).")
