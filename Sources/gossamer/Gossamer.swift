import Agent
import ArgumentParser
import Client
import Foundation

/// `gossamer`: one binary for the agent, the load balancer and the client commands.
struct Gossamer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gossamer",
        abstract: "Config center and service discovery for microservices.",
        discussion: """
            Run an agent with `gossamer agent`, then read and write configuration with `gossamer kv`, register and find \
            services with `gossamer services`, and see alerts with `gossamer alerts`; `gossamer lb` fronts the cluster.

            Client commands talk to the agent at --addr (default http://127.0.0.1:7700, or $GOSSAMER_ADDR). \
            Exit codes: 0 success, 1 error, 2 usage error.
            """,
        version: gossamerVersion,
        subcommands: [AgentCommand.self, LBCommand.self, KVCommand.self, ServicesCommand.self, MembersCommand.self, StatusCommand.self, ConsistencyCommand.self, SnapshotCommand.self, AlertsCommand.self, LeaveCommand.self, KeyringCommand.self, KeygenCommand.self]
    )
}

/// A failure of a command at run time: printed as `error: …`, exit code 1.
struct CLIFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

@main
enum Main {
    static func main() async {
        let command: any ParsableCommand
        do {
            command = try Gossamer.parseAsRoot()
        } catch {
            let code = Gossamer.exitCode(for: error)
            if code == .success {
                print(Gossamer.fullMessage(for: error))
                exit(0)
            }
            FileHandle.standardError.write(Data((Gossamer.fullMessage(for: error) + "\n").utf8))
            exit(2)
        }
        do {
            var command = command
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            exit(0)
        } catch let error as ExitCode {
            exit(error.rawValue)
        } catch let error as CLIFailure {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            exit(1)
        } catch let error as ClientError {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            exit(1)
        } catch {
            // Errors of the argument parser raised while running (e.g. help for a command group).
            switch Gossamer.exitCode(for: error) {
            case .success:
                print(Gossamer.fullMessage(for: error))
                exit(0)
            case .validationFailure:
                FileHandle.standardError.write(Data((Gossamer.fullMessage(for: error) + "\n").utf8))
                exit(2)
            default:
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                exit(1)
            }
        }
    }
}
