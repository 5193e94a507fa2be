import Foundation
import Testing

@testable import Monitor

// MARK: - Parsers

@Suite struct SystemProcParsersTests {
    @Test func test_cpuTimes_fullLine_sumsEightColumnsAndCountsIowaitAsIdle() {
        // Given: user nice system idle iowait irq softirq steal guest guest_nice
        let text = """
            cpu  100 5 50 800 20 3 2 10 40 7
            cpu0 50 2 25 400 10 1 1 5 20 3
            intr 12345 0 0
            """

        // When
        let times = ProcParsers.cpuTimes(stat: text)

        // Then: guest and guest_nice are already inside user and nice
        #expect(times == ProcParsers.CPUTimes(total: 990, idle: 820))
    }

    @Test func test_cpuTimes_oldKernelWithFourColumns_isRead() {
        #expect(ProcParsers.cpuTimes(stat: "cpu 1 2 3 4\n") == ProcParsers.CPUTimes(total: 10, idle: 4))
    }

    @Test(arguments: ["", "intr 1 2 3\n", "cpu 1 2 x 4\n", "cpu 1 2\n", "cpu0 1 2 3 4\n"])
    func test_cpuTimes_malformed_isNil(text: String) {
        #expect(ProcParsers.cpuTimes(stat: text) == nil)
    }

    @Test func test_processCPUTicks_plainComm_addsUtimeAndStime() {
        // Given: utime is field 14 (250), stime field 15 (50)
        let text = "1234 (gossamer) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 7 8 20 0 4 0 12345 1000 50\n"

        // When / Then
        #expect(ProcParsers.processCPUTicks(stat: text) == 300)
    }

    @Test func test_processCPUTicks_commWithSpacesAndParentheses_countsFromLastParenthesis() {
        // Given: a name that looks like the end of the comm field followed by fields
        let text = "77 (a) S 9 9 (x y)) R 1 77 77 0 -1 0 0 0 0 0 1200 34 0 0 20 0 1 0 99 0 0\n"

        // When / Then
        #expect(ProcParsers.processCPUTicks(stat: text) == 1234)
    }

    @Test(arguments: ["", "1234 gossamer S 1 2 3", "1 (x) S 1 2 3 4 5\n", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 a b 0 0\n"])
    func test_processCPUTicks_malformed_isNil(text: String) {
        #expect(ProcParsers.processCPUTicks(stat: text) == nil)
    }

    @Test func test_memoryInfo_withMemAvailable_returnsBytes() {
        // Given
        let text = """
            MemTotal:       16384000 kB
            MemFree:         1000000 kB
            MemAvailable:    8192000 kB
            Buffers:          100000 kB
            Cached:          5000000 kB
            HugePages_Total:       0
            """

        // When / Then
        #expect(
            ProcParsers.memoryInfo(text)
                == ProcParsers.MemoryInfo(totalBytes: 16_384_000 * 1024, availableBytes: 8_192_000 * 1024))
    }

    @Test func test_memoryInfo_withoutMemAvailable_estimatesFromFreeBuffersAndCached() {
        // Given: a pre-3.14 kernel
        let text = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 200 kB\n"

        // When / Then
        #expect(ProcParsers.memoryInfo(text) == ProcParsers.MemoryInfo(totalBytes: 1_024_000, availableBytes: 358_400))
    }

    @Test func test_memoryInfo_withoutMemTotal_isNil() {
        #expect(ProcParsers.memoryInfo("MemAvailable: 10 kB\n") == nil)
        #expect(ProcParsers.memoryInfo("MemTotal: 10 kB\n") == nil)
    }

    @Test func test_residentPages_readsSecondField() {
        #expect(ProcParsers.residentPages(statm: "5000 1200 300 10 0 900 0\n") == 1200)
        #expect(ProcParsers.residentPages(statm: "5000\n") == nil)
        #expect(ProcParsers.residentPages(statm: "5000 -1\n") == nil)
    }

    @Test func test_networkDevices_headersAndOldFormat_parsesEachInterfaceInOrder() {
        // Given: the two header lines, a normal line, an old-style line without space after the colon, garbage
        let text = """
            Inter-|   Receive                                                |  Transmit
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
                lo:  123456     100    0    0    0     0          0         0   123456     100    0    0    0     0       0          0
              eth0:9876543210 5000    0    0    0     0          0         0 1234567 4000    0    0    0     0       0          0
              bad0: 1 2 3
            """

        // When
        let devices = ProcParsers.networkDevices(text)

        // Then
        #expect(
            devices == [
                ProcParsers.InterfaceBytes(device: "lo", receiveBytes: 123_456, transmitBytes: 123_456),
                ProcParsers.InterfaceBytes(device: "eth0", receiveBytes: 9_876_543_210, transmitBytes: 1_234_567),
            ])
    }

    static let mountinfo = """
        22 27 0:21 / /proc rw,relatime - proc proc rw
        27 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
        40 27 253:1 / /data rw,relatime shared:2 - ext4 /dev/vdb1 rw
        41 40 253:2 / /data/disk\\0402 rw,relatime shared:3 - xfs /dev/vdc1 rw
        42 27 0:40 / /database rw - tmpfs tmpfs rw
        """

    @Test(arguments: [
        ("/var/lib/gossamer", "/"),
        ("/data", "/data"),
        ("/data/gossamer", "/data"),
        ("/database/x", "/database"),
        ("/data/disk 2/gossamer", "/data/disk 2"),
        ("/data/disk 20", "/data"),
    ])
    func test_mountPoint_path_isLongestMountPointPrefixByComponent(path: String, expected: String) {
        #expect(ProcParsers.mountPoint(of: path, mountinfo: Self.mountinfo) == expected)
    }

    @Test func test_mountPoint_noMatchingLine_isNil() {
        #expect(
            ProcParsers.mountPoint(of: "/data", mountinfo: "22 27 0:21 / /proc rw - proc proc rw\ngarbage\n") == nil)
    }

    @Test(arguments: [
        ("plain", "plain"),
        ("a\\040b", "a b"),
        ("tab\\011end", "tab\tend"),
        ("back\\134slash", "back\\slash"),
        ("not\\9ab", "not\\9ab"),
        ("short\\04", "short\\04"),
    ])
    func test_decodeOctalEscapes_decodesThreeDigitOctalOnly(text: String, expected: String) {
        #expect(ProcParsers.decodeOctalEscapes(text[...]) == expected)
    }
}

// MARK: - Sampler

@Suite struct SystemSamplerTests {
    /// A temporary directory laid out like `/proc`, with a data directory (named with a space) beside it.
    struct FixtureRoot: ~Copyable {
        let root: URL
        var proc: String { self.root.appendingPathComponent("proc").path }
        var data: String { self.root.appendingPathComponent("data dir").path }

        init() throws {
            self.root = FileManager.default.temporaryDirectory
                .appendingPathComponent("gossamer-system-\(UInt64.random(in: 0...UInt64.max))")
            for directory in ["proc/self/fd", "proc/net", "data dir"] {
                try FileManager.default.createDirectory(
                    at: self.root.appendingPathComponent(directory), withIntermediateDirectories: true)
            }
        }

        /// Writes `text` to `proc/<path>`.
        func write(_ path: String, _ text: String) throws {
            try text.write(toFile: self.proc + "/" + path, atomically: true, encoding: .utf8)
        }

        deinit {
            try? FileManager.default.removeItem(at: self.root)
        }
    }

    static func value(_ samples: [Sample], _ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }

    static let netHeader = """
        Inter-|   Receive                                                |  Transmit
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed

        """

    static func netLine(_ device: String, _ receive: Int, _ transmit: Int) -> String {
        "  \(device): \(receive) 10 0 0 0 0 0 0 \(transmit) 10 0 0 0 0 0 0\n"
    }

    @Test func test_sample_fixtureProcTwice_emitsValuesAndRatiosFromTheDelta() throws {
        // Given
        let fixture = try FixtureRoot()
        let resolvedData = SystemSampler.resolve(fixture.data)
        let escapedData = resolvedData.replacingOccurrences(of: " ", with: "\\040")
        try fixture.write("stat", "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 100 0 100 700 100 0 0 0 0 0\n")
        try fixture.write("self/stat", "9 (gos sa)mer) S 1 9 9 0 -1 0 0 0 0 0 200 100 0 0 20 0 1 0 5 0 0\n")
        try fixture.write(
            "meminfo", "MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 250 kB\nBuffers: 1 kB\nCached: 2 kB\n")
        try fixture.write("self/statm", "900 120 30 1 0 80 0\n")
        try fixture.write(
            "self/mountinfo",
            "27 1 253:0 / / rw - ext4 /dev/vda1 rw\n40 27 253:1 / \(escapedData) rw - ext4 /dev/vdb1 rw\n")
        try fixture.write("net/dev", Self.netHeader + Self.netLine("lo", 1000, 1000) + Self.netLine("eth0", 500, 70))
        for descriptor in ["0", "1", "2"] {
            try fixture.write("self/fd/\(descriptor)", "")
        }
        let sampler = SystemSampler(dataDirectory: fixture.data, procRoot: fixture.proc)
        let start = ContinuousClock.now

        // When
        let first = sampler.sample(at: start)
        try fixture.write("stat", "cpu  200 0 200 1400 200 0 0 0 0 0\n")
        try fixture.write("self/stat", "9 (gos sa)mer) S 1 9 9 0 -1 0 0 0 0 0 300 150 0 0 20 0 1 0 5 0 0\n")
        let second = sampler.sample(at: start + .seconds(2))

        // Then: the first sample has no ratios
        let ticks = SystemSampler.clockTicksPerSecond
        #expect(Self.value(first, "gossamer_system_cpu_busy_ratio") == nil)
        #expect(Self.value(first, "gossamer_process_cpu_ratio") == nil)
        #expect(Self.value(first, "gossamer_process_cpu_seconds_total") == 300 / ticks)

        // Then: host busy = 1 − Δidle/Δtotal = 1 − 800/1000; process = 150 ticks over 2 s
        #expect(Self.value(second, "gossamer_system_cpu_busy_ratio").map { abs($0 - 0.2) < 1e-9 } == true)
        #expect(Self.value(second, "gossamer_process_cpu_seconds_total") == 450 / ticks)
        #expect(Self.value(second, "gossamer_process_cpu_ratio").map { abs($0 - 150 / ticks / 2) < 1e-9 } == true)
        #expect(Self.value(second, "gossamer_system_memory_total_bytes") == 1_024_000)
        #expect(Self.value(second, "gossamer_system_memory_used_bytes") == 768_000)
        #expect(
            Self.value(second, "gossamer_process_resident_memory_bytes") == Double(120 * SystemSampler.pageSize))
        #expect(Self.value(second, "gossamer_process_open_fds") == 3)
        #expect(Self.value(second, "gossamer_network_receive_bytes_total", ["device": "lo"]) == 1000)
        #expect(Self.value(second, "gossamer_network_receive_bytes_total", ["device": "eth0"]) == 500)
        #expect(Self.value(second, "gossamer_network_transmit_bytes_total", ["device": "eth0"]) == 70)

        // Then: the disk metrics are the real filesystem's, labelled with the fixture's (escaped) mount point
        let mount = ["mount": resolvedData]
        let total = try #require(Self.value(second, "gossamer_disk_total_bytes", mount))
        let used = try #require(Self.value(second, "gossamer_disk_used_bytes", mount))
        let ratio = try #require(Self.value(second, "gossamer_disk_used_ratio", mount))
        #expect(total > 0)
        #expect(used <= total)
        #expect((0...1).contains(ratio))
    }

    @Test func test_sample_counterWentBackwards_omitsTheRatios() throws {
        // Given
        let fixture = try FixtureRoot()
        try fixture.write("stat", "cpu  200 0 200 1400 200 0 0 0 0 0\n")
        try fixture.write("self/stat", "9 (g) S 1 9 9 0 -1 0 0 0 0 0 300 150 0 0 20 0 1 0 5 0 0\n")
        let sampler = SystemSampler(dataDirectory: fixture.data, procRoot: fixture.proc)
        let start = ContinuousClock.now
        _ = sampler.sample(at: start)
        try fixture.write("stat", "cpu  100 0 100 700 100 0 0 0 0 0\n")
        try fixture.write("self/stat", "9 (g) S 1 9 9 0 -1 0 0 0 0 0 3 1 0 0 20 0 1 0 5 0 0\n")

        // When
        let samples = sampler.sample(at: start + .seconds(1))

        // Then
        #expect(Self.value(samples, "gossamer_system_cpu_busy_ratio") == nil)
        #expect(Self.value(samples, "gossamer_process_cpu_ratio") == nil)
        #expect(Self.value(samples, "gossamer_process_cpu_seconds_total") == 4 / SystemSampler.clockTicksPerSecond)
    }

    @Test func test_sample_manyInterfaces_keepsTheFirstSixteen() throws {
        // Given
        let fixture = try FixtureRoot()
        let lines = (0..<40).map { Self.netLine("veth\($0)", $0, $0) }.joined()
        try fixture.write("net/dev", Self.netHeader + lines)
        let sampler = SystemSampler(dataDirectory: fixture.data, procRoot: fixture.proc)

        // When
        let devices = sampler.sample().filter { $0.name == "gossamer_network_receive_bytes_total" }

        // Then
        #expect(devices.count == SystemSampler.maxNetworkDevices)
        #expect(devices.map { $0.labels["device"] } == (0..<16).map { "veth\($0)" })
    }

    @Test func test_sample_emptyProcAndMissingDataDirectory_omitsWhatCannotBeRead() throws {
        // Given: no /proc files at all, and a data directory that does not exist
        let fixture = try FixtureRoot()
        try FileManager.default.removeItem(atPath: fixture.proc + "/self/fd")
        let sampler = SystemSampler(dataDirectory: fixture.data + "/missing", procRoot: fixture.proc)

        // When
        let names = Set(sampler.sample().map(\.name)).union(sampler.sample().map(\.name))

        // Then: only the limit, read by a system call, can remain
        #expect(names.isSubset(of: ["gossamer_process_max_fds"]))
    }

    @Test func test_sample_dataDirectoryWithoutMountinfo_labelsRoot() throws {
        // Given
        let fixture = try FixtureRoot()
        let sampler = SystemSampler(dataDirectory: fixture.data, procRoot: fixture.proc)

        // When
        let disk = sampler.sample().filter { $0.name.hasPrefix("gossamer_disk_") }

        // Then
        #expect(
            disk.map(\.name) == ["gossamer_disk_used_ratio", "gossamer_disk_used_bytes", "gossamer_disk_total_bytes"])
        #expect(disk.allSatisfy { $0.labels == ["mount": "/"] })
    }

    @Test func test_helpAndKinds_coverEveryNameWithCountersForTotals() {
        // Given
        let names = Set(SystemSampler.help.keys)

        // Then
        #expect(names.count == 13)
        #expect(Set(SystemSampler.kinds.keys) == names)
        #expect(SystemSampler.kinds["gossamer_process_cpu_seconds_total"] == .counter)
        #expect(SystemSampler.kinds["gossamer_network_transmit_bytes_total"] == .counter)
        #expect(SystemSampler.kinds["gossamer_disk_used_ratio"] == .gauge)
        #expect(names.allSatisfy { $0.hasPrefix("gossamer_") })
    }

    @Test(.enabled(if: SystemSampler.readFile("/proc/stat") != nil, "needs a Linux /proc"))
    func test_sample_realProc_emitsEveryMetricWithSaneValues() throws {
        // Given
        let sampler = SystemSampler(dataDirectory: FileManager.default.temporaryDirectory.path)
        _ = sampler.sample()
        // Burn CPU until the host's jiffy counter moves, so the second sample has a host CPU delta.
        let before = ProcParsers.cpuTimes(stat: SystemSampler.readFile("/proc/stat") ?? "")
        let deadline = ContinuousClock.now + .seconds(5)
        var spin: UInt64 = 1
        while ContinuousClock.now < deadline,
            ProcParsers.cpuTimes(stat: SystemSampler.readFile("/proc/stat") ?? "") == before
        {
            for step in 0..<10_000 { spin = spin &* 6_364_136_223_846_793_005 &+ UInt64(step) }
        }
        #expect(spin != 0)

        // When
        let samples = sampler.sample()

        // Then
        let names = Set(samples.map(\.name))
        #expect(names.isSubset(of: Set(SystemSampler.help.keys)))
        let busy = try #require(Self.value(samples, "gossamer_system_cpu_busy_ratio"))
        #expect((0...1).contains(busy))
        #expect(try #require(Self.value(samples, "gossamer_process_cpu_seconds_total")) > 0)
        #expect(try #require(Self.value(samples, "gossamer_process_cpu_ratio")) >= 0)
        let memoryTotal = try #require(Self.value(samples, "gossamer_system_memory_total_bytes"))
        let memoryUsed = try #require(Self.value(samples, "gossamer_system_memory_used_bytes"))
        #expect(memoryTotal > 0 && memoryUsed > 0 && memoryUsed <= memoryTotal)
        #expect(try #require(Self.value(samples, "gossamer_process_resident_memory_bytes")) > 0)
        let openFDs = try #require(Self.value(samples, "gossamer_process_open_fds"))
        #expect(openFDs >= 3)
        if let maxFDs = Self.value(samples, "gossamer_process_max_fds") {
            #expect(maxFDs >= openFDs)
        }
        let disk = samples.filter { $0.name.hasPrefix("gossamer_disk_") }
        #expect(disk.count == 3)
        #expect(disk.allSatisfy { $0.labels["mount"]?.hasPrefix("/") == true })
        let diskTotal = try #require(disk.first { $0.name == "gossamer_disk_total_bytes" }?.value)
        let diskRatio = try #require(disk.first { $0.name == "gossamer_disk_used_ratio" }?.value)
        #expect(diskTotal > 0)
        #expect((0...1).contains(diskRatio))
        let devices = samples.filter { $0.name == "gossamer_network_receive_bytes_total" }
        #expect(!devices.isEmpty && devices.count <= SystemSampler.maxNetworkDevices)
    }
}
