import Foundation
import Yams

/// Checks a value against its declared content type before it is stored.
///
/// `json` and `yaml` are parsed (Foundation's JSON parser, Yams for YAML) and a broken document is
/// refused with the parser's line and column. Other types are recorded but not parsed.
public enum ValueValidator {
    /// Content types whose values are parsed on write.
    public static let parsedTypes: Set<String> = ["json", "yaml"]

    /// Throws `badRequest` for a malformed content-type name and `badValue` for a document that does not parse.
    public static func validate(_ value: Data, contentType: String?) throws(ConfigStoreError) {
        guard let contentType else { return }
        try self.validateName(contentType)
        switch contentType {
        case "json":
            do {
                _ = try JSONSerialization.jsonObject(with: value, options: [.fragmentsAllowed])
            } catch {
                var detail = (error as NSError).userInfo["NSDebugDescription"] as? String ?? "\(error)"
                if !detail.contains("line") {
                    // Errors at the end of input carry no position: the document ends early, so point at its end.
                    let (line, column) = Self.endPosition(value)
                    detail += " (at line \(line), column \(column): the document ends early)"
                }
                throw ConfigStoreError(code: .badValue, message: "value is not valid JSON: \(detail)", cause: error)
            }
        case "yaml":
            guard let text = String(data: value, encoding: .utf8) else {
                throw ConfigStoreError(code: .badValue, message: "value is not valid YAML: it is not UTF-8 text")
            }
            do {
                let parser = try Yams.Parser(yaml: text)
                while try parser.nextRoot() != nil {}
            } catch {
                throw ConfigStoreError(code: .badValue, message: "value is not valid YAML: \(error)", cause: error)
            }
        default:
            return
        }
    }

    /// Line and column (1-based) just past the last byte of `value`.
    static func endPosition(_ value: Data) -> (Int, Int) {
        var line = 1
        var column = 1
        for byte in value {
            if byte == 0x0A {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
        }
        return (line, column)
    }

    /// Content-type names are 1…32 characters of `a-z 0-9 . + - _ /`.
    public static func validateName(_ name: String) throws(ConfigStoreError) {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789.+-_/")
        guard !name.isEmpty, name.count <= 32, name.allSatisfy({ allowed.contains($0) }) else {
            throw .badRequest("content type '\(name)' is not valid: use 1-32 lower-case letters, digits or . + - _ / (e.g. json, yaml, properties, text)")
        }
    }
}
