import Client
import Foundation
import Synchronization
import TestSupport
import Testing

/// Where the built `gossamer` binary is: `$GOSSAMER_BIN`, else beside the test bundle, else `.build/debug`.
func gossamerBinary() throws -> String {
    if let path = ProcessInfo.processInfo.environment["GOSSAMER_BIN"], FileManager.default.isExecutableFile(atPath: path) { return path }
    let candidates = [
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("gossamer").path,
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug/gossamer").path,
    ]
    for path in candidates where FileManager.default.isExecutableFile(atPath: path) { return path }
    throw ClientError("the gossamer binary was not found (looked at \(candidates)); run `swift build` first or set GOSSAMER_BIN")
}

func temporaryDirectory() -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("gossamer-\(UUID().uuidString.prefix(8))")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A real `gossamer agent` child process on a free loopback port.
final class AgentProcess: @unchecked Sendable {
    // Only touched from the test that owns it; `@unchecked` because Process is not Sendable.
    let process = Process()
    let dataDir: URL
    let logDir: URL
    let node: String
    private(set) var address = ""
    /// The gossip address, when started with `--gossip`.
    private(set) var gossipAddress = ""

    var client: GossamerClient { GossamerClient(base: self.address) }
    var pid: Int32 { self.process.processIdentifier }

    init(node: String = "p1", dataDir: URL? = nil, extraArguments: [String] = [], environment: [String: String] = [:]) throws {
        self.node = node
        self.logDir = temporaryDirectory()
        self.dataDir = dataDir ?? self.logDir.appendingPathComponent("data")
        self.process.executableURL = URL(fileURLWithPath: try gossamerBinary())
        self.process.arguments = ["agent", "--node-name", node, "--data-dir", self.dataDir.path, "--http", "127.0.0.1:0"] + extraArguments
        if !environment.isEmpty { self.process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new } }
        _ = FileManager.default.createFile(atPath: self.logDir.appendingPathComponent("stdout").path, contents: nil)
        _ = FileManager.default.createFile(atPath: self.logDir.appendingPathComponent("stderr").path, contents: nil)
        self.process.standardOutput = try FileHandle(forWritingTo: self.logDir.appendingPathComponent("stdout"))
        self.process.standardError = try FileHandle(forWritingTo: self.logDir.appendingPathComponent("stderr"))
    }

    /// Starts the agent and waits (up to 30 s) for its "listening on" line.
    func start() async throws {
        try self.process.run()
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let out = (try? String(contentsOf: self.logDir.appendingPathComponent("stdout"), encoding: .utf8)) ?? ""
            if let range = out.range(of: #"listening on (http://[0-9.:]+)"#, options: .regularExpression) {
                self.address = String(out[range].dropFirst("listening on ".count))
                if let gossip = out.range(of: #"gossip [0-9.]+:[0-9]+"#, options: .regularExpression) {
                    self.gossipAddress = String(out[gossip].dropFirst("gossip ".count))
                }
                return
            }
            guard self.process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ClientError("agent \(self.node) did not start: \(self.logs)")
    }

    var logs: String {
        let out = (try? String(contentsOf: self.logDir.appendingPathComponent("stdout"), encoding: .utf8)) ?? ""
        let err = (try? String(contentsOf: self.logDir.appendingPathComponent("stderr"), encoding: .utf8)) ?? ""
        return "stdout:\n\(out)\nstderr:\n\(err)"
    }

    func kill9() {
        kill(self.pid, SIGKILL)
        self.process.waitUntilExit()
    }

    /// SIGTERM, then waits up to 10 s; returns the exit status.
    func terminate() async -> Int32 {
        guard self.process.isRunning else { return self.process.terminationStatus }
        kill(self.pid, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(10)
        while self.process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if self.process.isRunning { self.kill9() }
        return self.process.terminationStatus
    }

    deinit {
        if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: self.logDir)
    }
}

/// Result of one CLI invocation.
struct CLIResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `gossamer <arguments>` to completion (at most 60 s) with optional standard input.
func runCLI(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]) async throws -> CLIResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try gossamerBinary())
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env.merge(environment) { _, new in new }
    process.environment = env
    let dir = temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let outURL = dir.appendingPathComponent("out")
    let errURL = dir.appendingPathComponent("err")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    process.standardError = try FileHandle(forWritingTo: errURL)
    let input = Pipe()
    process.standardInput = input
    try process.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    let deadline = ContinuousClock.now + .seconds(60)
    while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    return CLIResult(
        status: process.terminationStatus, stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
}

extension GossamerClient.Reply {
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: self.body)) as? [String: Any] ?? [:] }
}
