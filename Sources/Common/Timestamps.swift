/// Wall-clock times as text, without Foundation formatters (they run on every JSON answer and in every
/// notification, and format styles are slow).
public enum Timestamps {
    /// `2026-11-21T20:16:59.214Z` from Unix milliseconds: always three fraction digits.
    public static func iso8601(millis: Int64) -> String {
        let time = Civil(millis: millis)
        return time.dateAndTime + "." + self.pad(time.fraction, 3) + "Z"
    }

    /// RFC 3339 in UTC as Go and Alertmanager print it: milliseconds only when non-zero, without trailing zeros
    /// (`2023-11-14T22:13:20Z`, `2023-11-14T22:13:20.5Z`, `2023-11-14T22:13:20.123Z`).
    public static func rfc3339(millis: Int64) -> String {
        let time = Civil(millis: millis)
        guard time.fraction != 0 else { return time.dateAndTime + "Z" }
        var digits = self.pad(time.fraction, 3)
        while digits.hasSuffix("0") { digits.removeLast() }
        return time.dateAndTime + "." + digits + "Z"
    }

    /// A UTC civil date and time of day from Unix milliseconds (Howard Hinnant's `civil_from_days`).
    private struct Civil {
        var year, month, day, hour, minute, second, fraction: Int64

        init(millis: Int64) {
            let (days, msOfDay) = millis.quotientAndRemainder(dividingBy: 86_400_000)
            let dayNumber = msOfDay < 0 ? days - 1 : days
            let ms = msOfDay < 0 ? msOfDay + 86_400_000 : msOfDay
            let z = dayNumber + 719_468
            let era = (z >= 0 ? z : z - 146_096) / 146_097
            let doe = z - era * 146_097
            let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
            let mp = (5 * doy + 2) / 153
            self.day = doy - (153 * mp + 2) / 5 + 1
            self.month = mp < 10 ? mp + 3 : mp - 9
            self.year = yoe + era * 400 + (self.month <= 2 ? 1 : 0)
            self.hour = ms / 3_600_000
            self.minute = ms / 60_000 % 60
            self.second = ms / 1000 % 60
            self.fraction = ms % 1000
        }

        /// `YYYY-MM-DDTHH:MM:SS`.
        var dateAndTime: String {
            "\(Timestamps.pad(self.year, 4))-\(Timestamps.pad(self.month, 2))-\(Timestamps.pad(self.day, 2))"
                + "T\(Timestamps.pad(self.hour, 2)):\(Timestamps.pad(self.minute, 2)):\(Timestamps.pad(self.second, 2))"
        }
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let digits = String(value.magnitude)
        let sign = value < 0 ? "-" : ""
        return sign + String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
