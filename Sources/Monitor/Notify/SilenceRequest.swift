#if canImport(FoundationEssentials)
import Common
import FoundationEssentials
#else
import Foundation
#endif

// MARK: - Silence request

/// The body of `POST /v1/alerts/silences`, as operators write it:
///
/// ```json
/// {"matchers": [{"name": "alertname", "value": "disk-full"}, {"name": "mount", "op": "=~", "value": "/data.*"}],
///  "duration": "2h", "comment": "resizing the volume", "created_by": "ops"}
/// ```
///
/// - `matchers` (required): a list of `{"name", "value", "op"}` objects (`op` one of `=`, `!=`, `=~`, `!~`, default
///   `=`), or the shorthand object `{"alertname": "disk-full", "mount": "/"}` of equality matchers.
/// - `duration` (such as `30m` or `2h`, the rule duration grammar) or `ends_at` (milliseconds since the epoch):
///   exactly one of them.
/// - `starts_at` (optional, milliseconds): default now; a later time schedules the silence.
/// - `comment` and `created_by` (optional strings, default empty). Alertmanager requires both; we accept empty ones
///   because a quick silence from the CLI should not fail on paperwork, and the CLI fills `created_by` in.
///
/// Unknown fields are rejected (a typo such as `"duraton"` must not silently make a different silence), and so is
/// `id`: the server assigns it.
public struct SilenceRequest: Hashable, Sendable {
    /// How the silence's end is given.
    public enum End: Hashable, Sendable {
        /// `duration`: that long after the start.
        case after(Duration)
        /// `ends_at`: at that instant.
        case at(WallTime)
    }

    /// The matchers, in the order given (the shorthand object's by label name).
    public var matchers: [Silence.Matcher]
    /// The start; `nil` means when the request is turned into a silence.
    public var startsAt: WallTime?
    /// The end.
    public var end: End
    /// Why.
    public var comment: String
    /// Who.
    public var createdBy: String

    /// Creates a request.
    public init(
        matchers: [Silence.Matcher], startsAt: WallTime? = nil, end: End, comment: String = "", createdBy: String = ""
    ) {
        self.matchers = matchers
        self.startsAt = startsAt
        self.end = end
        self.comment = comment
        self.createdBy = createdBy
    }

    /// The JSON field names.
    static let fieldNames: Set<String> = ["matchers", "starts_at", "duration", "ends_at", "comment", "created_by"]

    // MARK: - To a silence

    /// The silence the request asks for, with the caller's `id`, starting at ``startsAt`` or `now`. Throws the first
    /// problem ``Silence/validate()`` finds.
    public func silence(id: String, now: WallTime) throws(SilenceError) -> Silence {
        let startsAt = self.startsAt ?? now
        let endsAt: WallTime
        switch self.end {
        case .after(let duration): endsAt = startsAt + duration
        case .at(let instant): endsAt = instant
        }
        let silence = Silence(
            id: id, matchers: self.matchers, startsAt: startsAt, endsAt: endsAt, createdBy: self.createdBy,
            comment: self.comment)
        if let error = silence.validate().first {
            throw error
        }
        return silence
    }

    /// Decodes a request body and turns it into a validated silence with `id` at `now`: one call for the HTTP
    /// handler. Throws the first problem as a ``SilenceError`` naming its field (`body` when the body is not a JSON
    /// object).
    public static func decode(_ body: Data, id: String, now: WallTime) throws(SilenceError) -> Silence {
        let request: SilenceRequest
        do {
            request = try JSONDecoder().decode(SilenceRequest.self, from: body)
        } catch let error as SilenceError {
            throw error
        } catch {
            throw SilenceError(
                field: "body", #"the body must be a JSON object such as {"matchers": {"alertname": "x"}, "duration": "2h"}"#)
        }
        return try request.silence(id: id, now: now)
    }
}

// MARK: - Decoding

extension SilenceRequest: Decodable {
    /// Decodes the JSON form described on the type; throws a ``SilenceError`` for the first bad field.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        for key in container.allKeys.map(\.stringValue).sorted() where !Self.fieldNames.contains(key) {
            throw SilenceError(field: key, key == "id" ? "id is assigned by the server" : "unknown field '\(key)'")
        }

        func present(_ field: String) -> Bool {
            container.contains(AnyKey(field)) && !((try? container.decodeNil(forKey: AnyKey(field))) ?? false)
        }
        func optional<T: Decodable>(_ field: String, _ type: T.Type, _ expected: String) throws -> T? {
            guard present(field) else { return nil }
            guard let value = try? container.decode(type, forKey: AnyKey(field)) else {
                throw SilenceError(field: field, "\(field) must be \(expected)")
            }
            return value
        }

        guard present("matchers") else {
            throw SilenceError(field: "matchers", "matchers is required")
        }
        self.matchers = try Self.matchers(in: container)

        self.startsAt = try optional("starts_at", Int64.self, "milliseconds since the epoch").map {
            WallTime(millisecondsSinceEpoch: $0)
        }
        let durationText = try optional("duration", String.self, "a duration such as 30m or 2h")
        let endsAt = try optional("ends_at", Int64.self, "milliseconds since the epoch")
        switch (durationText, endsAt) {
        case (nil, nil):
            throw SilenceError(
                field: "duration", "give duration (such as 2h) or ends_at (milliseconds since the epoch)")
        case (.some, .some):
            throw SilenceError(field: "ends_at", "give either duration or ends_at, not both")
        case (.some(let text), nil):
            guard let duration = DurationText.parse(text) else {
                throw SilenceError(field: "duration", "duration must be a duration such as 30m or 2h, not '\(text)'")
            }
            guard duration > .zero else {
                throw SilenceError(field: "duration", "duration must be longer than 0s")
            }
            self.end = .after(duration)
        case (nil, .some(let milliseconds)):
            self.end = .at(WallTime(millisecondsSinceEpoch: milliseconds))
        }
        self.comment = try optional("comment", String.self, "a string") ?? ""
        self.createdBy = try optional("created_by", String.self, "a string") ?? ""
    }

    /// The `matchers` field: a list of matcher objects, or an object of equality matchers.
    private static func matchers(in container: KeyedDecodingContainer<AnyKey>) throws -> [Silence.Matcher] {
        let key = AnyKey("matchers")
        if let shorthand = try? container.decode([String: String].self, forKey: key) {
            return shorthand.keys.sorted().map { Silence.Matcher(name: $0, value: shorthand[$0] ?? "") }
        }
        guard let objects = try? container.decode([[String: String]].self, forKey: key) else {
            throw SilenceError(
                field: "matchers",
                #"matchers must be a list of {"name", "value", "op"} objects or an object such as {"alertname": "x"}"#)
        }
        let operators = Silence.Matcher.Operator.allCases.map(\.rawValue).joined(separator: " ")
        return try objects.enumerated().map { index, object throws(SilenceError) in
            let field = "matchers[\(index)]"
            if let unknown = object.keys.sorted().first(where: { !["name", "value", "op"].contains($0) }) {
                throw SilenceError(field: "\(field).\(unknown)", "\(field): unknown field '\(unknown)'")
            }
            guard let name = object["name"] else {
                throw SilenceError(field: "\(field).name", "\(field).name is required")
            }
            guard let value = object["value"] else {
                throw SilenceError(field: "\(field).value", "\(field).value is required")
            }
            let opText = object["op"] ?? "="
            guard let op = Silence.Matcher.Operator(rawValue: opText) else {
                throw SilenceError(field: "\(field).op", "\(field).op must be one of \(operators), not '\(opText)'")
            }
            return Silence.Matcher(name: name, value: value, op: op)
        }
    }
}
