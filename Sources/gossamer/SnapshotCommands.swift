import ArgumentParser
import Client
import ConfigCenter
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

struct SnapshotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Save a consistent copy of an agent's store, or restore one into a new data directory.",
        discussion: """
            A snapshot holds every key with its whole history, up to one revision, and a SHA-256 of its \
            contents; both commands verify it. `save` asks the agent at --addr; `restore` works offline, into an \
            empty data directory.

            Examples:
              gossamer snapshot save backup.snap
              gossamer snapshot restore backup.snap --data-dir ./n1
            """,
        subcommands: [SnapshotSave.self, SnapshotRestore.self]
    )
}

struct SnapshotSave: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "save", abstract: "Download a snapshot of the agent's store, verify it and write it to FILE.")

    @Argument(help: "Where to write the snapshot (replaced atomically if it exists).") var file: String
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let target = URL(fileURLWithPath: self.file)
        let data = try await self.options.client.snapshot()
        // Written next to the target and verified there, then renamed: FILE is only ever a verified snapshot.
        let temporary = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).\(UUID().uuidString).download")
        defer { try? FileManager.default.removeItem(at: temporary) }
        let info: SnapshotInfo
        do {
            guard FileManager.default.createFile(atPath: temporary.path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw CLIFailure("cannot write \(temporary.path): check that the directory exists and is writable")
            }
            let handle = try FileHandle(forWritingTo: temporary)
            defer { try? handle.close() }
            try handle.write(contentsOf: data)
            try handle.synchronize()
            info = try Snapshot.read(temporary).0
            guard rename(temporary.path, target.path) == 0 else {
                throw CLIFailure("cannot write \(target.path): \(String(cString: strerror(errno)))")
            }
        } catch let error as ConfigStoreError {
            throw CLIFailure("the agent sent a snapshot that does not verify, nothing was written: \(error.message)")
        } catch let error as CLIFailure {
            throw error
        } catch {
            throw CLIFailure("cannot write the snapshot to \(target.path): \(error)")
        }
        if self.options.json { return try printJSON(info, extra: ["file": target.path]) }
        print("Saved snapshot of \(info.node) at revision \(info.revision) to \(target.path)")
        printSummary(info)
    }
}

struct SnapshotRestore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a snapshot into an empty data directory (offline; no agent needed).",
        discussion: """
            Writes DIR/gossamer.sqlite from the snapshot after verifying it, and refuses a directory that \
            already holds a store. Then start an agent on that directory; it reconciles with the cluster.
            """)

    @Argument(help: "The snapshot file.") var file: String
    @Option(name: .customLong("data-dir"), help: "The agent data directory to create (must not hold a store yet).") var dataDir: String
    @Flag(help: "Print JSON for scripts instead of text.") var json = false

    func run() throws {
        let directory = URL(fileURLWithPath: self.dataDir)
        let info: SnapshotInfo
        do {
            info = try Snapshot.restore(URL(fileURLWithPath: self.file), intoDataDir: directory)
        } catch let error as ConfigStoreError {
            throw CLIFailure(error.message)
        }
        if self.json { return try printJSON(info, extra: ["data_dir": directory.path]) }
        print("Restored snapshot of \(info.node) at revision \(info.revision) into \(directory.appendingPathComponent("gossamer.sqlite").path)")
        printSummary(info)
        print("Next: start the agent with --data-dir \(self.dataDir) and --join <seed>; it reconciles with the cluster")
    }
}

private func printSummary(_ info: SnapshotInfo) {
    for (name, value) in [
        ("node", info.node), ("revision", "\(info.revision)"), ("keys", "\(info.keys)"), ("bytes", "\(info.bytes)"),
        ("sha256", info.sha256), ("created", info.created),
    ] {
        print("  \(name.padding(toLength: 9, withPad: " ", startingAt: 0)) \(value)")
    }
}

private func printJSON(_ info: SnapshotInfo, extra: [String: String]) throws {
    var object = (try JSONSerialization.jsonObject(with: JSONEncoder().encode(info)) as? [String: Any]) ?? [:]
    for (key, value) in extra { object[key] = value }
    Output.json(try JSONSerialization.data(withJSONObject: object))
}
