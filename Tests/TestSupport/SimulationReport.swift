import GossipCore

/// Figures for the benchmark table: how fast an update reaches everyone, how fast a crashed member
/// is marked dead by every survivor, and how often a healthy member is wrongly declared dead.
public struct SimulationReport: Sendable, CustomStringConvertible {
    /// Cluster size.
    public var memberCount: Int
    /// Datagram loss probability.
    public var lossProbability: Double
    /// Seed of the run.
    public var seed: UInt64
    /// Seconds from a user broadcast until every other member delivered it (`nil`: not within a minute).
    public var disseminationSeconds: Double?
    /// The same in gossip intervals.
    public var disseminationRounds: Double?
    /// Seconds from a `kill -9` until the first survivor declared the member dead.
    public var firstDetectionSeconds: Double?
    /// Seconds from a `kill -9` until every survivor marked the member dead (`nil`: not within two minutes).
    public var detectionSeconds: Double?
    /// Healthy members declared dead, per member-hour observed.
    public var falsePositivesPerMemberHour: Double
    /// Member-hours observed for false positives.
    public var memberHoursObserved: Double
    /// Datagrams sent per member per second over the whole run.
    public var datagramsPerMemberSecond: Double

    /// Runs the standard scenario on a converged cluster: warm up 2 s, one broadcast, a quiet
    /// window of `quietPeriod` for false positives, then crash one member and wait for detection.
    public static func run(
        memberCount: Int,
        lossProbability: Double = 0,
        settings: SWIM.Settings = .lan,
        seed: UInt64 = 1,
        quietPeriod: Duration = .seconds(30)
    ) -> SimulationReport {
        precondition(memberCount >= 3, "need at least 3 members")
        let simulation = Simulation(memberCount: memberCount, settings: settings, network: SimulatedNetwork(lossProbability: lossProbability), seed: seed)
        var victim: Int?
        var falsePositives = 0
        var deathTimes: [Int: SWIM.Instant] = [:]
        var delivered = 0
        simulation.onMembershipEvent = { observer, time, event in
            guard case .failed(let member) = event else { return }
            if let victim, member.name == Simulation.name(victim) {
                if deathTimes[observer] == nil { deathTimes[observer] = time }
            } else {
                falsePositives += 1
            }
        }
        simulation.onUserBroadcast = { _, _, _, _ in delivered += 1 }
        simulation.startConverged()
        simulation.run(for: .seconds(2))

        // Dissemination.
        let broadcastAt = simulation.now
        simulation.broadcast(from: 0, Array("benchmark".utf8))
        let disseminated = simulation.run(until: { _ in delivered >= memberCount - 1 }, step: .milliseconds(10), timeout: .seconds(60))
        let disseminationSeconds = disseminated ? (simulation.now - broadcastAt).seconds : nil

        // Quiet window.
        let quietStart = simulation.now
        simulation.run(for: quietPeriod)
        let quietSeconds = (simulation.now - quietStart).seconds

        // Detection.
        let crashed = memberCount / 2
        victim = crashed
        let crashedAt = simulation.now
        simulation.crash(crashed)
        let survivors = simulation.instances.indices.filter { $0 != crashed }
        let detected = simulation.run(
            until: { _ in deathTimes.count >= survivors.count || simulation.all(survivors, see: crashed, as: .dead) },
            step: .milliseconds(10), timeout: .seconds(120)
        )
        let first = deathTimes.values.min().map { ($0 - crashedAt).seconds }
        let totalSeconds = simulation.now.seconds
        let memberHours = Double(memberCount) * (quietSeconds + (simulation.now - crashedAt).seconds) / 3_600
        return SimulationReport(
            memberCount: memberCount,
            lossProbability: lossProbability,
            seed: seed,
            disseminationSeconds: disseminationSeconds,
            disseminationRounds: disseminationSeconds.map { $0 / settings.gossipInterval.seconds },
            firstDetectionSeconds: first,
            detectionSeconds: detected ? (simulation.now - crashedAt).seconds : nil,
            falsePositivesPerMemberHour: memberHours > 0 ? Double(falsePositives) / memberHours : 0,
            memberHoursObserved: memberHours,
            datagramsPerMemberSecond: Double(simulation.stats.datagramsSent) / Double(memberCount) / max(totalSeconds, 1e-9)
        )
    }

    /// A Markdown table of reports, one row each.
    public static func markdownTable(_ reports: [SimulationReport]) -> String {
        var lines = [
            "| N | loss | dissemination (s) | rounds | first detection (s) | all survivors (s) | false positives / member-hour | datagrams / member / s |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for report in reports {
            lines.append(
                "| \(report.memberCount) | \(Self.format(report.lossProbability * 100, 0))% | \(Self.format(report.disseminationSeconds)) | \(Self.format(report.disseminationRounds, 1)) | \(Self.format(report.firstDetectionSeconds)) | \(Self.format(report.detectionSeconds)) | \(Self.format(report.falsePositivesPerMemberHour, 3)) | \(Self.format(report.datagramsPerMemberSecond, 1)) |"
            )
        }
        return lines.joined(separator: "\n")
    }

    public var description: String { Self.markdownTable([self]) }

    private static func format(_ value: Double?, _ digits: Int = 2) -> String {
        guard let value else { return "—" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let rounded = (value * scale).rounded() / scale
        return "\(rounded)"
    }
}

extension Duration {
    /// This duration in seconds.
    var seconds: Double {
        Double(self.components.seconds) + Double(self.components.attoseconds) / 1e18
    }
}
