import ArgumentParser
import Client
import ConfigCenter
import Foundation
import Yams

struct ServicesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "services",
        abstract: "Register, look up and watch service instances.",
        discussion: """
            An instance belongs to the agent it registers with (its owner), which runs its checks; every agent \
            answers lookups from its own copy. An instance is passing only while its checks pass and its owner is alive.

            Examples:
              gossamer services register payments payments-1 --address 10.0.0.1 --port 80
              gossamer services register --file payments-1.yaml
              gossamer services list
              gossamer services show payments --passing --tag v2
              gossamer services watch payments --passing
              gossamer services check pass payments-1:ttl --note ok
              gossamer services maintenance payments payments-1 on --reason upgrade
              gossamer services settings payments --protect-threshold 0.5
              gossamer services drain on
              gossamer services deregister payments payments-1
            """,
        subcommands: [
            ServicesList.self, ServicesShow.self, ServicesRegister.self, ServicesDeregister.self, ServicesWatch.self,
            ServicesMaintenance.self, ServicesSettings.self, ServicesCheck.self, ServicesDrain.self,
        ]
    )
}

/// A registry API path, e.g. `registryPath("services", name, "instances", id)` → `/v1/services/payments/instances/payments-1`.
/// Each segment is percent-encoded except `:`, which instance and check ids use (`payments-1:ttl`) and which a
/// path segment may hold as it is.
func registryPath(_ segments: String...) -> String {
    "/v1/" + segments.map { GossamerClient.escape($0).replacingOccurrences(of: "%3A", with: ":") }.joined(separator: "/")
}

/// `on` or `off`, for maintenance and drain.
enum OnOff: String, CaseIterable, ExpressibleByArgument {
    case on, off
}

/// The lookup filters shared by `show` and `watch`: `passing`, `tag=` (repeatable, all must match) and `zone=`.
struct InstanceFilters: ParsableArguments {
    @Flag(help: "Only instances that are passing (every instance when the passing share is below the protect threshold).")
    var passing = false
    @Option(name: .customLong("tag"), help: "Only instances with this tag (repeatable: all must match).")
    var tags: [String] = []
    @Option(help: "Only instances in this zone.")
    var zone: String?

    var isEmpty: Bool { !self.passing && self.tags.isEmpty && self.zone == nil }

    var query: [(String, String?)] {
        var query: [(String, String?)] = self.passing ? [("passing", nil)] : []
        query += self.tags.map { ("tag", $0) }
        if let zone = self.zone { query.append(("zone", zone)) }
        return query
    }
}

extension ClientOptions {
    /// `PUT`s a JSON body to the agent and returns the answer unchecked.
    func put(_ path: String, json body: [String: Any]) async throws -> GossamerClient.Reply {
        let data = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes])
        return try await self.client.send(.PUT, path, body: data, headers: [("Content-Type", "application/json")])
    }
}

/// How instances read in tables and one-line summaries.
enum InstanceOutput {
    static let header = ["ID", "ADDRESS", "PORT", "STATUS", "OWNER", "ZONE", "WEIGHT", "TAGS"]

    static func row(_ instance: [String: Any]) -> [String] {
        var owner = Output.string(instance["owner"])
        if instance["owner_alive"] as? Bool == false { owner += " (down)" }
        let tags = (instance["tags"] as? [String]) ?? []
        return [
            Output.string(instance["id"]), Output.string(instance["address"]), Output.string(instance["port"]),
            Output.string(instance["status"]), owner, Output.string(instance["zone"]), Output.string(instance["weight"]),
            tags.isEmpty ? "-" : tags.joined(separator: ","),
        ]
    }

    /// One instance as the API answers it: its row, then its checks (their ids are what `services check` takes).
    static func detailed(_ instance: [String: Any]) {
        Output.table(self.header, [self.row(instance)])
        if let reason = instance["maintenance_reason"] as? String, instance["maintenance"] as? Bool == true {
            print("maintenance: \(reason)")
        }
        let checks = (instance["checks"] as? [[String: Any]]) ?? []
        guard !checks.isEmpty else { return }
        print("")
        Output.table(
            ["CHECK", "TYPE", "STATUS", "UPDATED", "OUTPUT"],
            checks.map { check in ["id", "type", "status", "updated_at", "output"].map { Output.string(check[$0]) } })
    }

    /// `payments: 3 instances, 2 passing [payments-1 passing, payments-2 critical, …]` for a lookup answer.
    static func summary(_ answer: [String: Any], limit: Int = 8) -> String {
        let instances = (answer["instances"] as? [[String: Any]]) ?? []
        let passing = instances.filter { $0["status"] as? String == "passing" }.count
        var line = "\(Output.string(answer["service"])): \(instances.count) instance\(instances.count == 1 ? "" : "s"), \(passing) passing"
        if answer["protected"] as? Bool == true { line += " (protected)" }
        guard !instances.isEmpty else { return line }
        var listed = instances.prefix(limit).map { "\(Output.string($0["id"])) \(Output.string($0["status"]))" }
        if instances.count > limit { listed.append("… \(instances.count - limit) more") }
        return line + " [" + listed.joined(separator: ", ") + "]"
    }
}

struct ServicesList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List every service with its instance counts.",
        discussion: """
            PASSING counts the instances whose checks pass and whose owner is alive; PROTECT is the protect threshold \
            (off, or the passing share below which lookups list every instance).
            Example:
              gossamer services list --json
            """)

    @OptionGroup var options: ClientOptions

    func run() async throws {
        let reply = try await self.options.client.send(.GET, registryPath("services")).check()
        if self.options.json { return Output.json(reply.body) }
        let services = Output.array(reply.body)
        guard !services.isEmpty else {
            print("No services registered; register one with `gossamer services register`")
            return
        }
        let rows = services.map { service -> [String] in
            let threshold = (service["protect_threshold"] as? NSNumber)?.doubleValue ?? 0
            return [
                Output.string(service["name"]), Output.string(service["instances"]), Output.string(service["passing"]),
                threshold > 0 ? Output.string(service["protect_threshold"]) : "off",
            ]
        }
        Output.table(["NAME", "INSTANCES", "PASSING", "PROTECT"], rows)
    }
}

struct ServicesShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show a service's instances (or one instance with its checks).",
        discussion: """
            Filters match on the agent: --passing keeps passing instances, each --tag must match, --zone picks a zone. \
            When the passing share is below the service's protect threshold, --passing lists every instance (marked protected).
            Example:
              gossamer services show payments --passing --tag v2
            """)

    @Argument(help: "The service name, e.g. payments.") var name: String
    @Argument(help: "Show only this instance, with its checks.") var id: String?
    @OptionGroup var filters: InstanceFilters
    @OptionGroup var options: ClientOptions

    func validate() throws {
        if self.id != nil && !self.filters.isEmpty {
            throw ValidationError("--passing, --tag and --zone filter a service's instances; they do not apply to one instance")
        }
    }

    func run() async throws {
        if let id = self.id {
            let reply = try await self.options.client.send(.GET, registryPath("services", self.name, "instances", id)).check()
            if self.options.json { return Output.json(reply.body) }
            return InstanceOutput.detailed(Output.object(reply.body))
        }
        let reply = try await self.options.client.send(.GET, registryPath("services", self.name), query: self.filters.query).check()
        if self.options.json { return Output.json(reply.body) }
        let answer = Output.object(reply.body)
        let instances = (answer["instances"] as? [[String: Any]]) ?? []
        guard !instances.isEmpty else {
            print(self.filters.isEmpty ? "No instances of \(self.name) are registered" : "No instances of \(self.name) match")
            return
        }
        Output.table(InstanceOutput.header, instances.map(InstanceOutput.row))
        if answer["protected"] as? Bool == true {
            print("protected: every instance listed because the passing share is below the threshold")
        }
    }
}

struct ServicesRegister: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "register", abstract: "Register (or re-register) a service instance with this agent, which becomes its owner.",
        discussion: """
            Give the instance as flags, or with --file as a JSON or YAML file (- for standard input) that holds the \
            fields of the API's registration body plus name and id, e.g.
              {"name": "web", "id": "web-1", "address": "10.0.0.7", "port": 80,
               "tags": ["v2"], "checks": [{"type": "ttl", "ttl": "30s"}]}
            --interval and --timeout apply to the --http-check and --tcp-check checks. Without checks the instance is \
            passing at once; with checks it is critical until they pass (unless --status says otherwise).
            Example:
              gossamer services register web web-1 --address 10.0.0.7 --port 80 --tag v2
            """)

    @Argument(help: "The service name: lower-case letters, digits, '.', '_' and '-' (with --file: taken from the file).")
    var name: String?
    @Argument(help: "The instance id, unique within the service (with --file: taken from the file).")
    var id: String?
    @Option(help: ArgumentHelp("A JSON or YAML file with the whole registration, or - for standard input.", valueName: "file"))
    var file: String?
    @Option(help: "The instance's host name or IP.") var address: String?
    @Option(help: "The instance's port (1-65535).") var port: Int?
    @Option(name: .customLong("tag"), help: "A tag (repeatable).") var tags: [String] = []
    @Option(help: ArgumentHelp("Metadata (repeatable).", valueName: "key=value")) var meta: [String] = []
    @Option(help: "Load-balancing weight, 1-1000 (default: 100).") var weight: Int?
    @Option(help: "The instance's zone, e.g. eu-west-1a.") var zone: String?
    @Option(help: "Health before the first check result.") var status: InitialStatus?
    @Option(help: ArgumentHelp("Deregister the instance after it has been critical this long (at least 1m).", valueName: "duration"))
    var deregisterCriticalAfter: String?
    @Option(help: ArgumentHelp("An HTTP check: GET this URL, 2xx is passing, 429 warning (repeatable).", valueName: "url"))
    var httpCheck: [String] = []
    @Option(help: ArgumentHelp("A TCP check: connect to this address (repeatable).", valueName: "host:port"))
    var tcpCheck: [String] = []
    @Option(help: ArgumentHelp("A TTL check: the instance reports in with `services check` before this runs out (repeatable).", valueName: "duration"))
    var ttlCheck: [String] = []
    @Option(help: ArgumentHelp("How often the HTTP and TCP checks run (default: 10s).", valueName: "duration")) var interval: String?
    @Option(help: ArgumentHelp("Time limit of each HTTP and TCP check (default: 2s).", valueName: "duration")) var timeout: String?
    @OptionGroup var options: ClientOptions

    enum InitialStatus: String, CaseIterable, ExpressibleByArgument {
        case passing, warning, critical
    }

    func validate() throws {
        if self.file != nil {
            let given: [(String, Bool)] = [
                ("--address", self.address != nil), ("--port", self.port != nil), ("--tag", !self.tags.isEmpty), ("--meta", !self.meta.isEmpty),
                ("--weight", self.weight != nil), ("--zone", self.zone != nil), ("--status", self.status != nil),
                ("--deregister-critical-after", self.deregisterCriticalAfter != nil), ("--http-check", !self.httpCheck.isEmpty),
                ("--tcp-check", !self.tcpCheck.isEmpty), ("--ttl-check", !self.ttlCheck.isEmpty), ("--interval", self.interval != nil),
                ("--timeout", self.timeout != nil),
            ]
            let flags = given.filter(\.1).map(\.0)
            if !flags.isEmpty {
                throw ValidationError("--file holds the whole registration; put \(flags.joined(separator: ", ")) in the file instead")
            }
            return
        }
        guard self.name != nil, self.id != nil else {
            throw ValidationError("give the service name and instance id (`services register payments payments-1 --address … --port …`), or --file")
        }
        guard self.address != nil, self.port != nil else { throw ValidationError("--address and --port are required (or give the registration with --file)") }
        _ = try self.metadata()
        let durations: [(String, String?)] =
            [("deregister-critical-after", self.deregisterCriticalAfter), ("interval", self.interval), ("timeout", self.timeout)]
            + self.ttlCheck.map { ("ttl-check", $0) }
        for case (let flag, let text?) in durations where DurationText.parse(text) == nil {
            throw ValidationError("--\(flag) must be a duration such as 30s, 10m or 1m30s, not '\(text)'")
        }
        if (self.interval != nil || self.timeout != nil) && self.httpCheck.isEmpty && self.tcpCheck.isEmpty {
            throw ValidationError("--interval and --timeout apply to --http-check and --tcp-check; add one")
        }
    }

    /// `--meta key=value` flags as a dictionary.
    func metadata() throws(ValidationError) -> [String: String] {
        var meta: [String: String] = [:]
        for item in self.meta {
            guard let equals = item.firstIndex(of: "="), equals != item.startIndex else {
                throw ValidationError("--meta must be key=value, not '\(item)'")
            }
            let key = String(item[..<equals])
            guard meta[key] == nil else { throw ValidationError("--meta \(key) is given twice") }
            meta[key] = String(item[item.index(after: equals)...])
        }
        return meta
    }

    func run() async throws {
        let (name, id, body) = if let file = self.file { try self.registration(fromFile: file) } else { (self.name ?? "", self.id ?? "", try self.flagBody()) }
        let reply = try await self.options.put(registryPath("services", name, "instances", id), json: body).check()
        if self.options.json { return Output.json(reply.body) }
        print("Registered \(id) in \(name) with this agent, its owner")
        InstanceOutput.detailed(Output.object(reply.body))
    }

    /// The registration body from the flags (`validate()` has checked them).
    func flagBody() throws -> [String: Any] {
        var body: [String: Any] = ["address": self.address ?? "", "port": self.port ?? 0]
        if !self.tags.isEmpty { body["tags"] = self.tags }
        if !self.meta.isEmpty { body["meta"] = try self.metadata() }
        body["weight"] = self.weight
        body["zone"] = self.zone
        body["status"] = self.status?.rawValue
        body["deregister_critical_after"] = self.deregisterCriticalAfter
        func probe(_ check: [String: Any]) -> [String: Any] {
            var check = check
            check["interval"] = self.interval
            check["timeout"] = self.timeout
            return check
        }
        let checks: [[String: Any]] =
            self.httpCheck.map { probe(["type": "http", "url": $0]) } + self.tcpCheck.map { probe(["type": "tcp", "tcp": $0]) }
            + self.ttlCheck.map { ["type": "ttl", "ttl": $0] }
        if !checks.isEmpty { body["checks"] = checks }
        return body
    }

    /// The name, id and body from a registration file; `name` and `id` arguments, when given, must agree with it.
    func registration(fromFile path: String) throws -> (name: String, id: String, body: [String: Any]) {
        var body = try RegistrationFile.parse(try readValue(path == "-" ? "-" : "@" + path), path: path)
        var fields: [String] = []
        for (field, argument) in [("name", self.name), ("id", self.id)] {
            let inFile = body.removeValue(forKey: field).map { Output.string($0) }
            if let argument, let inFile, argument != inFile {
                throw CLIFailure("the \(field) argument '\(argument)' differs from the \(field) '\(inFile)' in \(path)")
            }
            guard let value = argument ?? inFile, !value.isEmpty else {
                throw CLIFailure("\(path) has no \(field); add one to it or give it as an argument")
            }
            fields.append(value)
        }
        return (fields[0], fields[1], body)
    }
}

/// A registration file: JSON (as it is), or YAML converted to the same JSON.
enum RegistrationFile {
    /// Fields whose YAML scalars stay text (so `version: 2.10` in meta, `id: 007` or `ttl: 30` keep their spelling);
    /// the others take YAML's types (`port: 9001` is a number).
    static let textFields: Set<String> = [
        "name", "id", "address", "zone", "status", "deregister_critical_after", "tags", "meta", "type", "url", "tcp", "ttl", "interval",
        "timeout",
    ]

    static func parse(_ data: Data, path: String) throws -> [String: Any] {
        guard let registration = try StructuredFile.parse(data, path: path, textFields: self.textFields) as? [String: Any] else {
            throw CLIFailure("\(path) must hold one registration: an object with name, id, address, port, …")
        }
        return registration
    }
}

/// A JSON or YAML file read as JSON values (YAML converted to the same JSON).
enum StructuredFile {
    /// Parses `data` (JSON when the path ends `.json` or the text starts with `{` or `[`, YAML otherwise). Scalars under
    /// a key in `textFields` stay text, whatever YAML would make of them.
    static func parse(_ data: Data, path: String, textFields: Set<String>) throws -> Any {
        let text = String(decoding: data, as: UTF8.self)
        let lower = path.lowercased()
        let isYAML = lower.hasSuffix(".yaml") || lower.hasSuffix(".yml")
        let first = text.drop { $0.isWhitespace }.first
        if lower.hasSuffix(".json") || (!isYAML && (first == "{" || first == "[")) {
            do {
                return try JSONSerialization.jsonObject(with: data)
            } catch {
                throw CLIFailure("\(path) is not valid JSON: \((error as NSError).userInfo[NSDebugDescriptionErrorKey] ?? error)")
            }
        }
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw CLIFailure("\(path) is not valid YAML: \(error)")
        }
        return try node.map { try self.json($0, text: false, textFields: textFields) } ?? NSNull()
    }

    /// A YAML node as a JSON value; `text`: scalars stay strings (null aside).
    static func json(_ node: Node, text: Bool, textFields: Set<String>) throws -> Any {
        switch node {
        case .scalar(let scalar):
            switch node.any {
            case let null as NSNull: return null
            case _ where text: return scalar.string
            case let value as Bool: return value
            case let value as Int: return value
            case let value as Double where value.isFinite: return value
            default: return scalar.string  // text, and timestamps, binary, .inf and .nan as written
            }
        case .sequence(let sequence):
            return try sequence.map { try self.json($0, text: text, textFields: textFields) }
        case .mapping(let mapping):
            var object: [String: Any] = [:]
            for (key, value) in mapping {
                guard let name = key.string else { throw CLIFailure("a key in the file is not text (line \((key.mark?.line).map(String.init) ?? "?"))") }
                object[name] = try self.json(value, text: text || textFields.contains(name), textFields: textFields)
            }
            return object
        case .alias:
            throw CLIFailure("YAML aliases are not supported")
        }
    }
}

struct ServicesDeregister: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deregister", abstract: "Remove a service instance (through any agent).",
        discussion: """
            Example:
              gossamer services deregister payments payments-1
            """)

    @Argument(help: "The service name.") var name: String
    @Argument(help: "The instance id.") var id: String
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let reply = try await self.options.client.send(.DELETE, registryPath("services", self.name, "instances", self.id)).check()
        if self.options.json { return Output.json(reply.body) }
        print("Deregistered \(self.id) from \(self.name)")
    }
}

struct ServicesWatch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch", abstract: "Print a service's instances now and after every change, until interrupted.",
        discussion: """
            Each line is a time, the counts and each instance's status; --json prints each event's JSON (the same as \
            `services show --json`) on one line. Reconnects by itself if the stream breaks after it started.
            Example:
              gossamer services watch payments --passing --zone eu-west-1a
            """)

    @Argument(help: "The service name.") var name: String
    @OptionGroup var filters: InstanceFilters
    @Option(help: "Stop after this many updates (default: never).") var count: Int?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let path = registryPath("services", self.name, "watch")
        var seen = 0
        var connected = false
        var failures = 0
        while true {
            do {
                try await self.options.client.stream(path, query: self.filters.query) { event in
                    (connected, failures) = (true, 0)
                    guard event.event == "instances" else { return true }
                    self.show(event.data)
                    seen += 1
                    return self.count.map { seen < $0 } ?? true
                }
                if let count = self.count, seen >= count { return }
                FileHandle.standardError.write(Data("watch: the agent closed the stream; reconnecting in 1s\n".utf8))
            } catch let error as ClientError where connected && failures < 30 {
                // A failure to start is reported at once (exit 1); a broken stream is retried.
                failures += 1
                FileHandle.standardError.write(Data("watch: \(error); retrying in 1s\n".utf8))
            }
            try await Task.sleep(for: .seconds(1))
        }
    }

    func show(_ data: String) {
        if self.options.json { return Output.line(data) }
        let now = Calendar.current.dateComponents([.hour, .minute, .second], from: Date())
        let time = String(format: "%02d:%02d:%02d", now.hour ?? 0, now.minute ?? 0, now.second ?? 0)
        Output.line("\(time) \(InstanceOutput.summary(Output.object(Data(data.utf8))))")
    }
}

struct ServicesMaintenance: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "maintenance", abstract: "Take an instance out of rotation (on) or put it back (off).",
        discussion: """
            An instance in maintenance stays registered but is never passing, on every agent.
            Example:
              gossamer services maintenance payments payments-1 on --reason "kernel upgrade"
            """)

    @Argument(help: "The service name.") var name: String
    @Argument(help: "The instance id.") var id: String
    @Argument(help: "on: out of rotation, off: back in.") var mode: OnOff
    @Option(help: "Why the instance is in maintenance (with on).") var reason: String?
    @OptionGroup var options: ClientOptions

    func validate() throws {
        if self.mode == .off && self.reason != nil { throw ValidationError("--reason goes with `on`") }
    }

    func run() async throws {
        var body: [String: Any] = ["enable": self.mode == .on]
        body["reason"] = self.reason
        let reply = try await self.options.put(registryPath("services", self.name, "instances", self.id, "maintenance"), json: body).check()
        if self.options.json { return Output.json(reply.body) }
        print(
            self.mode == .on
                ? "\(self.id) of \(self.name) is in maintenance: registered but never passing; undo with `gossamer services maintenance \(self.name) \(self.id) off`"
                : "\(self.id) of \(self.name) is out of maintenance: its checks decide its status again")
        InstanceOutput.detailed(Output.object(reply.body))
    }
}

struct ServicesSettings: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "settings", abstract: "Set a service's protect threshold.",
        discussion: """
            When the share of passing instances falls below the threshold, lookups with --passing list every instance, \
            so a partial outage does not push all traffic onto the survivors. 0 turns protection off (the default).
            Example:
              gossamer services settings payments --protect-threshold 0.5
            """)

    @Argument(help: "The service name.") var name: String
    @Option(help: ArgumentHelp("Passing share (0-1) below which --passing lookups list every instance; 0: off.", valueName: "share"))
    var protectThreshold: Double
    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard (0...1).contains(self.protectThreshold) else {
            throw ValidationError("--protect-threshold must be from 0 to 1 (a share of instances), not \(self.protectThreshold)")
        }
    }

    func run() async throws {
        let reply = try await self.options.put(registryPath("services", self.name), json: ["protect_threshold": self.protectThreshold]).check()
        if self.options.json { return Output.json(reply.body) }
        let threshold = Output.object(reply.body)["protect_threshold"] ?? self.protectThreshold
        print(
            (threshold as? NSNumber)?.doubleValue == 0
                ? "Protection is off for \(self.name)"
                : "\(self.name) is protected below a passing share of \(Output.string(threshold))")
    }
}

struct ServicesCheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Report the result of a TTL check: pass, warn or fail.",
        discussion: """
            Send it to the agent that owns the instance (the one it registered with); `services show NAME ID` lists \
            its checks' ids. A TTL check that hears nothing before its ttl runs out turns critical.
            Example:
              gossamer services check pass payments-1:ttl --note "queue depth 3"
            """)

    enum Outcome: String, CaseIterable, ExpressibleByArgument {
        case pass, warn, fail
    }

    @Argument(help: "The result to report.") var outcome: Outcome
    @Argument(help: "The check id, e.g. payments-1:ttl.") var checkID: String
    @Option(help: "Text recorded as the check's output.") var note: String?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let reply = try await self.options.client.send(
            .PUT, registryPath("checks", self.checkID, self.outcome.rawValue), query: self.note.map { [("note", $0)] } ?? [])
        if reply.status == 409, reply.errorCode == "not_owner" {
            let error = Output.object(reply.body)["error"] as? [String: Any] ?? [:]
            let owner = Output.string(error["owner"])
            let retry = "gossamer services check \(self.outcome.rawValue) \(self.checkID)" + ((error["owner_http"] as? String).map { " --addr \($0)" } ?? "")
            throw CLIFailure("check \(self.checkID) belongs to an instance owned by agent \(owner); report it there: \(retry)")
        }
        _ = try reply.check()
        if self.options.json { return Output.json(reply.body) }
        let check = Output.object(reply.body)["check"] as? [String: Any] ?? [:]
        let output = (check["output"] as? String).map { ": \($0)" } ?? ""
        print("Check \(self.checkID) is \(Output.string(check["status"]))\(output)")
    }
}

struct ServicesDrain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain", abstract: "Put every instance this agent owns in maintenance (on), or undo it (off).",
        discussion: """
            The flag travels in gossip, so every agent stops listing the drained instances as passing; use it before \
            stopping an agent. `gossamer agent --drain` starts an agent drained.
            Example:
              gossamer services drain on --addr http://10.0.0.5:7700
            """)

    @Argument(help: "on: drain the agent at --addr, off: undo it.") var mode: OnOff
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let reply = try await self.options.put("/v1/agent/drain", json: ["enable": self.mode == .on]).check()
        if self.options.json { return Output.json(reply.body) }
        let agent = reply.header("X-Gossamer-Node").map { "Agent \($0)" } ?? "The agent at \(self.options.client.base)"
        print(
            self.mode == .on
                ? "\(agent) is drained: every instance it owns is in maintenance on every agent; undo with `gossamer services drain off`"
                : "\(agent) is no longer drained: its instances' checks decide their status again")
    }
}
