import Common

// MARK: - JSON form

extension AlertRule: Codable {
    /// The JSON field names, in the order they are encoded.
    static let fieldNames = [
        "name", "metric", "match", "aggregate", "op", "threshold", "recover", "for", "keep_firing_for", "interval",
        "no_data", "no_data_after", "severity", "labels", "annotations", "receivers",
    ]

    /// Decodes the JSON form. Every problem with the shape (a missing required field, a wrong type, an unknown word
    /// such as `"op": "=>"`, unreadable duration text, an unknown field) is collected and thrown together as a
    /// ``RuleDecodingError`` whose errors name their fields. A `null` field counts as absent.
    public init(from decoder: any Decoder) throws {
        var reader = try FieldReader(decoder.container(keyedBy: AnyKey.self))
        let name = reader.required("name", String.self, "a string")
        let metric = reader.required("metric", String.self, "a string")
        let match = reader.optional("match", [String: String].self, "an object of strings") ?? [:]
        let aggregate = reader.word("aggregate", Aggregate.self) ?? Aggregate.none
        let op = reader.word("op", Comparison.self, required: true)
        let threshold = reader.required("threshold", Double.self, "a number")
        let recover = reader.optional("recover", Double.self, "a number")
        let forDuration = reader.duration("for") ?? .zero
        let keepFiringFor = reader.duration("keep_firing_for") ?? .zero
        let interval = reader.duration("interval")
        let noData = reader.word("no_data", NoData.self) ?? .ok
        let noDataAfter = reader.optional("no_data_after", Int.self, "a whole number")
        let severity = reader.word("severity", Severity.self) ?? .warning
        let labels = reader.optional("labels", [String: String].self, "an object of strings") ?? [:]
        let annotations = reader.optional("annotations", [String: String].self, "an object of strings") ?? [:]
        let receivers = reader.receivers()
        reader.rejectUnknownFields(Self.fieldNames)

        guard reader.errors.isEmpty, let name, let metric, let op, let threshold else {
            throw RuleDecodingError(errors: reader.errors)
        }
        self.init(
            name: name, metric: metric, match: match, aggregate: aggregate, op: op, threshold: threshold,
            recover: recover, for: forDuration, keepFiringFor: keepFiringFor, interval: interval, noData: noData,
            noDataAfter: noDataAfter, severity: severity, labels: labels, annotations: annotations, receivers: receivers
        )
    }

    /// Encodes the JSON form: every field with its effective value (durations as text such as `5m`), leaving out
    /// `recover`, `interval` and `no_data_after` when they are not set.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: AnyKey.self)
        try container.encode(self.name, forKey: AnyKey("name"))
        try container.encode(self.metric, forKey: AnyKey("metric"))
        try container.encode(self.match, forKey: AnyKey("match"))
        try container.encode(self.aggregate.rawValue, forKey: AnyKey("aggregate"))
        try container.encode(self.op.rawValue, forKey: AnyKey("op"))
        try container.encode(self.threshold, forKey: AnyKey("threshold"))
        try container.encodeIfPresent(self.recover, forKey: AnyKey("recover"))
        try container.encode(DurationText.format(self.forDuration), forKey: AnyKey("for"))
        try container.encode(DurationText.format(self.keepFiringFor), forKey: AnyKey("keep_firing_for"))
        try container.encodeIfPresent(self.interval.map(DurationText.format), forKey: AnyKey("interval"))
        try container.encode(self.noData.rawValue, forKey: AnyKey("no_data"))
        try container.encodeIfPresent(self.noDataAfter, forKey: AnyKey("no_data_after"))
        try container.encode(self.severity.rawValue, forKey: AnyKey("severity"))
        try container.encode(self.labels, forKey: AnyKey("labels"))
        try container.encode(self.annotations, forKey: AnyKey("annotations"))
        var receivers = container.nestedUnkeyedContainer(forKey: AnyKey("receivers"))
        for receiver in self.receivers {
            var object = receivers.nestedContainer(keyedBy: AnyKey.self)
            switch receiver {
            case .webhook(let url): try object.encode(url, forKey: AnyKey("webhook"))
            case .alertmanager(let url): try object.encode(url, forKey: AnyKey("alertmanager"))
            case .log: try object.encode(true, forKey: AnyKey("log"))
            }
        }
    }
}

/// The shape problems found while decoding an ``AlertRule``, all at once.
public struct RuleDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// One error per bad field, in field order.
    public var errors: [RuleError]

    /// Creates the error.
    public init(errors: [RuleError]) {
        self.errors = errors
    }

    /// The errors, separated by `; `.
    public var description: String {
        self.errors.map(\.description).joined(separator: "; ")
    }
}

// MARK: - Decoding helpers

/// A coding key for any field name, so unknown fields can be listed.
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }

    init(_ string: String) { self.stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// Reads fields from a keyed container, turning every problem into a ``RuleError`` instead of stopping at the first.
private struct FieldReader {
    let container: KeyedDecodingContainer<AnyKey>
    var errors: [RuleError] = []

    init(_ container: KeyedDecodingContainer<AnyKey>) {
        self.container = container
    }

    /// Whether the field is present and not `null`.
    private func isPresent(_ field: String) -> Bool {
        let key = AnyKey(field)
        return self.container.contains(key) && !((try? self.container.decodeNil(forKey: key)) ?? false)
    }

    mutating func optional<T: Decodable>(_ field: String, _ type: T.Type, _ expected: String) -> T? {
        guard self.isPresent(field) else { return nil }
        guard let value = try? self.container.decode(type, forKey: AnyKey(field)) else {
            self.errors.append(RuleError(field: field, "\(field) must be \(expected)"))
            return nil
        }
        return value
    }

    mutating func required<T: Decodable>(_ field: String, _ type: T.Type, _ expected: String) -> T? {
        guard self.isPresent(field) else {
            self.errors.append(RuleError(field: field, "\(field) is required"))
            return nil
        }
        return self.optional(field, type, expected)
    }

    mutating func word<W: RawRepresentable & CaseIterable>(_ field: String, _ type: W.Type, required: Bool = false)
        -> W? where W.RawValue == String
    {
        let words = W.allCases.map(\.rawValue).joined(separator: " ")
        let text =
            required
            ? self.required(field, String.self, "one of \(words)")
            : self.optional(field, String.self, "one of \(words)")
        guard let text else { return nil }
        guard let word = W(rawValue: text) else {
            self.errors.append(RuleError(field: field, "\(field) must be one of \(words), not '\(text)'"))
            return nil
        }
        return word
    }

    mutating func duration(_ field: String) -> Duration? {
        let expected = "a duration such as 30s, 5m or 1h30m"
        guard let text = self.optional(field, String.self, expected) else { return nil }
        guard let duration = DurationText.parse(text) else {
            self.errors.append(RuleError(field: field, "\(field) must be \(expected), not '\(text)'"))
            return nil
        }
        return duration
    }

    mutating func receivers() -> [AlertRule.Receiver] {
        let shapes = #"{"webhook": "<url>"}, {"alertmanager": "<url>"} or {"log": true}"#
        let expected = "a list of objects such as \(shapes)"
        guard let objects = self.optional("receivers", [[String: ReceiverValue]].self, expected) else { return [] }
        var receivers: [AlertRule.Receiver] = []
        for (index, object) in objects.enumerated() {
            let field = "receivers[\(index)]"
            guard object.count == 1, let (kind, value) = object.first else {
                self.errors.append(RuleError(field: field, "\(field) must be one of \(shapes)"))
                continue
            }
            switch (kind, value) {
            case ("webhook", .string(let url)):
                receivers.append(.webhook(url))
            case ("alertmanager", .string(let url)):
                receivers.append(.alertmanager(url))
            case ("log", .bool(true)):
                receivers.append(.log)
            case ("webhook", _), ("alertmanager", _):
                self.errors.append(RuleError(field: "\(field).\(kind)", "\(field).\(kind) must be a URL string"))
            case ("log", _):
                self.errors.append(RuleError(field: "\(field).log", "\(field).log must be true"))
            default:
                self.errors.append(RuleError(field: field, "\(field) must be one of \(shapes), not '\(kind)'"))
            }
        }
        return receivers
    }

    mutating func rejectUnknownFields(_ known: [String]) {
        for key in self.container.allKeys.map(\.stringValue).sorted() where !known.contains(key) {
            self.errors.append(RuleError(field: key, "unknown field '\(key)'"))
        }
    }
}

/// The value of a receiver object's single field: a URL string, `true` for `log`, or something unusable (reported
/// against the field rather than failing the whole list).
private enum ReceiverValue: Decodable {
    case string(String)
    case bool(Bool)
    case other

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            self = .string(text)
        } else if let flag = try? container.decode(Bool.self) {
            self = .bool(flag)
        } else {
            self = .other
        }
    }
}
