// MARK: - Duration text

/// Durations as people write them in flags, config files, query parameters and alert rules: `250ms`, `30s`, `5m`,
/// `1h`, `1d`, compounds such as `1h30m` or `1m30.5s`, and a bare number as seconds. One grammar for the whole
/// product, in the one module every other may import.
public enum DurationText {
    /// The longest duration accepted: about 30 years. Longer ones are typos, and they would overflow wall-clock
    /// arithmetic in milliseconds.
    public static let maximumMilliseconds: Double = 1e12

    /// The duration `text` denotes, in whole milliseconds (rounded); `nil` when malformed, negative or absurdly long.
    public static func parse(_ text: String) -> Duration? {
        if let seconds = Double(text) {
            return self.milliseconds(seconds * 1000)
        }
        var total = 0.0
        var number = ""
        var unit = ""
        var sawTerm = false
        func flush() -> Bool {
            guard let value = Double(number), let scale = self.unitMilliseconds(unit) else { return false }
            total += value * scale
            number = ""
            unit = ""
            sawTerm = true
            return true
        }
        for character in text {
            if character.isASCII, character.isNumber || character == "." {
                if !unit.isEmpty, !flush() { return nil }
                number.append(character)
            } else if character.isASCII, character.isLetter {
                guard !number.isEmpty else { return nil }
                unit.append(character)
            } else {
                return nil
            }
        }
        guard !number.isEmpty, !unit.isEmpty, flush(), sawTerm else { return nil }
        return self.milliseconds(total)
    }

    /// `duration` as compact text that ``parse(_:)`` reads back: `0s`, `250ms`, `5m`, `1h30m`, `1d2h`, `1s500ms`.
    public static func format(_ duration: Duration) -> String {
        let milliseconds = duration.wholeMilliseconds
        guard milliseconds != 0 else { return "0s" }
        var remaining = milliseconds.magnitude
        var text = milliseconds < 0 ? "-" : ""
        let units: [(String, UInt64)] = [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)]
        for (unit, scale) in units where remaining >= scale {
            text += "\(remaining / scale)\(unit)"
            remaining %= scale
        }
        return text
    }

    private static func unitMilliseconds(_ unit: String) -> Double? {
        switch unit {
        case "ms": 1
        case "s": 1000
        case "m": 60_000
        case "h": 3_600_000
        case "d": 86_400_000
        default: nil
        }
    }

    private static func milliseconds(_ value: Double) -> Duration? {
        guard value.isFinite, value >= 0, value <= self.maximumMilliseconds else { return nil }
        return .milliseconds(Int64(value.rounded()))
    }
}

extension Duration {
    /// The duration in whole milliseconds, truncated toward zero.
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds &* 1000 &+ attoseconds / 1_000_000_000_000_000
    }
}
