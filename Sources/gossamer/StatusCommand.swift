import ArgumentParser
import Client
import Foundation

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show the agent's node, revision and uptime.")

    @OptionGroup var options: ClientOptions

    func run() async throws {
        let reply = try await self.options.client.send(.GET, "/v1/status").check()
        if self.options.json { return Output.json(reply.body) }
        let status = Output.object(reply.body)
        Output.table(
            ["NODE", "VERSION", "REVISION", "KEYS", "VERSIONS", "WATCHERS", "UPTIME"],
            [[
                Output.string(status["node"]), Output.string(status["version"]), Output.string(status["revision"]),
                Output.string(status["keys"]), Output.string(status["versions"]), Output.string(status["watchers"]),
                String(format: "%.0fs", (status["uptime_seconds"] as? Double) ?? 0),
            ]])
    }
}
