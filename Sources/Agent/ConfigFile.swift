import Foundation
import Yams

/// Reads an agent config file (YAML, or the TOML subset below) into flat `name: value` settings.
///
/// Nested tables flatten with dots (`[retention]` + `keep_versions = 10` → `retention.keep_versions`).
/// TOML support covers what agent settings need: `key = value` with strings, integers, floats and
/// booleans, `[table]` headers and `#` comments. No TOML package resolves on our build machines, hence
/// this small reader (docs/architecture.md).
public enum ConfigFile {
    public static func load(path: String) throws(AgentSettingsError) -> [String: String] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw AgentSettingsError("cannot read config file '\(path)': check that it exists and is UTF-8 text")
        }
        let lower = path.lowercased()
        if lower.hasSuffix(".toml") { return try self.parseTOML(text, path: path) }
        if lower.hasSuffix(".yaml") || lower.hasSuffix(".yml") { return try self.parseYAML(text, path: path) }
        throw AgentSettingsError("config file '\(path)' must end in .toml, .yaml or .yml")
    }

    public static func parseYAML(_ text: String, path: String = "<yaml>") throws(AgentSettingsError) -> [String: String] {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw AgentSettingsError("config file '\(path)' is not valid YAML: \(error)")
        }
        guard let node else { return [:] }
        guard case .mapping(let mapping) = node else {
            throw AgentSettingsError("config file '\(path)' must be a mapping of settings (name: value)")
        }
        var out: [String: String] = [:]
        try self.flatten(mapping, prefix: "", into: &out, path: path)
        return out
    }

    private static func flatten(_ mapping: Node.Mapping, prefix: String, into out: inout [String: String], path: String) throws(AgentSettingsError) {
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.string else { throw AgentSettingsError("config file '\(path)' has a non-text key") }
            switch valueNode {
            case .scalar(let scalar): out[prefix + key] = scalar.string
            case .mapping(let nested): try self.flatten(nested, prefix: prefix + key + ".", into: &out, path: path)
            default: throw AgentSettingsError("setting '\(prefix + key)' in '\(path)' must be a single value")
            }
        }
    }

    public static func parseTOML(_ text: String, path: String = "<toml>") throws(AgentSettingsError) -> [String: String] {
        var out: [String: String] = [:]
        var table = ""
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = self.stripComment(rawLine).trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            let at = "\(path):\(number + 1)"
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), !line.hasPrefix("[[") else { throw AgentSettingsError("\(at): expected a [table] header") }
                table = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces) + "."
                continue
            }
            guard let equals = line.firstIndex(of: "=") else { throw AgentSettingsError("\(at): expected 'name = value'") }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty, !value.isEmpty else { throw AgentSettingsError("\(at): expected 'name = value'") }
            if value.hasPrefix("\"") || value.hasPrefix("'") {
                let quote = value.first!
                guard value.count >= 2, value.hasSuffix(String(quote)) else { throw AgentSettingsError("\(at): unterminated string") }
                value = String(value.dropFirst().dropLast())
                if quote == "\"" {
                    value = value.replacingOccurrences(of: "\\\"", with: "\"").replacingOccurrences(of: "\\\\", with: "\\")
                }
            } else if value.hasPrefix("[") || value.hasPrefix("{") {
                throw AgentSettingsError("\(at): arrays and inline tables are not agent settings")
            }
            out[table + key] = value
        }
        return out
    }

    /// Drops a `#` comment that is not inside a string.
    private static func stripComment(_ line: Substring) -> String {
        var inString: Character?
        var result = ""
        for char in line {
            if let quote = inString {
                if char == quote { inString = nil }
            } else if char == "\"" || char == "'" {
                inString = char
            } else if char == "#" {
                break
            }
            result.append(char)
        }
        return result
    }
}
