import ArgumentParser
import Client
import ConfigCenter
import Server
import Foundation

struct KVCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kv",
        abstract: "Read, write and watch versioned configuration.",
        discussion: """
            Examples:
              gossamer kv put prod/payments/db.yaml @db.yaml --type yaml
              gossamer kv get prod/payments/db.yaml
              gossamer kv list prod/
              gossamer kv history prod/payments/db.yaml
              gossamer kv diff prod/payments/db.yaml 1 2
              gossamer kv rollback prod/payments/db.yaml 1
              gossamer kv watch prod/ --recurse
              gossamer kv put prod/payments/db.yaml @db.yaml --replicas all --timeout 5s
              gossamer kv get prod/payments/db.yaml --holders
              gossamer kv conflicts prod/
            """,
        subcommands: [
            KVGet.self, KVPut.self, KVDelete.self, KVList.self, KVHistory.self, KVDiff.self, KVRollback.self, KVWatch.self, KVTxn.self,
            KVConflicts.self,
        ]
    )
}

/// `/v1/kv/<key>` with the key's segments percent-encoded.
func kvPath(_ key: String, base: String = "/v1/kv/") -> String {
    base + key.split(separator: "/", omittingEmptySubsequences: false).map { GossamerClient.escape(String($0)) }.joined(separator: "/")
}

/// Reads a value given as text, `@file`, or `-` (standard input).
func readValue(_ argument: String) throws -> Data {
    if argument == "-" { return FileHandle.standardInput.readDataToEndOfFile() }
    if argument.hasPrefix("@") {
        let path = String(argument.dropFirst())
        guard let data = FileManager.default.contents(atPath: path) else { throw CLIFailure("cannot read '\(path)': check the path") }
        return data
    }
    return Data(argument.utf8)
}

/// `--replicas K|all` and `--timeout DURATION` on writes: answer only once K agents (this one included) hold it.
struct WriteConcernOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Answer only once this many agents (this one included) hold the write, or 'all' live agents (default: 1, this agent).",
        valueName: "K|all"))
    var replicas: String?
    @Option(help: ArgumentHelp("With --replicas: how long the agent waits for them, up to 2m (default: 5s).", valueName: "duration"))
    var timeout: String?

    func validate() throws {
        _ = try self.concern()
    }

    /// The write concern asked for; nil when none beyond the agent that takes the write.
    func concern() throws(ValidationError) -> GossamerClient.WriteConcern? {
        guard let replicas = self.replicas else {
            if self.timeout != nil { throw ValidationError("--timeout needs --replicas (how many agents must hold the write), e.g. --replicas all --timeout 5s") }
            return nil
        }
        var timeout: Duration?
        if let text = self.timeout {
            guard let parsed = DurationText.parse(text) else {
                throw ValidationError("--timeout must be a duration up to 2m such as 500ms, 5s or 1m30s, not '\(text)'")
            }
            timeout = parsed
        }
        do {
            return try GossamerClient.WriteConcern(replicas: replicas, timeout: timeout)
        } catch {
            throw ValidationError("--\(error)")
        }
    }

    /// The validated concern (`validate()` already refused bad values).
    var value: GossamerClient.WriteConcern? { (try? self.concern()) ?? nil }
    var query: [(String, String?)] { self.value?.query ?? [] }
}

extension GossamerClient.Reply {
    /// `check()` for writes: a write concern that was not met (504) prints the agent's message (and, with
    /// --json, its body) and exits 1; the write itself is applied and keeps replicating.
    func checkWrite(json: Bool, hint: String = "see which agents hold what with `gossamer consistency`") throws -> Self {
        if let timeout = self.replicationTimeout {
            if json { Output.json(self.body) }
            throw CLIFailure("\(timeout.message) (HTTP 504); \(hint)")
        }
        return try self.check()
    }
}

struct KVGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get", abstract: "Print a key's value (or, with --detailed, its metadata too).")

    @Argument(help: "The key, e.g. prod/payments/db.yaml.") var key: String
    @Option(help: "Read this version from history instead of the current one.") var version: Int?
    @Flag(help: "Show version, stamp, author and type above the value.") var detailed = false
    @Flag(name: [.customLong("holders"), .customLong("stale-check")], help: "Show which version each live agent holds, and whether they all agree.") var holders = false
    @OptionGroup var options: ClientOptions

    func validate() throws {
        if self.holders && (self.version != nil || self.detailed) {
            throw ValidationError("--holders shows every agent's current version; it cannot be combined with --version or --detailed")
        }
    }

    func run() async throws {
        if self.holders { return try await self.showHolders() }
        var query: [(String, String?)] = []
        if let version = self.version { query.append(("version", "\(version)")) }
        if !self.options.json && !self.detailed { query.append(("raw", nil)) }
        let reply = try await self.options.client.send(.GET, kvPath(self.key), query: query).check()
        if self.options.json { return Output.json(reply.body) }
        if self.detailed {
            let entry = Output.object(reply.body)
            for field in ["key", "version", "revision", "stamp", "type", "author", "client", "size", "updated_at"] {
                print("\(field.padding(toLength: 11, withPad: " ", startingAt: 0)) \(Output.string(entry[field]))")
            }
            print("value:")
            print(Output.string(entry["value"]))
            return
        }
        Output.write(reply.body)
        if reply.body.last != 0x0A, isatty(STDOUT_FILENO) != 0 { print("") }
    }

    /// `GET /v1/kv/<key>?holders`: node | version | stamp | state, then whether every agent holds the newest version.
    func showHolders() async throws {
        let reply = try await self.options.client.holders(self.key).check()
        if self.options.json { return Output.json(reply.body) }
        let answer = Output.object(reply.body)
        let newest = answer["newest"] as? String
        let nodes = (answer["nodes"] as? [[String: Any]]) ?? []
        var stale: [String] = []
        let rows = nodes.map { node -> [String] in
            let name = Output.string(node["node"])
            let deleted = node["deleted"] as? Bool == true
            let state: String
            if let error = node["error"] as? String {
                state = "unreachable: \(error)"
                stale.append("\(name) unreachable")
            } else if node["stamp"] == nil || node["stamp"] is NSNull {
                state = newest == nil ? "absent" : "missing"
                if newest != nil { stale.append("\(name) missing") }
            } else if node["stamp"] as? String == newest {
                state = deleted ? "current (deleted)" : "current"
            } else {
                state = deleted ? "stale (deleted)" : "stale"
                stale.append("\(name) stale")
            }
            return [name, Output.string(node["version"]), Output.string(node["stamp"]), state]
        }
        Output.table(["NODE", "VERSION", "STAMP", "STATE"], rows)
        if answer["agree"] as? Bool == true {
            if let newest {
                let deleted = nodes.first { $0["stamp"] as? String == newest }?["deleted"] as? Bool == true
                print("All \(nodes.count) live agent(s) agree: they hold the newest version (stamp \(newest))\(deleted ? ", a delete" : "")")
            } else {
                print("All \(nodes.count) live agent(s) agree: none holds \(self.key)")
            }
        } else {
            let unreachable = nodes.contains { $0["error"] is String }
            print(
                "Agents disagree: \(stale.joined(separator: ", ")). Writes reach every agent within moments; if this persists, run "
                    + (unreachable ? "`gossamer members` and `gossamer consistency`" : "`gossamer consistency --check --repair`"))
        }
    }
}

struct KVPut: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "put", abstract: "Write a value: text, @file, or - for standard input.")

    @Argument(help: "The key.") var key: String
    @Argument(help: "The value: text, @path to read a file, or - to read standard input.") var value: String
    @Option(help: "Content type: json and yaml are checked before storing; others (properties, text, …) are recorded.") var type: String?
    @Option(help: "Compare-and-set: write only if the current version is N (0: only if the key does not exist).") var cas: Int?
    @Option(help: "Recorded as the author of this version.") var author: String?
    @OptionGroup var concern: WriteConcernOptions
    @OptionGroup var options: ClientOptions

    func run() async throws {
        var query: [(String, String?)] = []
        if let type = self.type { query.append(("type", type)) }
        if let cas = self.cas { query.append(("cas", "\(cas)")) }
        query += self.concern.query
        let headers = self.author.map { [("X-Gossamer-Author", $0)] } ?? []
        let reply = try await self.options.client.send(
            .PUT, kvPath(self.key), query: query, body: try readValue(self.value), headers: headers, timeout: self.concern.value?.requestTimeout
        ).checkWrite(json: self.options.json, hint: holdersHint(self.key))
        if self.options.json { return Output.json(reply.body) }
        let entry = Output.object(reply.body)
        print("Wrote \(self.key) version \(Output.string(entry["version"])) (stamp \(Output.string(entry["stamp"])))")
    }
}

struct KVDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a key, or every key under a prefix.")

    @Argument(help: "The key (or prefix with --recurse).") var key: String
    @Flag(help: "Delete every key under the prefix.") var recurse = false
    @Option(help: "Compare-and-set: delete only if the current version is N.") var cas: Int?
    @OptionGroup var concern: WriteConcernOptions
    @OptionGroup var options: ClientOptions

    func run() async throws {
        var query: [(String, String?)] = []
        if self.recurse { query.append(("recurse", nil)) }
        if let cas = self.cas { query.append(("cas", "\(cas)")) }
        query += self.concern.query
        let reply = try await self.options.client.send(.DELETE, kvPath(self.key), query: query, timeout: self.concern.value?.requestTimeout)
            .checkWrite(json: self.options.json, hint: self.recurse ? "see which agents hold what with `gossamer consistency`" : holdersHint(self.key))
        if self.options.json { return Output.json(reply.body) }
        let deleted = Output.string(Output.object(reply.body)["deleted"])
        print(deleted == "0" ? "Nothing to delete at \(self.key)" : "Deleted \(deleted) key(s) at \(self.key)")
    }
}

struct KVList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List keys under a prefix (all keys by default).")

    @Argument(help: "Prefix, e.g. prod/ (default: every key).") var prefix: String = ""
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let reply = try await self.options.client.send(.GET, kvPath(self.prefix), query: [("recurse", nil)]).check()
        if self.options.json { return Output.json(reply.body) }
        let rows = Output.array(reply.body).map { entry in
            ["key", "version", "type", "size", "author", "updated_at"].map { Output.string(entry[$0]) }
        }
        Output.table(["KEY", "VERSION", "TYPE", "SIZE", "AUTHOR", "UPDATED"], rows)
    }
}

struct KVHistory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "Show a key's versions, newest first.")

    @Argument(help: "The key.") var key: String
    @Option(help: "How many versions to show (default 20, at most 1000).") var limit: Int = 20
    @Option(help: "Show versions older than this one (paging).") var before: Int?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        var query: [(String, String?)] = [("history", nil), ("limit", "\(self.limit)")]
        if let before = self.before { query.append(("before", "\(before)")) }
        let reply = try await self.options.client.send(.GET, kvPath(self.key), query: query).check()
        if self.options.json { return Output.json(reply.body) }
        let rows = Output.array(reply.body).map { entry in
            var row = ["version", "revision", "stamp", "author", "size", "updated_at"].map { Output.string(entry[$0]) }
            row.insert(Output.string(entry["deleted"]) == "yes" ? "delete" : "put", at: 1)
            return row
        }
        Output.table(["VERSION", "OP", "REVISION", "STAMP", "AUTHOR", "SIZE", "UPDATED"], rows)
    }
}

struct KVDiff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "diff", abstract: "Show a unified diff between two versions of a key.")

    @Argument(help: "The key.") var key: String
    @Argument(help: "The older version.") var from: Int
    @Argument(help: "The newer version.") var to: Int
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let reply = try await self.options.client.send(.GET, kvPath(self.key), query: [("diff", "\(self.from),\(self.to)")]).check()
        if self.options.json {
            let text = String(decoding: reply.body, as: UTF8.self)
            return Output.json(try JSONSerialization.data(withJSONObject: ["key": self.key, "from": self.from, "to": self.to, "diff": text] as [String: Any]))
        }
        if reply.body.isEmpty { print("Versions \(self.from) and \(self.to) of \(self.key) are identical") } else { Output.write(reply.body) }
    }
}

struct KVRollback: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback", abstract: "Write a new version with the value of an older one (history is kept).")

    @Argument(help: "The key.") var key: String
    @Argument(help: "The version whose value to restore.") var version: Int
    @OptionGroup var concern: WriteConcernOptions
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let reply = try await self.options.client.send(
            .POST, kvPath(self.key), query: [("rollback", "\(self.version)")] + self.concern.query, timeout: self.concern.value?.requestTimeout
        ).checkWrite(json: self.options.json, hint: holdersHint(self.key))
        if self.options.json { return Output.json(reply.body) }
        let entry = Output.object(reply.body)
        print("Rolled \(self.key) back to the value of version \(self.version): now version \(Output.string(entry["version"]))")
    }
}

struct KVWatch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch", abstract: "Stream changes to a key or prefix until interrupted.",
        discussion: "Reconnects by itself and resumes from the last event it saw, so no change is missed.")

    @Argument(help: "The key, or a prefix ending in / (or with --recurse).") var key: String
    @Flag(help: "Watch every key under the prefix.") var recurse = false
    @Option(help: "Resume after this cursor (<node>:<revision>, an event id).") var since: String?
    @Option(help: "Stop after this many change events (default: never).") var count: Int?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        var cursor = self.since
        var seen = 0
        var attempt = 0
        while true {
            var query: [(String, String?)] = []
            if self.recurse { query.append(("recurse", nil)) }
            if let cursor { query.append(("since", cursor)) }
            do {
                try await self.options.client.stream(kvPath(self.key, base: "/v1/watch/"), query: query) { event in
                    attempt = 0
                    if event.event == "heartbeat" { return true }
                    if let id = event.id { cursor = id }
                    self.show(event)
                    seen += 1
                    return self.count.map { seen < $0 } ?? true
                }
                if let count = self.count, seen >= count { return }
            } catch let error as ClientError where attempt < 30 {
                attempt += 1
                FileHandle.standardError.write(Data("watch: \(error); retrying in 1s\n".utf8))
            }
            try await Task.sleep(for: .seconds(1))
        }
    }

    func show(_ event: ServerSentEvent) {
        if self.options.json {
            Output.line("{\"event\":\"\(event.event)\",\"id\":\"\(event.id ?? "")\",\"data\":\(event.data)}")
            return
        }
        let entry = Output.object(Data(event.data.utf8))
        switch event.event {
        case "snapshot":
            let values = (entry["values"] as? [[String: Any]]) ?? []
            Output.line("snapshot  revision \(Output.string(entry["revision"])): \(values.count) key(s)")
            for value in values { Output.line("  \(Output.string(value["key"])) v\(Output.string(value["version"])) = \(Output.string(value["value"]))") }
        default:
            let value = event.event == "delete" ? "" : " = \(Output.string(entry["value"]))"
            Output.line("\(event.event.padding(toLength: 8, withPad: " ", startingAt: 0))  \(Output.string(entry["key"])) v\(Output.string(entry["version"]))\(value)")
        }
    }
}

struct KVTxn: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "txn", abstract: "Apply up to 64 operations all-or-nothing, from a JSON file or standard input.",
        discussion: """
            The body is {"ops": [{"op": "check", "key": "a", "version": 2}, {"op": "set", "key": "a", "value": "x"}, ...]} \
            with op one of set, delete, delete-tree, check, get (see docs/api.md).
            """)

    @Argument(help: "JSON file with the transaction, or - for standard input.") var file: String = "-"
    @OptionGroup var concern: WriteConcernOptions
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let body = self.file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try readValue("@" + self.file)
        let reply = try await self.options.client.send(
            .POST, "/v1/txn", query: self.concern.query, body: body, headers: [("Content-Type", "application/json")],
            timeout: self.concern.value?.requestTimeout)
        if reply.status == 409 {
            if self.options.json { Output.json(reply.body) }
            throw CLIFailure("transaction not applied: \(reply.errorMessage)")
        }
        _ = try reply.checkWrite(json: self.options.json)
        if self.options.json { return Output.json(reply.body) }
        let object = Output.object(reply.body)
        let rows = ((object["results"] as? [[String: Any]]) ?? []).map { result -> [String] in
            let version = result["version"] as? [String: Any]
            return [Output.string(result["op"]), Output.string(result["key"]), Output.string(version?["version"] ?? result["deleted"])]
        }
        Output.table(["OP", "KEY", "VERSION"], rows)
        print("Applied at revision \(Output.string(object["revision"]))")
    }
}

/// What to run after a write whose write concern was not met.
func holdersHint(_ key: String) -> String {
    "see which agents hold it with `gossamer kv get \(key) --holders`"
}

struct KVConflicts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conflicts", abstract: "List versions written concurrently on different agents that lost (kept in history).",
        discussion: """
            When two agents take writes to the same key at about the same time, the one with the higher stamp \
            wins on every agent; the other stays in history, flagged as a conflict. ORIGIN is the agent that \
            took the losing write. The losing value is in the --json output (and in `gossamer kv history KEY`); \
            to keep it after all, write it again with `gossamer kv put`.
            """)

    @Argument(help: "Only keys under this prefix, e.g. prod/ (default: every key).") var prefix: String = ""
    @Option(help: "How many to show, newest first (at most 10000).") var limit: Int = 100
    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard (1...10_000).contains(self.limit) else { throw ValidationError("--limit must be from 1 to 10000, not \(self.limit)") }
    }

    func run() async throws {
        let client = self.options.client
        let reply = try requireCluster(try await client.conflicts(prefix: self.prefix, limit: self.limit), client, so: "it has no conflicts (they arise between agents)").check()
        if self.options.json { return Output.json(reply.body) }
        let entries = Output.array(reply.body)
        guard !entries.isEmpty else {
            print(self.prefix.isEmpty ? "No conflicts recorded" : "No conflicts recorded under \(self.prefix)")
            return
        }
        let rows = entries.map { entry -> [String] in
            let stamp = Output.string(entry["stamp"])
            let origin = stamp.split(separator: "@", maxSplits: 1).dropFirst().first.map(String.init) ?? "-"
            var version = Output.string(entry["version"])
            if entry["deleted"] as? Bool == true { version += " (delete)" }
            return [Output.string(entry["key"]), version, stamp, origin, Output.string(entry["updated_at"])]
        }
        Output.table(["KEY", "VERSION", "STAMP", "ORIGIN", "TIME"], rows)
        if entries.count == self.limit { print("(showing the first \(self.limit); raise --limit to see more)") }
    }
}
