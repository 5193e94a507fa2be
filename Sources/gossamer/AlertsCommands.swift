import ArgumentParser
import Client
import ConfigCenter
import Foundation
import Monitor

struct AlertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alerts",
        abstract: "List alerts, manage alert rules and silences.",
        discussion: """
            Every agent evaluates every rule against its own metrics; `alerts list` shows the pending and firing \
            alerts of every agent. Rules and silences are config records: they replicate, version and roll back like any key.

            Examples:
              gossamer alerts list --state firing
              gossamer alerts history --rule disk-full
              gossamer alerts rules list
              gossamer alerts rules apply rules.yaml
              gossamer alerts rules show disk-full
              gossamer alerts rules delete disk-full
              gossamer alerts rules history disk-full
              gossamer alerts rules rollback disk-full 1
              gossamer alerts silence add --match alertname=disk-full --duration 2h \\
                --comment "resizing the volume"
              gossamer alerts silence list
              gossamer alerts silence expire 3f2a…
            """,
        subcommands: [AlertsList.self, AlertsHistory.self, AlertsRules.self, AlertsSilence.self]
    )
}

/// Alert labels as `k=v,k=v` without the ones every alert has.
private func labelText(_ labels: Any?) -> String {
    let labels = (labels as? [String: Any]) ?? [:]
    let shown = labels.filter { $0.key != "alertname" && $0.key != "severity" }.sorted { $0.key < $1.key }
    return shown.isEmpty ? "-" : shown.map { "\($0.key)=\(Output.string($0.value))" }.joined(separator: ",")
}

/// Milliseconds since the epoch as local `yyyy-MM-dd HH:mm:ss`.
private func timeText(_ value: Any?) -> String {
    guard let millis = (value as? NSNumber)?.doubleValue else { return "-" }
    let formatter = DateFormatter()
    formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
    return formatter.string(from: Date(timeIntervalSince1970: millis / 1000))
}

private func valueText(_ value: Any?) -> String {
    guard let value, !(value is NSNull) else { return "-" }
    if let number = value as? NSNumber { return String(format: "%g", number.doubleValue) }
    return Output.string(value)
}

struct AlertsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the pending and firing alerts of every agent.",
        discussion: """
            NODE is the agent whose metrics raised the alert; `(down)` marks an agent gossip no longer sees alive, \
            whose last published alerts may be stale.
            Example:
              gossamer alerts list --state firing --json
            """)

    @Option(help: "Only pending or only firing alerts.") var state: State?
    @Option(help: "Only alerts raised by this agent.") var node: String?
    @Option(help: "Only alerts of this rule.") var rule: String?
    @OptionGroup var options: ClientOptions

    enum State: String, CaseIterable, ExpressibleByArgument {
        case pending, firing
    }

    func run() async throws {
        let query: [(String, String?)] = [("state", self.state?.rawValue), ("node", self.node), ("rule", self.rule)].filter { $0.1 != nil }
        let reply = try await self.options.client.send(.GET, "/v1/alerts", query: query).check()
        if self.options.json { return Output.json(reply.body) }
        let alerts = (Output.object(reply.body)["alerts"] as? [[String: Any]]) ?? []
        guard !alerts.isEmpty else {
            print("No pending or firing alerts")
            return
        }
        let rows = alerts.map { entry -> [String] in
            let alert = (entry["alert"] as? [String: Any]) ?? [:]
            let labels = (alert["labels"] as? [String: Any]) ?? [:]
            var node = Output.string(entry["node"])
            if entry["node_alive"] as? Bool == false { node += " (down)" }
            let summary = ((alert["annotations"] as? [String: Any])?["summary"]).map(Output.string) ?? ""
            return [
                Output.string(alert["rule"]), Output.string(alert["status"]), Output.string(labels["severity"]), node,
                labelText(labels), valueText(alert["value"]), timeText(alert["fired_at"] ?? alert["active_at"]), summary,
            ]
        }
        Output.table(["RULE", "STATUS", "SEVERITY", "NODE", "LABELS", "VALUE", "SINCE", "SUMMARY"], rows)
    }
}

struct AlertsHistory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "Show an agent's alert transitions, newest first.",
        discussion: """
            Each agent keeps the transitions of the alerts it evaluates (in alerts.sqlite in its data dir); use \
            --addr to ask another agent.
            Example:
              gossamer alerts history --rule disk-full --limit 20
            """)

    @Option(help: "Only transitions of this rule.") var rule: String?
    @Option(help: "At most this many (1-10000, default 100).") var limit: Int?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let query: [(String, String?)] = [("rule", self.rule), ("limit", self.limit.map(String.init))].filter { $0.1 != nil }
        let reply = try await self.options.client.send(.GET, "/v1/alerts/history", query: query).check()
        if self.options.json { return Output.json(reply.body) }
        let transitions = (Output.object(reply.body)["transitions"] as? [[String: Any]]) ?? []
        guard !transitions.isEmpty else {
            print("No alert transitions recorded on this agent")
            return
        }
        let rows = transitions.map { transition -> [String] in
            let alert = (transition["alert"] as? [String: Any]) ?? [:]
            return [
                timeText(transition["at"]), Output.string(alert["rule"]),
                "\(Output.string(transition["from"])) → \(Output.string(transition["to"]))", labelText(alert["labels"]),
                valueText(alert["value"]),
            ]
        }
        Output.table(["AT", "RULE", "TRANSITION", "LABELS", "VALUE"], rows)
    }
}

// MARK: - Rules

struct AlertsRules: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules", abstract: "List, show, apply and delete alert rules.",
        subcommands: [
            AlertsRulesList.self, AlertsRulesShow.self, AlertsRulesApply.self, AlertsRulesDelete.self, AlertsRulesHistory.self,
            AlertsRulesRollback.self,
        ],
        defaultSubcommand: AlertsRulesList.self
    )
}

struct AlertsRulesList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the rules every agent evaluates.",
        discussion: """
            SOURCE is `default` for the rules shipped with the agent and `custom` for stored ones (a custom rule may \
            replace a default of the same name).
            Example:
              gossamer alerts rules list --json
            """)

    @OptionGroup var options: ClientOptions

    func run() async throws {
        let reply = try await self.options.client.send(.GET, "/v1/alerts/rules").check()
        if self.options.json { return Output.json(reply.body) }
        let entries = (Output.object(reply.body)["rules"] as? [[String: Any]]) ?? []
        guard !entries.isEmpty else {
            print("No alert rules; add one with `gossamer alerts rules apply FILE`")
            return
        }
        let rows = entries.map { entry -> [String] in
            let rule = (entry["rule"] as? [String: Any]) ?? [:]
            var condition = Output.string(rule["metric"])
            if let match = rule["match"] as? [String: Any], !match.isEmpty {
                condition += "{" + match.sorted { $0.key < $1.key }.map { "\($0.key)=\"\(Output.string($0.value))\"" }.joined(separator: ",") + "}"
            }
            if let aggregate = rule["aggregate"] as? String, aggregate != "none" { condition = "\(aggregate)(\(condition))" }
            condition += " \(Output.string(rule["op"])) \(valueText(rule["threshold"]))"
            return [
                Output.string(rule["name"]), Output.string(entry["source"]), Output.string(rule["severity"]), condition,
                (rule["for"] as? String) ?? "0s",
            ]
        }
        Output.table(["NAME", "SOURCE", "SEVERITY", "CONDITION", "FOR"], rows)
    }
}

struct AlertsRulesShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Print one rule as JSON (the form `rules apply` takes).",
        discussion: """
            Example:
              gossamer alerts rules show disk-full > disk-full.json
            """)

    @Argument(help: "The rule name.") var name: String
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let reply = try await self.options.client.send(.GET, "/v1/alerts/rules/" + GossamerClient.escape(self.name)).check()
        if self.options.json { return Output.json(reply.body) }
        let entry = Output.object(reply.body)
        let rule = try JSONSerialization.data(withJSONObject: entry["rule"] ?? [:], options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        Output.write(rule + Data("\n".utf8))
    }
}

struct AlertsRulesApply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply", abstract: "Create or replace rules from a JSON or YAML file (or a Prometheus rules file).",
        discussion: """
            FILE (- for standard input) holds one rule, a list of rules, `{"rules": [...]}`, or a Prometheus alerting \
            rules file (`groups: [{name, rules: [{alert, expr, for, labels, annotations}]}]`) whose expressions are \
            thresholds on one metric (`metric{label="v"} > 1`, `max(metric) > 1`). Every rule is checked by the agent \
            first; if any is invalid, nothing is applied.
            Example:
              gossamer alerts rules apply rules.yaml
              gossamer alerts rules apply /etc/prometheus/rules/gossamer.yml --dry-run
            """)

    @Argument(help: "The rules file, or - for standard input.") var file: String
    @Flag(help: "Check the rules with the agent without storing them.") var dryRun = false
    @OptionGroup var options: ClientOptions

    static let textFields: Set<String> = [
        "name", "metric", "match", "aggregate", "op", "for", "keep_firing_for", "interval", "no_data", "severity", "labels",
        "annotations", "webhook", "alertmanager", "alert", "record", "expr",
    ]

    func run() async throws {
        let data = try readValue(self.file == "-" ? "-" : "@" + self.file)
        let rules = try Self.rules(from: StructuredFile.parse(data, path: self.file, textFields: Self.textFields), path: self.file)
        guard !rules.isEmpty else { throw CLIFailure("\(self.file) holds no alerting rules") }
        var problems: [String] = []
        var warnings: [String] = []
        for (name, body) in rules {
            let reply = try await self.put(name, body, dryRun: true)
            if (200..<300).contains(reply.status) {
                let answer = Output.object(reply.body)
                for warning in (answer["warnings"] as? [[String: Any]]) ?? [] { warnings.append("\(name): \(Output.string(warning["message"]))") }
            } else {
                problems.append("\(name): \(reply.errorMessage)")
            }
        }
        for warning in warnings { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
        guard problems.isEmpty else {
            throw CLIFailure("nothing applied; \(problems.count) of \(rules.count) rules are invalid:\n  " + problems.joined(separator: "\n  "))
        }
        if self.dryRun {
            if self.options.json { return Output.json(try JSONSerialization.data(withJSONObject: ["valid": rules.map(\.name)])) }
            print("\(rules.count) rule\(rules.count == 1 ? "" : "s") valid; nothing stored (--dry-run)")
            return
        }
        var applied: [[String: Any]] = []
        for (index, (name, body)) in rules.enumerated() {
            let reply = try await self.put(name, body, dryRun: false).check()
            let answer = Output.object(reply.body)
            applied.append(["name": name, "version": answer["version"] ?? NSNull()])
            if !self.options.json && rules.count > 5 {
                FileHandle.standardError.write(Data("\r\(index + 1)/\(rules.count) applied".utf8))
            }
        }
        if !self.options.json && rules.count > 5 { FileHandle.standardError.write(Data("\n".utf8)) }
        if self.options.json { return Output.json(try JSONSerialization.data(withJSONObject: ["applied": applied])) }
        Output.table(["RULE", "VERSION"], applied.map { [Output.string($0["name"]), Output.string($0["version"])] })
    }

    private func put(_ name: String, _ body: Data, dryRun: Bool) async throws -> GossamerClient.Reply {
        try await self.options.client.send(
            .PUT, "/v1/alerts/rules/" + GossamerClient.escape(name), query: dryRun ? [("dry_run", nil)] : [], body: body,
            headers: [("Content-Type", "application/json")])
    }

    /// The rules a file holds, each as its name and JSON body.
    static func rules(from document: Any, path: String) throws -> [(name: String, body: Data)] {
        var objects: [Any]
        if let object = document as? [String: Any], object["groups"] != nil {
            let data = try JSONSerialization.data(withJSONObject: object)
            let file: PrometheusRuleFile
            do {
                file = try JSONDecoder().decode(PrometheusRuleFile.self, from: data)
            } catch {
                throw CLIFailure("\(path) looks like a Prometheus rules file but is not one: \(error)")
            }
            let translation: PrometheusRuleFile.Translation
            do {
                translation = try file.translate()
            } catch {
                throw CLIFailure("nothing applied; \(path): " + error.errors.map(\.message).joined(separator: "\n  "))
            }
            for name in translation.skipped { FileHandle.standardError.write(Data("note: skipping recording rule \(name)\n".utf8)) }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return try translation.rules.map { ($0.name, try encoder.encode($0)) }
        } else if let object = document as? [String: Any], let list = object["rules"] as? [Any] {
            objects = list
        } else if let list = document as? [Any] {
            objects = list
        } else if let object = document as? [String: Any] {
            objects = [object]
        } else {
            throw CLIFailure("\(path) must hold a rule, a list of rules, {\"rules\": [...]} or a Prometheus rules file")
        }
        return try objects.enumerated().map { index, object in
            guard let rule = object as? [String: Any], let name = rule["name"] as? String, !name.isEmpty else {
                throw CLIFailure("\(path): rule \(index + 1) has no name")
            }
            return (name, try JSONSerialization.data(withJSONObject: rule, options: [.sortedKeys, .withoutEscapingSlashes]))
        }
    }
}

struct AlertsRulesDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete a rule (a default rule is disabled until a rule of its name is applied).",
        discussion: """
            Example:
              gossamer alerts rules delete disk-full
            """)

    @Argument(help: "The rule name.") var name: String
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let reply = try await self.options.client.send(.DELETE, "/v1/alerts/rules/" + GossamerClient.escape(self.name)).check()
        if self.options.json { return Output.json(reply.body) }
        print("deleted rule \(self.name)")
    }
}

struct AlertsRulesHistory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "List the stored versions of a rule, newest first.",
        discussion: """
            Rules are config records, so every change is a version. Compare two with `--diff A,B`; put an old one \
            back with `alerts rules rollback`.
            Example:
              gossamer alerts rules history disk-full
              gossamer alerts rules history disk-full --diff 1,2
            """)

    @Argument(help: "The rule name.") var name: String
    @Option(help: ArgumentHelp("Print a unified diff of two versions instead.", valueName: "A,B")) var diff: String?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let path = "/v1/alerts/rules/" + GossamerClient.escape(self.name)
        if let diff = self.diff {
            let reply = try await self.options.client.send(.GET, path, query: [("diff", diff)]).check()
            return Output.write(reply.body)
        }
        let reply = try await self.options.client.send(.GET, path, query: [("history", nil)]).check()
        if self.options.json { return Output.json(reply.body) }
        let versions = (Output.object(reply.body)["versions"] as? [[String: Any]]) ?? []
        let rows = versions.map { version -> [String] in
            let rule = (version["rule"] as? [String: Any]) ?? [:]
            let condition = version["deleted"] as? Bool == true
                ? "(deleted)" : "\(Output.string(rule["metric"])) \(Output.string(rule["op"])) \(valueText(rule["threshold"]))"
            return [Output.string(version["version"]), Output.string(version["updated_at"]), Output.string(version["author"]), condition]
        }
        Output.table(["VERSION", "UPDATED", "AUTHOR", "CONDITION"], rows)
    }
}

struct AlertsRulesRollback: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback", abstract: "Put a rule back as it was at an earlier version (a new version).",
        discussion: """
            Example:
              gossamer alerts rules rollback disk-full 1
            """)

    @Argument(help: "The rule name.") var name: String
    @Argument(help: "The version to go back to (see `alerts rules history`).") var version: Int
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let reply = try await self.options.client.send(
            .POST, "/v1/alerts/rules/" + GossamerClient.escape(self.name), query: [("rollback", String(self.version))]).check()
        if self.options.json { return Output.json(reply.body) }
        let answer = Output.object(reply.body)
        if answer["deleted"] != nil {
            print("rule \(self.name) deleted again (version \(self.version) was a delete)")
        } else {
            print("rule \(self.name) is back to version \(self.version), now version \(Output.string(answer["version"]))")
        }
    }
}

// MARK: - Silences

struct AlertsSilence: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "silence", abstract: "Silence notifications of matching alerts for a while.",
        subcommands: [AlertsSilenceAdd.self, AlertsSilenceList.self, AlertsSilenceExpire.self],
        defaultSubcommand: AlertsSilenceList.self
    )
}

struct AlertsSilenceAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add", abstract: "Silence alerts whose labels match, until the silence ends.",
        discussion: """
            Matchers are label=value, label!=value, label=~regex or label!~regex (regexes match the whole value). \
            Silenced alerts still show in `alerts list`; only their notifications stop.
            Example:
              gossamer alerts silence add --match alertname=disk-full --match mount=/data \\
                --duration 2h --comment resizing
            """)

    @Option(name: .customLong("match"), help: ArgumentHelp("A label matcher (repeatable).", valueName: "label=value"))
    var matchers: [String] = []
    @Option(help: "How long the silence lasts, e.g. 30m or 2h (default 1h).") var duration: String = "1h"
    @Option(help: "Why; shown in `silence list`.") var comment: String = ""
    @Option(help: "Who silences (default: $USER).") var author: String?
    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard !self.matchers.isEmpty else { throw ValidationError("give at least one --match label=value (e.g. --match alertname=disk-full)") }
        for matcher in self.matchers where Self.parse(matcher) == nil {
            throw ValidationError("--match takes label=value, label!=value, label=~regex or label!~regex, not '\(matcher)'")
        }
    }

    static func parse(_ text: String) -> [String: String]? {
        for op in ["!~", "=~", "!=", "="] {
            guard let range = text.range(of: op) else { continue }
            let name = String(text[..<range.lowerBound])
            guard !name.isEmpty else { return nil }
            return ["name": name, "op": op, "value": String(text[range.upperBound...])]
        }
        return nil
    }

    func run() async throws {
        let body: [String: Any] = [
            "matchers": self.matchers.compactMap(Self.parse), "duration": self.duration, "comment": self.comment,
            "created_by": self.author ?? ProcessInfo.processInfo.environment["USER"] ?? "gossamer",
        ]
        let data = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes])
        let reply = try await self.options.client.send(.POST, "/v1/alerts/silences", body: data, headers: [("Content-Type", "application/json")]).check()
        if self.options.json { return Output.json(reply.body) }
        let silence = Output.object(reply.body)
        print("silence \(Output.string(silence["id"])) until \(timeText(silence["ends_at"]))")
    }
}

struct AlertsSilenceList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List active silences (with --expired, ended ones too).",
        discussion: """
            Example:
              gossamer alerts silence list --expired
            """)

    @Flag(help: "Include silences that have ended.") var expired = false
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let reply = try await self.options.client.send(.GET, "/v1/alerts/silences", query: self.expired ? [("expired", nil)] : []).check()
        if self.options.json { return Output.json(reply.body) }
        let silences = (Output.object(reply.body)["silences"] as? [[String: Any]]) ?? []
        guard !silences.isEmpty else {
            print("No \(self.expired ? "" : "active ")silences")
            return
        }
        let rows = silences.map { silence -> [String] in
            let matchers = ((silence["matchers"] as? [[String: Any]]) ?? []).map {
                "\(Output.string($0["name"]))\(Output.string($0["op"]))\(Output.string($0["value"]))"
            }
            return [
                Output.string(silence["id"]), matchers.joined(separator: ","), timeText(silence["starts_at"]), timeText(silence["ends_at"]),
                Output.string(silence["created_by"]), Output.string(silence["comment"]),
            ]
        }
        Output.table(["ID", "MATCHERS", "STARTS", "ENDS", "BY", "COMMENT"], rows)
    }
}

struct AlertsSilenceExpire: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "expire", abstract: "End a silence now.",
        discussion: """
            Example:
              gossamer alerts silence expire 3f2a9c1e-…
            """)

    @Argument(help: "The silence id (from `silence list`).") var id: String
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let reply = try await self.options.client.send(.DELETE, "/v1/alerts/silences/" + GossamerClient.escape(self.id)).check()
        if self.options.json { return Output.json(reply.body) }
        print("silence \(self.id) expired")
    }
}
