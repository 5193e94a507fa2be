import ConfigCenter
import Hummingbird

/// The query parameters of one request, checked against what the endpoint accepts.
///
/// Unknown parameters are refused (400 naming them) rather than ignored, so a typo such as `?recurce`
/// never silently returns something else.
///
/// A request carries a handful of parameters at most, so they are kept as pairs and found by a linear scan: on the hot
/// paths (a plain `GET /v1/kv/<key>?raw`) that costs less than hashing into a dictionary, and `allowed` is a literal
/// array rather than a set built on every request.
struct QueryFlags {
    private var values: [(name: String, value: String)] = []

    init(_ request: Request, allowed: [String], endpoint: String) throws(APIError) {
        guard request.uri.query != nil else { return }
        for (key, value) in request.uri.queryParameters {
            let name = String(key)
            guard allowed.contains(name) else {
                throw APIError.badRequest(
                    "unknown query parameter '\(name)' for \(endpoint); allowed: \(allowed.sorted().joined(separator: ", "))",
                    code: "unknown_parameter")
            }
            // A repeated parameter: the last one counts.
            if let index = self.values.firstIndex(where: { $0.name == name }) {
                self.values[index].value = String(value)
            } else {
                self.values.append((name, String(value)))
            }
        }
    }

    func has(_ name: String) -> Bool { self[name] != nil }

    subscript(_ name: String) -> String? { self.values.first(where: { $0.name == name })?.value }

    /// The parameter as a non-negative integer, or nil when absent.
    func int(_ name: String, min: Int = 0, max: Int = .max) throws(APIError) -> Int? {
        guard let text = self[name] else { return nil }
        guard let value = Int(text), value >= min, value <= max else {
            throw APIError.badRequest("query parameter '\(name)' must be an integer from \(min) to \(max), not '\(text)'")
        }
        return value
    }

    /// `wait` of a blocking query: the server's default when absent, at most its maximum.
    func wait(_ settings: ServerSettings) throws(APIError) -> Duration {
        guard let text = self["wait"] else { return settings.defaultWait }
        guard let parsed = DurationText.parse(text), parsed <= settings.maxWait else {
            throw APIError.badRequest("wait must be a duration up to \(DurationText.format(settings.maxWait)) such as 30s or 5m, not '\(text)'")
        }
        return parsed
    }

    /// Refuses combinations of flags that mean different operations.
    func exclusive(_ names: [String]) throws(APIError) {
        if self.values.count < 2 { return }
        let present = names.filter { self.has($0) }
        if present.count > 1 {
            throw APIError.badRequest("query parameters \(present.map { "'\($0)'" }.joined(separator: " and ")) cannot be combined")
        }
    }
}
