import Agent
import ArgumentParser
import Client
import Foundation
import Gossip

struct MembersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "members", abstract: "List the cluster's members as this agent sees them.")

    @Option(help: "Only members with this status: alive, suspect, dead or left.") var status: String?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let query: [(String, String?)] = self.status.map { [("status", $0)] } ?? []
        let reply = try await self.options.client.send(.GET, "/v1/members", query: query).check()
        if self.options.json { return Output.json(reply.body) }
        let rows = Output.array(reply.body).map { member -> [String] in
            let tags = (member["tags"] as? [String: String] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            return [
                Output.string(member["name"]), Output.string(member["address"]), Output.string(member["status"]),
                Output.string(member["incarnation"]), Output.string(member["health"]), tags,
            ]
        }
        Output.table(["NAME", "ADDRESS", "STATUS", "INCARNATION", "HEALTH", "TAGS"], rows)
    }
}

struct LeaveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leave", abstract: "Make the agent leave the cluster gracefully and stop.")

    @OptionGroup var options: ClientOptions

    func run() async throws {
        let reply = try await self.options.client.send(.POST, "/v1/agent/leave").check()
        if self.options.json { return Output.json(reply.body) }
        print("The agent left the cluster and is stopping")
    }
}

struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen", abstract: "Print a new random 32-byte gossip encryption key (base64).")

    func run() throws {
        print(Keyring.generate())
    }
}

struct KeyringCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keyring",
        abstract: "Rotate the gossip encryption keys across the whole cluster.",
        discussion: """
            Rotation: `keyring install NEW` (every member can then decrypt it), `keyring use NEW` (every member \
            encrypts with it), `keyring remove OLD`. Changes travel by gossip to every live member; \
            `keyring list` shows how many members hold and use each key.
            """,
        subcommands: [List.self, Install.self, Use.self, Remove.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Show each key's fingerprint and how many members hold it.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            let reply = try await self.options.client.send(.GET, "/v1/keyring").check()
            if self.options.json { return Output.json(reply.body) }
            let body = Output.object(reply.body)
            let members = Output.string(body["members"])
            let rows = ((body["keys"] as? [[String: Any]]) ?? []).map { key in
                [Output.string(key["fingerprint"]), "\(Output.string(key["installed"]))/\(members)", "\(Output.string(key["primary"]))/\(members)"]
            }
            Output.table(["KEY", "INSTALLED", "PRIMARY"], rows)
        }
    }

    struct Install: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "install", abstract: "Install a key on every member.")
        @Argument(help: "The key, base64.") var key: String
        @OptionGroup var options: ClientOptions
        func run() async throws { try await change("install", self.key, self.options) }
    }

    struct Use: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "use", abstract: "Make an installed key the primary on every member.")
        @Argument(help: "The key, base64.") var key: String
        @OptionGroup var options: ClientOptions
        func run() async throws { try await change("use", self.key, self.options) }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a key (not the primary) from every member.")
        @Argument(help: "The key, base64.") var key: String
        @OptionGroup var options: ClientOptions
        func run() async throws { try await change("remove", self.key, self.options) }
    }

    static func change(_ operation: String, _ key: String, _ options: ClientOptions) async throws {
        let body = try JSONSerialization.data(withJSONObject: ["key": key])
        let reply = try await options.client.send(.POST, "/v1/keyring/\(operation)", body: body, headers: [("Content-Type", "application/json")]).check()
        if options.json { return Output.json(reply.body) }
        print("Keyring \(operation) applied here and sent to every member; check with `gossamer keyring list`")
    }
}
