import Client
import Foundation
import Logging

/// Options shared by every client command.
import ArgumentParser

struct ClientOptions: ParsableArguments {
    @Option(help: "Agent address (default: $GOSSAMER_ADDR or http://127.0.0.1:7700).")
    var addr: String?

    @Flag(help: "Print JSON for scripts instead of tables.")
    var json = false

    var client: GossamerClient {
        GossamerClient(base: self.addr ?? ProcessInfo.processInfo.environment["GOSSAMER_ADDR"] ?? "http://127.0.0.1:7700")
    }
}

enum Output {
    /// Sends every log line to standard error at `level` (the long-running commands, once per process).
    static func bootstrapLogging(level: Logger.Level) {
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, level: level) }
    }

    /// Writes one line to standard output at once (unbuffered), for streams and readiness lines.
    static func line(_ text: String) {
        self.write(Data((text + "\n").utf8))
    }

    /// Writes bytes to standard output. When the reader has gone (`gossamer … | head`), exits quietly like
    /// other command-line tools instead of crashing on the broken pipe.
    static func write(_ data: Data) {
        do {
            try FileHandle.standardOutput.write(contentsOf: data)
        } catch {
            exit(0)
        }
    }

    /// Prints rows as an aligned table with a header.
    static func table(_ header: [String], _ rows: [[String]]) {
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        print(line(header))
        for row in rows { print(line(row)) }
    }

    /// Prints an API body as pretty JSON (or as it is, if it is not JSON).
    static func json(_ data: Data) {
        if let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]),
            let pretty = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed])
        {
            Output.write(pretty)
            Output.write(Data("\n".utf8))
        } else {
            Output.write(data)
        }
    }

    static func object(_ data: Data) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    static func array(_ data: Data) -> [[String: Any]] {
        (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] ?? []
    }

    static func string(_ value: Any?) -> String {
        switch value {
        case nil, is NSNull: return "-"
        case let value as String: return value
        case let value as NSNumber:
            // JSONSerialization gives booleans as NSNumber too; their Objective-C type is "c".
            if String(cString: value.objCType) == "c" { return value.boolValue ? "yes" : "no" }
            return value.stringValue
        default: return "\(value!)"
        }
    }
}

extension GossamerClient.Reply {
    /// Throws the API's error message (exit 1) unless the status is 2xx.
    func check() throws -> Self {
        guard (200..<300).contains(self.status) else { throw CLIFailure("\(self.errorMessage) (HTTP \(self.status))") }
        return self
    }
}
