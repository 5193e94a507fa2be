// MARK: - Annotation templates

/// An annotation template: text with `{{ $value }}` and `{{ $labels.<name> }}` placeholders, as in Prometheus rules.
///
/// This is a deliberately small subset of Go templates: no functions, pipelines or conditionals. Spaces inside the
/// braces are optional (`{{$value}}`). `$value` renders as ``PrometheusText/formatNumber(_:)`` writes numbers (`0.91`,
/// `3`) and as an empty string when the alert has no value (no data); an unknown label renders as an empty string, as
/// in Prometheus. Anything else inside `{{ }}`, or a `{{` without its `}}`, is an error, reported when the rule is
/// validated. A lone `}}` is plain text.
public struct AlertTemplate: Hashable, Sendable {
    enum Part: Hashable, Sendable {
        case text(String)
        case value
        case label(String)
    }

    let parts: [Part]

    /// Parses `text`.
    public init(_ text: String) throws(TemplateError) {
        var parts: [Part] = []
        var rest = text[...]
        while let open = rest.firstRange(of: "{{") {
            if open.lowerBound > rest.startIndex {
                parts.append(.text(String(rest[..<open.lowerBound])))
            }
            let afterOpen = rest[open.upperBound...]
            guard let close = afterOpen.firstRange(of: "}}") else {
                let offset = text.distance(from: text.startIndex, to: open.lowerBound)
                throw TemplateError(message: "'{{' at character \(offset) is never closed with '}}'")
            }
            let expression = afterOpen[..<close.lowerBound].trimmingSpaces()
            let label = String(expression.dropFirst("$labels.".count))
            if expression == "$value" {
                parts.append(.value)
            } else if expression.hasPrefix("$labels."), PrometheusText.isValidLabelName(label) {
                parts.append(.label(label))
            } else {
                let usage = "use {{ $value }} or {{ $labels.<name> }}"
                throw TemplateError(message: "unknown template expression '{{ \(expression) }}'; \(usage)")
            }
            rest = afterOpen[close.upperBound...]
        }
        if !rest.isEmpty {
            parts.append(.text(String(rest)))
        }
        self.parts = parts
    }

    /// The text with placeholders replaced by `labels` and `value`.
    public func render(labels: [String: String], value: Double?) -> String {
        var output = ""
        for part in self.parts {
            switch part {
            case .text(let text): output += text
            case .value: output += value.map(PrometheusText.formatNumber) ?? ""
            case .label(let name): output += labels[name] ?? ""
            }
        }
        return output
    }

    /// A template that renders `text` as it is, placeholders included.
    init(literal text: String) {
        self.parts = [.text(text)]
    }
}

/// Why an annotation template does not parse.
public struct TemplateError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong, for people.
    public var message: String

    /// The message.
    public var description: String { self.message }
}

extension Substring {
    /// The text without leading and trailing spaces and tabs.
    fileprivate func trimmingSpaces() -> Substring {
        var text = self
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return text
    }
}
