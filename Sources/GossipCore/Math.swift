/// The few logarithms the protocol needs, without Foundation.
enum SWIMMath {
    /// Natural logarithm of a positive finite `x` (`-infinity` for 0, `nan` for negatives).
    static func ln(_ x: Double) -> Double {
        guard x > 0 else { return x == 0 ? -.infinity : .nan }
        guard x.isFinite else { return x }
        // x = m · 2^e with m in [1, 2); ln m = 2 atanh((m − 1)/(m + 1)), |t| ≤ 1/3.
        let exponent = Double(x.exponent)
        let mantissa = x.significand
        let t = (mantissa - 1) / (mantissa + 1)
        let t2 = t * t
        var term = t
        var sum = 0.0
        var n = 1.0
        while true {
            let next = sum + term / n
            if next == sum { break }
            sum = next
            term *= t2
            n += 2
        }
        return 2 * sum + exponent * 0.693_147_180_559_945_3
    }

    /// Base-10 logarithm.
    static func log10(_ x: Double) -> Double { ln(x) / 2.302_585_092_994_046 }

    /// `⌈log10(n)⌉` for `n ≥ 1`, in integers.
    static func ceilLog10(_ n: Int) -> Int {
        var digits = 0
        var power = 1
        while power < n {
            let (next, overflow) = power.multipliedReportingOverflow(by: 10)
            digits += 1
            if overflow { break }
            power = next
        }
        return digits
    }

    /// `⌈log2(n)⌉` for `n ≥ 1`.
    static func ceilLog2(_ n: Int) -> Int {
        n <= 1 ? 0 : Int.bitWidth - (n - 1).leadingZeroBitCount
    }
}
