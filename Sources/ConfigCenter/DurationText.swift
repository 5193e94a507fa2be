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
        let millis = duration.wholeMilliseconds
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

extension Duration {
    /// The duration in whole milliseconds (rounded toward zero).
    public var wholeMilliseconds: Int64 {
        self.components.seconds * 1000 + self.components.attoseconds / 1_000_000_000_000_000
    }
}
