// MARK: - /proc parsers

/// Pure parsers for the Linux `/proc` files ``SystemSampler`` reads. Each takes the file's text and returns `nil` (or
/// an empty result) when the text is not in the expected shape, so a kernel with a different layout loses a metric
/// instead of crashing the agent. Formats follow proc(5).
enum ProcParsers {
    /// Host CPU time from the first `cpu` line of `/proc/stat`, in clock ticks summed over all CPUs.
    struct CPUTimes: Hashable, Sendable {
        /// `user + nice + system + idle + iowait + irq + softirq + steal`. `guest` and `guest_nice` are left out
        /// because the kernel already counts them in `user` and `nice`.
        var total: UInt64
        /// `idle + iowait`: time no task was running.
        var idle: UInt64
    }

    /// `MemTotal` and `MemAvailable` from `/proc/meminfo`, in bytes.
    struct MemoryInfo: Hashable, Sendable {
        /// Usable RAM.
        var totalBytes: UInt64
        /// RAM available to new work without swapping (the kernel's estimate, including reclaimable cache).
        var availableBytes: UInt64
    }

    /// One interface's line of `/proc/net/dev`.
    struct InterfaceBytes: Hashable, Sendable {
        /// The interface name, such as `eth0` or `lo`.
        var device: String
        /// Bytes received since the interface came up.
        var receiveBytes: UInt64
        /// Bytes transmitted since the interface came up.
        var transmitBytes: UInt64
    }

    // MARK: - CPU

    /// Parses the aggregate `cpu  user nice system idle iowait irq softirq steal guest guest_nice` line of
    /// `/proc/stat`. Kernels older than 2.6.33 have fewer columns; at least `user nice system idle` are required.
    static func cpuTimes(stat text: String) -> CPUTimes? {
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.first == "cpu" else { continue }
            let values = fields.dropFirst().prefix(8).map { UInt64($0) }
            guard values.count >= 4, values.allSatisfy({ $0 != nil }) else { return nil }
            let numbers = values.map { $0 ?? 0 }
            let (total, overflow) = numbers.reduce((UInt64(0), false)) { partial, value in
                let (sum, overflow) = partial.0.addingReportingOverflow(value)
                return (sum, partial.1 || overflow)
            }
            guard !overflow else { return nil }
            let iowait = numbers.count > 4 ? numbers[4] : 0
            return CPUTimes(total: total, idle: numbers[3] &+ iowait)
        }
        return nil
    }

    /// `utime + stime` in clock ticks from `/proc/<pid>/stat`. The second field, `(comm)`, is the executable name and
    /// may hold spaces and parentheses, so fields are counted from the *last* `)`: after it come `state` (field 3)
    /// and so on, with `utime` field 14 and `stime` field 15.
    static func processCPUTicks(stat text: String) -> UInt64? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(whereSeparator: { $0 == " " || $0 == "\n" })
        // fields[0] is field 3 (state), so field n is fields[n - 3].
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        let (sum, overflow) = user.addingReportingOverflow(system)
        return overflow ? nil : sum
    }

    // MARK: - Memory

    /// `MemTotal` and `MemAvailable` from `/proc/meminfo` (values in kB, returned in bytes). Kernels before 3.14 have
    /// no `MemAvailable`; then `MemFree + Buffers + Cached` stands in for it, as `free` did.
    static func memoryInfo(_ text: String) -> MemoryInfo? {
        var fields: [Substring: UInt64] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon]
            switch key {
            case "MemTotal", "MemAvailable", "MemFree", "Buffers", "Cached":
                let parts = line[line.index(after: colon)...].split(separator: " ", omittingEmptySubsequences: true)
                guard let number = parts.first.flatMap({ UInt64($0) }) else { continue }
                let scale: UInt64 = parts.count > 1 && parts[1] == "kB" ? 1024 : 1
                fields[key] = number.multipliedReportingOverflow(by: scale).overflow ? nil : number * scale
            default:
                continue
            }
        }
        guard let total = fields["MemTotal"] else { return nil }
        if let available = fields["MemAvailable"] {
            return MemoryInfo(totalBytes: total, availableBytes: available)
        }
        guard let free = fields["MemFree"] else { return nil }
        let estimate = free &+ (fields["Buffers"] ?? 0) &+ (fields["Cached"] ?? 0)
        return MemoryInfo(totalBytes: total, availableBytes: min(estimate, total))
    }

    /// The resident set size in pages: the second field of `/proc/<pid>/statm`
    /// (`size resident shared text lib data dt`).
    static func residentPages(statm text: String) -> UInt64? {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count >= 2 else { return nil }
        return UInt64(fields[1])
    }

    // MARK: - Network

    /// Every interface of `/proc/net/dev`, in file order (the kernel's interface order). After two header lines each
    /// line is `name: rx_bytes rx_packets … (8 receive columns) tx_bytes …`; old kernels may write no space after the
    /// colon. Malformed lines are skipped.
    static func networkDevices(_ text: String) -> [InterfaceBytes] {
        var devices: [InterfaceBytes] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let device = line[..<colon].trimmingCharacters(" ")
            let columns = line[line.index(after: colon)...].split(separator: " ", omittingEmptySubsequences: true)
            guard !device.isEmpty, !device.contains("|"), columns.count >= 9,
                let receive = UInt64(columns[0]), let transmit = UInt64(columns[8])
            else { continue }
            devices.append(InterfaceBytes(device: String(device), receiveBytes: receive, transmitBytes: transmit))
        }
        return devices
    }

    // MARK: - Mounts

    /// The mount point of the filesystem holding `path` (absolute, symlinks already resolved): the longest mount
    /// point in `/proc/<pid>/mountinfo` that is `path` or one of its ancestor directories. Field 5 of each line is the
    /// mount point, with space, tab, line feed and backslash written as octal escapes (`\040`, `\011`, `\012`, `\134`).
    /// When a mount point is mounted over, the later line (the visible mount) wins. `nil` when no line matches.
    static func mountPoint(of path: String, mountinfo text: String) -> String? {
        var best: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count >= 5 else { continue }
            let mountPoint = self.decodeOctalEscapes(fields[4])
            guard mountPoint.hasPrefix("/"), self.isPath(path, under: mountPoint) else { continue }
            if let current = best, current.utf8.count > mountPoint.utf8.count { continue }
            best = mountPoint
        }
        return best
    }

    /// Whether `path` is `directory` or lies inside it, comparing whole path components (`/data` holds `/data/x`
    /// but not `/database`).
    static func isPath(_ path: String, under directory: String) -> Bool {
        if directory == "/" { return path.hasPrefix("/") }
        let directory = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        guard path.hasPrefix(directory) else { return false }
        let rest = path.utf8.dropFirst(directory.utf8.count)
        return rest.isEmpty || rest.first == UInt8(ascii: "/")
    }

    /// `text` with each `\` followed by three octal digits replaced by that byte; other backslashes stay as they are.
    static func decodeOctalEscapes(_ text: Substring) -> String {
        guard text.utf8.contains(UInt8(ascii: "\\")) else { return String(text) }
        let bytes = Array(text.utf8)
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "\\"), index + 3 < bytes.count,
                let value = self.octal(bytes[(index + 1)...(index + 3)])
            {
                decoded.append(value)
                index += 4
            } else {
                decoded.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: decoded, as: UTF8.self)
    }

    /// The byte three octal digits denote; `nil` when they are not octal digits or exceed 255.
    private static func octal(_ digits: ArraySlice<UInt8>) -> UInt8? {
        var value = 0
        for digit in digits {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "7") else { return nil }
            value = value * 8 + Int(digit - UInt8(ascii: "0"))
        }
        return value <= 255 ? UInt8(value) : nil
    }
}

extension Substring {
    /// The text without leading and trailing `character`s.
    fileprivate func trimmingCharacters(_ character: Character) -> Substring {
        var text = self
        while text.first == character { text.removeFirst() }
        while text.last == character { text.removeLast() }
        return text
    }
}
