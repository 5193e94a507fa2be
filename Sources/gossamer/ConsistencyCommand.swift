import ArgumentParser
import Client
import Foundation

struct ConsistencyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consistency",
        abstract: "Show whether every agent holds the same configuration, and each peer's replication state.",
        discussion: """
            The first line is the cluster-wide view of the agent at --addr: its keyspace digest (root), whether \
            every live agent announces the same root and since when, and whether any peer has stayed divergent \
            longer than the divergence bound (then the agent reports unhealthy). The table shows, per peer, the \
            root it announced, this agent's writes it has not acknowledged yet, and the last anti-entropy check.

            With --check --json the output is {"check": <POST /v1/consistency/check>, "consistency": <GET /v1/consistency>}.

            Examples:
              gossamer consistency
              gossamer consistency --check
              gossamer consistency --check --peer n2 --repair
              gossamer consistency --json
            """)

    @Flag(help: "Compare this agent's keyspace with its peers now (POST /v1/consistency/check), then show the state.")
    var check = false
    @Option(help: "With --check: compare with this peer only (a member name, see `gossamer members`).")
    var peer: String?
    @Flag(help: "With --check: also copy the newer versions each side lacks.")
    var repair = false
    @OptionGroup var options: ClientOptions

    func validate() throws {
        if !self.check && (self.peer != nil || self.repair) {
            throw ValidationError("--peer and --repair apply to a check; add --check, e.g. `gossamer consistency --check\(self.peer.map { " --peer \($0)" } ?? "")\(self.repair ? " --repair" : "")`")
        }
        if let peer = self.peer, peer.isEmpty { throw ValidationError("--peer needs a member name (see `gossamer members`)") }
    }

    func run() async throws {
        let client = self.options.client
        var checkReply: GossamerClient.Reply?
        if self.check {
            let reply = try await client.checkConsistency(peer: self.peer, repair: self.repair)
            if reply.status == 404, reply.errorCode == "unknown_peer", let peer = self.peer {
                throw CLIFailure("'\(peer)' is not a live member of the cluster; list the members with `gossamer members`")
            }
            checkReply = try requireCluster(reply, client).check()
        }
        let reply = try requireCluster(try await client.consistency(), client).check()
        if self.options.json {
            guard let checkReply else { return Output.json(reply.body) }
            let combined: [String: Any] = [
                "check": (try? JSONSerialization.jsonObject(with: checkReply.body)) ?? NSNull(),
                "consistency": (try? JSONSerialization.jsonObject(with: reply.body)) ?? NSNull(),
            ]
            return Output.json(try JSONSerialization.data(withJSONObject: combined))
        }
        if let checkReply {
            Self.printCheck(Output.object(checkReply.body))
            print("")
        }
        Self.printStatus(Output.object(reply.body))
    }

    /// The result of `POST /v1/consistency/check`: one row per peer compared, and what to do next.
    static func printCheck(_ result: [String: Any]) {
        let node = Output.string(result["node"])
        let repair = result["repair"] as? Bool ?? false
        let peers = (result["peers"] as? [[String: Any]]) ?? []
        guard !peers.isEmpty else {
            print("Checked \(node) against no peer: it sees no other live member (see `gossamer members`)")
            return
        }
        let rows = peers.map { peer -> [String] in
            [
                Output.string(peer["peer"]), Output.string(peer["matched"]), Output.string(peer["missing_here"]),
                Output.string(peer["missing_there"]), Output.string(peer["different"]), Output.string(peer["settled_differences"]),
                Output.string(peer["repaired"]), Output.string(peer["peer_root"]), Output.string(peer["error"]),
            ]
        }
        Output.table(["PEER", "MATCHED", "MISSING HERE", "MISSING THERE", "DIFFERENT", "SETTLED", "REPAIRED", "PEER ROOT", "ERROR"], rows)
        let failed = peers.filter { $0["error"] is String }.count
        let differing = peers.filter { !($0["error"] is String) && ($0["matched"] as? Bool) == false }.count
        let repaired = peers.reduce(0) { $0 + ((($1["repaired"] as? NSNumber)?.intValue) ?? 0) }
        var summary = "Checked \(node) against \(peers.count) peer(s): "
        if differing == 0 && failed == 0 {
            summary += "every keyspace matches"
        } else {
            var parts: [String] = []
            if differing > 0 { parts.append("\(differing) differ" + (repair ? ", \(repaired) version(s) repaired" : "")) }
            if failed > 0 { parts.append("\(failed) could not be compared (see ERROR)") }
            summary += parts.joined(separator: "; ")
            if differing > 0 && !repair {
                summary += "\nAnti-entropy repairs differences within seconds; to repair now run `gossamer consistency --check --repair`"
            }
        }
        print(summary)
    }

    /// `GET /v1/consistency`: the cluster-wide line, counters and the table of peers.
    static func printStatus(_ status: [String: Any]) {
        let root = Output.string(status["root"])
        let peers = (status["peers"] as? [[String: Any]]) ?? []
        var agreement: String
        if status["resyncing"] as? Bool == true {
            agreement = "resyncing the whole keyspace from a peer"
        } else if peers.isEmpty {
            agreement = "no live peer to compare with"
        } else if status["all_agree"] as? Bool == true {
            agreement = "all agents agree"
            if let since = status["agree_since"] as? String { agreement += " since \(since)\(ago(since).map { " (\($0))" } ?? "")" }
        } else {
            let differing = peers.filter { $0["announced_root"] as? String != root }.map { Output.string($0["node"]) }
            agreement =
                differing.isEmpty
                ? "every peer announces this root, agreement not confirmed yet"
                : "not all agents agree yet (\(differing.joined(separator: ", ")) announced another root; replication is catching up)"
        }
        let divergent = (status["divergent_peers"] as? [String]) ?? []
        let health = (status["healthy"] as? Bool ?? divergent.isEmpty)
            ? "healthy" : "UNHEALTHY: divergent from \(divergent.joined(separator: ", ")) for longer than the divergence bound"
        print("\(Output.string(status["node"])): root \(root), \(Output.string(status["keys"])) keys; \(agreement); \(health)")

        var counters = [
            "repairs \(Output.string(status["repairs_total"]))", "conflicts \(Output.string(status["conflicts_total"]))",
            "sent \(bytes(status["bytes_sent"]))", "received \(bytes(status["bytes_received"]))",
            "last sync \((status["last_sync"] as? String).flatMap(ago) ?? "never")",
        ]
        if let malformed = status["malformed_requests"] as? NSNumber, malformed.intValue > 0 { counters.append("malformed requests \(malformed)") }
        print(counters.joined(separator: ", "))

        guard !peers.isEmpty else {
            print("No peers: this agent sees no other live member (started alone, or the others are down); see `gossamer members`")
            return
        }
        print("")
        let rows = peers.map { peer -> [String] in
            let check = peer["last_check"] as? [String: Any]
            var announced = Output.string(peer["announced_root"])
            if let value = peer["announced_root"] as? String, value != root { announced += " (differs)" }
            let error = (check?["error"] as? String) ?? (peer["last_error"] as? String) ?? "-"
            return [
                Output.string(peer["node"]), announced, Output.string(peer["unacked_writes"]),
                duration(millis: (peer["behind_ms"] as? NSNumber)?.int64Value ?? 0),
                (check?["at"] as? String).flatMap(ago) ?? "never",
                check.map { Output.string($0["matched"]) } ?? "-", check.map { Output.string($0["missing_here"]) } ?? "-",
                check.map { Output.string($0["missing_there"]) } ?? "-", check.map { Output.string($0["different"]) } ?? "-",
                check.map { Output.string($0["repaired"]) } ?? "-", error,
            ]
        }
        Output.table(
            ["NODE", "ANNOUNCED ROOT", "UNACKED", "BEHIND", "LAST CHECK", "MATCHED", "MISSING HERE", "MISSING THERE", "DIFFERENT", "REPAIRED", "ERROR"],
            rows)
        if !divergent.isEmpty {
            print("\nCompare and repair now with `gossamer consistency --check --repair`; `gossamer kv conflicts` lists concurrent writes")
        }
    }

    /// `12s ago` for an ISO 8601 time from the agent (nil when it does not parse).
    static func ago(_ iso: String) -> String? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        guard let date = formatter.date(from: iso) else { return nil }
        let millis = Int64(Date().timeIntervalSince(date) * 1000)
        return millis < 1000 ? "just now" : "\(duration(millis: millis)) ago"
    }

    /// `0s`, `850ms`, `4.2s`, `3m12s`, `2h5m`, `3d4h`.
    static func duration(millis: Int64) -> String {
        switch millis {
        case ..<1: return "0s"
        case ..<1000: return "\(millis)ms"
        case ..<10_000: return String(format: "%.1fs", Double(millis) / 1000)
        case ..<60_000: return "\(millis / 1000)s"
        case ..<3_600_000: return "\(millis / 60_000)m\((millis / 1000) % 60)s"
        case ..<86_400_000: return "\(millis / 3_600_000)h\((millis / 60_000) % 60)m"
        default: return "\(millis / 86_400_000)d\((millis / 3_600_000) % 24)h"
        }
    }

    static func bytes(_ value: Any?) -> String {
        let count = (value as? NSNumber)?.doubleValue ?? 0
        if count < 1024 { return "\(Int(count)) B" }
        if count < 1024 * 1024 { return String(format: "%.1f KiB", count / 1024) }
        if count < 1024 * 1024 * 1024 { return String(format: "%.1f MiB", count / 1024 / 1024) }
        return String(format: "%.1f GiB", count / 1024 / 1024 / 1024)
    }
}

/// Replication endpoints exist only on agents in a cluster; say so instead of "no such endpoint".
func requireCluster(
    _ reply: GossamerClient.Reply, _ client: GossamerClient, so consequence: String = "it has no replication state"
) throws -> GossamerClient.Reply {
    if reply.status == 404, reply.errorCode == "no_route" {
        throw CLIFailure(
            "the agent at \(client.base) runs without a cluster (started without --gossip), so \(consequence); "
                + "start agents with --gossip and --join to replicate")
    }
    return reply
}
