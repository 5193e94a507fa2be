import Hummingbird

/// The query parameters of one request, checked against what the endpoint accepts.
///
/// Unknown parameters are refused (400 naming them) rather than ignored, so a typo such as `?recurce`
/// never silently returns something else.
struct QueryFlags {
    private var values: [String: String] = [:]

    init(_ request: Request, allowed: Set<String>, endpoint: String) throws(APIError) {
        for (key, value) in request.uri.queryParameters {
            let name = String(key)
            guard allowed.contains(name) else {
                throw APIError.badRequest(
                    "unknown query parameter '\(name)' for \(endpoint); allowed: \(allowed.sorted().joined(separator: ", "))",
                    code: "unknown_parameter")
            }
            self.values[name] = String(value)
        }
    }

    func has(_ name: String) -> Bool { self.values[name] != nil }

    subscript(_ name: String) -> String? { self.values[name] }

    /// The parameter as a non-negative integer, or nil when absent.
    func int(_ name: String, min: Int = 0, max: Int = .max) throws(APIError) -> Int? {
        guard let text = self.values[name] else { return nil }
        guard let value = Int(text), value >= min, value <= max else {
            throw APIError.badRequest("query parameter '\(name)' must be an integer from \(min) to \(max), not '\(text)'")
        }
        return value
    }

    /// Refuses combinations of flags that mean different operations.
    func exclusive(_ names: [String]) throws(APIError) {
        let present = names.filter { self.has($0) }
        if present.count > 1 {
            throw APIError.badRequest("query parameters \(present.map { "'\($0)'" }.joined(separator: " and ")) cannot be combined")
        }
    }
}

/// Durations in the API and config: `250ms`, `30s`, `5m`, `1h`, or a compound like `1m30s`. A bare number is seconds.
public enum DurationText {
    public static func parse(_ text: String) -> Duration? {
        if let seconds = Double(text), seconds >= 0 { return .milliseconds(Int64(seconds * 1000)) }
        var total: Duration = .zero
        var number = ""
        var unit = ""
        var sawAny = false
        func flush() -> Bool {
            guard let value = Double(number), value >= 0 else { return false }
            let millis: Double
            switch unit {
            case "ms": millis = value
            case "s": millis = value * 1000
            case "m": millis = value * 60_000
            case "h": millis = value * 3_600_000
            case "d": millis = value * 86_400_000
            default: return false
            }
            total += .milliseconds(Int64(millis))
            number = ""
            unit = ""
            sawAny = true
            return true
        }
        for char in text {
            if char.isNumber || char == "." {
                if !unit.isEmpty { guard flush() else { return nil } }
                number.append(char)
            } else if char.isLetter {
                guard !number.isEmpty else { return nil }
                unit.append(char)
            } else {
                return nil
            }
        }
        guard !number.isEmpty, flush() else { return nil }
        return sawAny ? total : nil
    }

    /// `1h2m3s`-style text for a duration, for people.
    public static func format(_ duration: Duration) -> String {
        let millis = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        if millis < 1000 { return "\(millis)ms" }
        var seconds = millis / 1000
        var out = ""
        if seconds >= 86400 { out += "\(seconds / 86400)d"; seconds %= 86400 }
        if seconds >= 3600 { out += "\(seconds / 3600)h"; seconds %= 3600 }
        if seconds >= 60 { out += "\(seconds / 60)m"; seconds %= 60 }
        if seconds > 0 || out.isEmpty { out += "\(seconds)s" }
        return out
    }
}
