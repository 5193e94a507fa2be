import ConfigCenter
import Foundation

/// A registration refused: which field is wrong and why. Nothing is stored.
public typealias RegistrationError = FieldError

/// The body of `PUT /v1/services/<name>/instances/<id>`, as sent: every field optional so each can be checked and
/// reported by name. Durations are text (`10s`, `1m30s`) or a number of seconds.
public struct RegistrationRequest: Decodable, Sendable {
    public var address: String?
    public var port: Int?
    public var tags: [String]?
    public var meta: [String: String]?
    public var weight: Int?
    public var zone: String?
    public var status: String?
    public var deregisterCriticalAfter: FlexibleDuration?
    public var checks: [CheckRequest]?

    public struct CheckRequest: Decodable, Sendable {
        public var id: String?
        public var type: String?
        public var url: String?
        public var tcp: String?
        public var ttl: FlexibleDuration?
        public var interval: FlexibleDuration?
        public var timeout: FlexibleDuration?
        public var successBeforePassing: Int?
        public var failuresBeforeCritical: Int?

        enum CodingKeys: String, CodingKey {
            case id, type, url, tcp, ttl, interval, timeout
            case successBeforePassing = "success_before_passing", failuresBeforeCritical = "failures_before_critical"
        }
    }

    enum CodingKeys: String, CodingKey {
        case address, port, tags, meta, weight, zone, status, checks
        case deregisterCriticalAfter = "deregister_critical_after"
    }

    public init(address: String? = nil, port: Int? = nil) {
        self.address = address
        self.port = port
    }
}

/// A duration in JSON: `"10s"`, `"1m30s"`, `"250ms"` or a number of seconds. Invalid text is kept so the
/// validator can name the field.
public struct FlexibleDuration: Decodable, Sendable, Equatable {
    public var text: String
    public var value: Duration?

    public init(_ text: String) {
        self.text = text
        self.value = DurationText.parse(text)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let seconds = try? container.decode(Double.self) {
            self.init(String(seconds))
        } else {
            self.init(try container.decode(String.self))
        }
    }

    var millis: Int64? { self.value?.wholeMilliseconds }
}

/// Limits and checks on names and registrations.
public enum RegistrationRules {
    public static let maxNameBytes = 128
    public static let maxTags = 64
    public static let maxMetaEntries = 64
    public static let maxMetaValueBytes = 512
    public static let maxMetaTotalBytes = 8192
    public static let maxChecks = 16

    /// Service names: `[a-z0-9][a-z0-9._-]*`, at most 128 bytes.
    public static func validateServiceName(_ name: String) throws(RegistrationError) {
        guard Self.matches(name, first: Self.lowerAlnum, rest: Self.lowerAlnum.union(Self.punctuation)) else {
            throw RegistrationError(
                field: "name", "service name '\(name)' must be 1–\(maxNameBytes) bytes of a-z, 0-9, '.', '_' or '-', starting with a letter or digit")
        }
    }

    /// Instance ids: `[A-Za-z0-9][A-Za-z0-9._:-]*`, at most 128 bytes.
    public static func validateInstanceID(_ id: String) throws(RegistrationError) {
        let alnum = Self.lowerAlnum.union(Set("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        guard Self.matches(id, first: alnum, rest: alnum.union(Self.punctuation).union([":"])) else {
            throw RegistrationError(
                field: "id", "instance id '\(id)' must be 1–\(maxNameBytes) bytes of letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
        }
    }

    /// Check ids follow the instance id rules (they appear in URL paths).
    static func validateCheckID(_ id: String, field: String) throws(RegistrationError) {
        do {
            try Self.validateInstanceID(id)
        } catch {
            throw RegistrationError(field: field, "check id '\(id)' must be 1–\(maxNameBytes) bytes of letters, digits, '.', '_', ':' or '-'")
        }
    }

    private static let lowerAlnum = Set("abcdefghijklmnopqrstuvwxyz0123456789")
    private static let punctuation: Set<Character> = [".", "_", "-"]

    private static func matches(_ text: String, first: Set<Character>, rest: Set<Character>) -> Bool {
        guard let head = text.first, text.utf8.count <= maxNameBytes, first.contains(head) else { return false }
        return text.dropFirst().allSatisfy { rest.contains($0) }
    }
}

extension RegistrationRequest {
    /// Checks every field and builds the instance record; throws naming the first wrong field.
    /// - Parameter minimumDeregisterAfter: the shortest `deregister_critical_after` accepted (1 minute in production).
    public func validated(
        service: String, id: String, owner: String, now: Int64, minimumDeregisterAfter: Duration = .seconds(60)
    ) throws(RegistrationError) -> ServiceInstance {
        try RegistrationRules.validateServiceName(service)
        try RegistrationRules.validateInstanceID(id)
        guard let address = self.address, !address.isEmpty else { throw RegistrationError(field: "address", "address is required (a host name or IP)") }
        guard address.utf8.count <= 253, !address.contains(where: { $0.isWhitespace || $0 == "/" }) else {
            throw RegistrationError(field: "address", "address '\(address)' is not a host name or IP (at most 253 bytes, no spaces or '/')")
        }
        guard let port = self.port else { throw RegistrationError(field: "port", "port is required (1–65535)") }
        guard (1...65535).contains(port) else { throw RegistrationError(field: "port", "port must be 1–65535, not \(port)") }
        let weight = self.weight ?? 100
        guard (1...1000).contains(weight) else { throw RegistrationError(field: "weight", "weight must be 1–1000, not \(weight)") }
        let tags = self.tags ?? []
        guard tags.count <= RegistrationRules.maxTags else {
            throw RegistrationError(field: "tags", "at most \(RegistrationRules.maxTags) tags, not \(tags.count)")
        }
        for (index, tag) in tags.enumerated() where tag.isEmpty || tag.utf8.count > RegistrationRules.maxNameBytes {
            throw RegistrationError(field: "tags[\(index)]", "each tag must be 1–\(RegistrationRules.maxNameBytes) bytes")
        }
        let meta = self.meta ?? [:]
        try Self.validateMeta(meta)
        if let zone = self.zone, zone.isEmpty || zone.utf8.count > RegistrationRules.maxNameBytes {
            throw RegistrationError(field: "zone", "zone must be 1–\(RegistrationRules.maxNameBytes) bytes")
        }
        let checks = try self.validatedChecks(instanceID: id)
        var initial: HealthStatus = checks.isEmpty ? .passing : .critical
        if let text = self.status {
            guard let status = HealthStatus(rawValue: text), status != .maintenance else {
                throw RegistrationError(field: "status", "status must be passing, warning or critical, not '\(text)'")
            }
            initial = status
        }
        var deregisterAfter: Int64?
        if let flexible = self.deregisterCriticalAfter {
            guard let value = flexible.value, let millis = flexible.millis else {
                throw RegistrationError(field: "deregister_critical_after", "deregister_critical_after must be a duration such as 10m, not '\(flexible.text)'")
            }
            guard value >= minimumDeregisterAfter else {
                throw RegistrationError(
                    field: "deregister_critical_after",
                    "deregister_critical_after must be at least \(DurationText.format(minimumDeregisterAfter)), not \(flexible.text)")
            }
            deregisterAfter = millis
        }
        return ServiceInstance(
            service: service, id: id, address: address, port: port, tags: tags, meta: meta, weight: weight, zone: self.zone, checks: checks,
            owner: owner, initialStatus: initial, deregisterCriticalAfterMillis: deregisterAfter, registeredAt: now)
    }

    private static func validateMeta(_ meta: [String: String]) throws(RegistrationError) {
        guard meta.count <= RegistrationRules.maxMetaEntries else {
            throw RegistrationError(field: "meta", "at most \(RegistrationRules.maxMetaEntries) meta entries, not \(meta.count)")
        }
        var total = 0
        for (key, value) in meta.sorted(by: { $0.key < $1.key }) {
            guard !key.isEmpty, key.utf8.count <= RegistrationRules.maxNameBytes else {
                throw RegistrationError(field: "meta", "meta keys must be 1–\(RegistrationRules.maxNameBytes) bytes ('\(key.prefix(40))')")
            }
            guard value.utf8.count <= RegistrationRules.maxMetaValueBytes else {
                throw RegistrationError(field: "meta.\(key)", "meta values must be at most \(RegistrationRules.maxMetaValueBytes) bytes, '\(key)' has \(value.utf8.count)")
            }
            total += key.utf8.count + value.utf8.count
        }
        guard total <= RegistrationRules.maxMetaTotalBytes else {
            throw RegistrationError(field: "meta", "meta is \(total) bytes; the limit is \(RegistrationRules.maxMetaTotalBytes)")
        }
    }

    private func validatedChecks(instanceID: String) throws(RegistrationError) -> [CheckDefinition] {
        let requests = self.checks ?? []
        guard requests.count <= RegistrationRules.maxChecks else {
            throw RegistrationError(field: "checks", "at most \(RegistrationRules.maxChecks) checks, not \(requests.count)")
        }
        var definitions: [CheckDefinition] = []
        var typeCounts: [CheckKind: Int] = [:]
        for (index, request) in requests.enumerated() {
            let field = "checks[\(index)]"
            guard let typeText = request.type else { throw RegistrationError(field: "\(field).type", "\(field).type is required: http, tcp or ttl") }
            guard let kind = CheckKind(rawValue: typeText) else {
                throw RegistrationError(field: "\(field).type", "unknown check type '\(typeText)': use http, tcp or ttl")
            }
            typeCounts[kind, default: 0] += 1
            let count = typeCounts[kind] ?? 1
            let id = request.id ?? (count == 1 ? "\(instanceID):\(kind.rawValue)" : "\(instanceID):\(kind.rawValue):\(count)")
            try RegistrationRules.validateCheckID(id, field: "\(field).id")
            guard !definitions.contains(where: { $0.id == id }) else {
                throw RegistrationError(field: "\(field).id", "check id '\(id)' is used twice")
            }
            func duration(_ value: FlexibleDuration?, _ name: String, default fallback: Int64, minimum: Int64) throws(RegistrationError) -> Int64 {
                guard let value else { return fallback }
                guard let millis = value.millis, millis >= minimum else {
                    throw RegistrationError(field: "\(field).\(name)", "\(field).\(name) must be a duration of at least \(minimum) ms such as 10s, not '\(value.text)'")
                }
                return millis
            }
            var definition = CheckDefinition(
                id: id, kind: kind, intervalMillis: try duration(request.interval, "interval", default: 10_000, minimum: 100),
                timeoutMillis: try duration(request.timeout, "timeout", default: 2_000, minimum: 10))
            switch kind {
            case .http:
                guard let url = request.url, let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
                    throw RegistrationError(field: "\(field).url", "an http check needs a url such as http://10.0.0.12:8080/health")
                }
                definition.url = url
            case .tcp:
                guard let target = request.tcp, Self.hostPort(target) != nil else {
                    throw RegistrationError(field: "\(field).tcp", "a tcp check needs tcp as host:port, e.g. 10.0.0.12:5432")
                }
                definition.tcp = target
            case .ttl:
                guard request.ttl != nil else { throw RegistrationError(field: "\(field).ttl", "a ttl check needs ttl, e.g. \"30s\"") }
                definition.ttlMillis = try duration(request.ttl, "ttl", default: 0, minimum: 100)
            }
            for (name, value) in [("success_before_passing", request.successBeforePassing), ("failures_before_critical", request.failuresBeforeCritical)] {
                if let value, !(1...100).contains(value) {
                    throw RegistrationError(field: "\(field).\(name)", "\(field).\(name) must be 1–100, not \(value)")
                }
            }
            definition.successBeforePassing = request.successBeforePassing ?? 1
            definition.failuresBeforeCritical = request.failuresBeforeCritical ?? 1
            definitions.append(definition)
        }
        return definitions
    }

    /// Splits `host:port` (`[v6]:port` too); nil when it is not one.
    static func hostPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }
}
