import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// MARK: - System sampler

/// Reads host and process metrics from `/proc` and the C library, for the agent to export every few seconds and for
/// alert rules to read.
///
/// Each ``sample()`` returns these samples, in this order (names carry their units; labels are bounded):
///
/// | metric | kind | meaning |
/// |---|---|---|
/// | `gossamer_system_cpu_busy_ratio` | gauge | host CPU busy share since the previous sample, 0…1, all CPUs |
/// | `gossamer_process_cpu_seconds_total` | counter | this process' user + system CPU seconds (`/proc/self/stat`) |
/// | `gossamer_process_cpu_ratio` | gauge | process CPU seconds per wall second since the previous sample (may exceed 1) |
/// | `gossamer_system_memory_total_bytes` | gauge | `MemTotal` of `/proc/meminfo` |
/// | `gossamer_system_memory_used_bytes` | gauge | `MemTotal − MemAvailable` |
/// | `gossamer_process_resident_memory_bytes` | gauge | resident set size (`/proc/self/statm` × page size) |
/// | `gossamer_process_open_fds` | gauge | entries of `/proc/self/fd`, not counting the one used to list them |
/// | `gossamer_process_max_fds` | gauge | the soft `RLIMIT_NOFILE` (left out when unlimited) |
/// | `gossamer_disk_used_ratio{mount}` | gauge | used ÷ (used + available to unprivileged users), as `df`'s Use% |
/// | `gossamer_disk_used_bytes{mount}` | gauge | `(f_blocks − f_bfree) × f_frsize` from `statvfs` |
/// | `gossamer_disk_total_bytes{mount}` | gauge | `f_blocks × f_frsize` |
/// | `gossamer_network_receive_bytes_total{device}` | counter | bytes received per interface (`/proc/net/dev`) |
/// | `gossamer_network_transmit_bytes_total{device}` | counter | bytes transmitted per interface |
///
/// The disk metrics describe the filesystem holding the data directory; `mount` is its mount point from
/// `/proc/self/mountinfo` (`"/"` when that cannot be read). `device` covers at most ``maxNetworkDevices`` interfaces,
/// the first ones in the kernel's order (loopback and physical interfaces before the virtual ones created later).
/// The two CPU ratios need a previous reading, so the first call leaves them out. A file that is missing or
/// unreadable (macOS, a restricted `/proc`) only leaves out the metrics read from it.
///
/// ``help`` and ``kinds`` give each name's `# HELP` text and Prometheus type for the exporter.
///
/// The sampler is safe to call from any thread; the previous readings sit behind a `Mutex`. A call reads a handful
/// of small files and makes three system calls, taking well under a millisecond; it blocks, so call it from a
/// thread that may block, not an event loop.
public final class SystemSampler: Sendable {
    /// The most interfaces the network metrics cover, so a host with hundreds of virtual interfaces cannot flood the
    /// registry.
    public static let maxNetworkDevices = 16

    /// The `# HELP` text of every metric name the sampler emits.
    public static let help: [String: String] = [
        Name.cpuBusy: "Share of host CPU time not idle or waiting on I/O since the previous sample, 0 to 1, all CPUs.",
        Name.processCPUSeconds: "User and system CPU time consumed by the agent process, in seconds.",
        Name.processCPURatio:
            "CPU seconds used by the agent process per wall-clock second since the previous sample"
            + " (above 1 on several cores).",
        Name.memoryTotal: "Usable RAM of the host (MemTotal), in bytes.",
        Name.memoryUsed: "Host RAM in use, MemTotal minus MemAvailable, in bytes.",
        Name.residentMemory: "Resident set size of the agent process, in bytes.",
        Name.openFDs: "File descriptors the agent process has open.",
        Name.maxFDs: "Soft limit on open file descriptors of the agent process (RLIMIT_NOFILE).",
        Name.diskUsedRatio: "Used share of the filesystem holding the data directory, as df's Use%, 0 to 1.",
        Name.diskUsed: "Bytes used on the filesystem holding the data directory.",
        Name.diskTotal: "Size of the filesystem holding the data directory, in bytes.",
        Name.networkReceive: "Bytes received by the network interface since it came up.",
        Name.networkTransmit: "Bytes transmitted by the network interface since it came up.",
    ]

    /// The Prometheus type of every metric name the sampler emits: counter for `…_total`, gauge otherwise.
    public static let kinds: [String: MetricKind] = Dictionary(
        uniqueKeysWithValues: help.keys.map { name in (name, name.hasSuffix("_total") ? .counter : .gauge) }
    )

    /// The metric names.
    enum Name {
        static let cpuBusy = "gossamer_system_cpu_busy_ratio"
        static let processCPUSeconds = "gossamer_process_cpu_seconds_total"
        static let processCPURatio = "gossamer_process_cpu_ratio"
        static let memoryTotal = "gossamer_system_memory_total_bytes"
        static let memoryUsed = "gossamer_system_memory_used_bytes"
        static let residentMemory = "gossamer_process_resident_memory_bytes"
        static let openFDs = "gossamer_process_open_fds"
        static let maxFDs = "gossamer_process_max_fds"
        static let diskUsedRatio = "gossamer_disk_used_ratio"
        static let diskUsed = "gossamer_disk_used_bytes"
        static let diskTotal = "gossamer_disk_total_bytes"
        static let networkReceive = "gossamer_network_receive_bytes_total"
        static let networkTransmit = "gossamer_network_transmit_bytes_total"
    }

    /// The readings the next sample's ratios are computed against.
    struct Previous: Sendable {
        var hostCPU: ProcParsers.CPUTimes?
        var processTicks: UInt64?
        var at: ContinuousClock.Instant
    }

    /// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, almost always 100): the unit of `/proc` CPU times.
    static let clockTicksPerSecond: Double = {
        let ticks = sysconf(CInt(_SC_CLK_TCK))
        return ticks > 0 ? Double(ticks) : 100
    }()

    /// The memory page size in bytes: the unit of `/proc/<pid>/statm`.
    static let pageSize: UInt64 = {
        let size = sysconf(CInt(_SC_PAGESIZE))
        return size > 0 ? UInt64(size) : 4096
    }()

    /// The directory whose filesystem the disk metrics describe.
    public let dataDirectory: String
    /// Where `/proc` is read from: `/proc` in production, a directory of fixture files in tests.
    public let procRoot: String
    private let previous = Mutex<Previous?>(nil)

    /// Creates a sampler for the filesystem holding `dataDirectory`, reading `/proc` files under `procRoot`. Nothing
    /// is read until ``sample()``.
    public init(dataDirectory: String, procRoot: String = "/proc") {
        self.dataDirectory = dataDirectory
        self.procRoot = procRoot.count > 1 && procRoot.hasSuffix("/") ? String(procRoot.dropLast()) : procRoot
    }

    // MARK: - Sampling

    /// Reads every metric now. See the type's documentation for the names; unreadable sources are left out.
    public func sample() -> [Sample] {
        self.sample(at: .now)
    }

    /// Reads every metric, taking `now` as the time of the reading (tests pass instants to fix the wall-time delta).
    func sample(at now: ContinuousClock.Instant) -> [Sample] {
        var samples: [Sample] = []
        samples.reserveCapacity(16)

        let hostCPU = self.readProc("stat").flatMap { ProcParsers.cpuTimes(stat: $0) }
        let processTicks = self.readProc("self/stat").flatMap { ProcParsers.processCPUTicks(stat: $0) }
        let last = self.previous.withLock { previous in
            defer { previous = Previous(hostCPU: hostCPU, processTicks: processTicks, at: now) }
            return previous
        }

        if let hostCPU, let before = last?.hostCPU, hostCPU.total > before.total, hostCPU.idle >= before.idle {
            let total = Double(hostCPU.total - before.total)
            let idle = Double(hostCPU.idle - before.idle)
            samples.append(Sample(name: Name.cpuBusy, value: min(1, max(0, 1 - idle / total))))
        }
        if let processTicks {
            let seconds = Double(processTicks) / Self.clockTicksPerSecond
            samples.append(Sample(name: Name.processCPUSeconds, value: seconds))
            if let last, let before = last.processTicks, processTicks >= before, last.at < now {
                let wall = Self.seconds(last.at.duration(to: now))
                let used = Double(processTicks - before) / Self.clockTicksPerSecond
                samples.append(Sample(name: Name.processCPURatio, value: used / wall))
            }
        }

        if let memory = self.readProc("meminfo").flatMap({ ProcParsers.memoryInfo($0) }) {
            samples.append(Sample(name: Name.memoryTotal, value: Double(memory.totalBytes)))
            let used = memory.totalBytes - min(memory.availableBytes, memory.totalBytes)
            samples.append(Sample(name: Name.memoryUsed, value: Double(used)))
        }
        if let pages = self.readProc("self/statm").flatMap({ ProcParsers.residentPages(statm: $0) }) {
            samples.append(Sample(name: Name.residentMemory, value: Double(pages) * Double(Self.pageSize)))
        }

        if let open = Self.countDescriptors(in: self.procRoot + "/self/fd") {
            samples.append(Sample(name: Name.openFDs, value: Double(open)))
        }
        if let limit = Self.descriptorLimit() {
            samples.append(Sample(name: Name.maxFDs, value: limit))
        }

        self.appendDisk(to: &samples)

        if let text = self.readProc("net/dev") {
            for device in ProcParsers.networkDevices(text).prefix(Self.maxNetworkDevices) {
                let labels = ["device": device.device]
                samples.append(Sample(name: Name.networkReceive, labels: labels, value: Double(device.receiveBytes)))
                samples.append(Sample(name: Name.networkTransmit, labels: labels, value: Double(device.transmitBytes)))
            }
        }
        return samples
    }

    // MARK: - Disk

    /// Appends the three disk samples for the data directory's filesystem, or nothing when `statvfs` fails.
    private func appendDisk(to samples: inout [Sample]) {
        let path = Self.resolve(self.dataDirectory)
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return }
        let blockSize = UInt64(stats.f_frsize)
        let blocks = UInt64(stats.f_blocks)
        let free = min(UInt64(stats.f_bfree), blocks)
        let available = UInt64(stats.f_bavail)
        let used = Double(blocks - free) * Double(blockSize)
        let total = Double(blocks) * Double(blockSize)
        let usable = used + Double(available) * Double(blockSize)

        let mount = self.readProc("self/mountinfo").flatMap { ProcParsers.mountPoint(of: path, mountinfo: $0) } ?? "/"
        let labels = ["mount": mount]
        if usable > 0 {
            samples.append(Sample(name: Name.diskUsedRatio, labels: labels, value: used / usable))
        }
        samples.append(Sample(name: Name.diskUsed, labels: labels, value: used))
        samples.append(Sample(name: Name.diskTotal, labels: labels, value: total))
    }

    // MARK: - System calls

    /// The contents of `procRoot/relativePath`, or `nil` when it cannot be read.
    private func readProc(_ relativePath: String) -> String? {
        Self.readFile(self.procRoot + "/" + relativePath)
    }

    /// Reads a whole file. `/proc` files report a size of zero, so this reads until end of file, up to 4 MiB
    /// (a `mountinfo` with thousands of mounts is well below that).
    static func readFile(_ path: String, limit: Int = 4 << 20) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while bytes.count < limit {
            let count = chunk.withUnsafeMutableBytes { buffer in
                systemRead(descriptor, buffer.baseAddress, buffer.count)
            }
            if count < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The number of entries in the descriptor directory `path`, without `.`, `..` and the descriptor the listing
    /// itself holds open; `nil` when it cannot be listed.
    static func countDescriptors(in path: String) -> Int? {
        guard let directory = opendir(path) else { return nil }
        defer { closedir(directory) }
        let own = String(dirfd(directory))
        var count = 0
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: pointer.pointee)) {
                    String(cString: $0)
                }
            }
            if name == "." || name == ".." { continue }
            // In a live /proc every entry is a symbolic link; the listing's own descriptor is not the process' own.
            if name == own, Self.isSymbolicLink(path + "/" + name) { continue }
            count += 1
        }
        return count
    }

    private static func isSymbolicLink(_ path: String) -> Bool {
        var info = stat()
        guard lstat(path, &info) == 0 else { return false }
        return (info.st_mode & mode_t(S_IFMT)) == mode_t(S_IFLNK)
    }

    /// The soft limit on open descriptors; `nil` when unlimited or unknown.
    static func descriptorLimit() -> Double? {
        var limit = rlimit()
        #if canImport(Glibc)
            let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
            let unlimited = rlim_t.max  // RLIM_INFINITY is `(~0UL)`, which Swift does not import
        #else
            let resource = RLIMIT_NOFILE
            let unlimited = RLIM_INFINITY
        #endif
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur != unlimited else { return nil }
        return Double(limit.rlim_cur)
    }

    /// `path` with symbolic links resolved and made absolute, or `path` itself when that fails (it does not exist yet).
    static func resolve(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// `read(2)`, named apart from the sampler's own methods.
private func systemRead(_ descriptor: CInt, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    #if canImport(Glibc)
        Glibc.read(descriptor, buffer, count)
    #else
        Darwin.read(descriptor, buffer, count)
    #endif
}
