/// Exponential backoff between reconnection attempts: 100 ms, doubling after each failure up to 5 s.
struct Backoff: Sendable {
    static let initial: Duration = .milliseconds(100)
    static let maximum: Duration = .seconds(5)

    /// The delay to wait after the next failure.
    private(set) var delay = Backoff.initial

    /// Returns the delay to wait now, and doubles the next one.
    mutating func next() -> Duration {
        defer { delay = min(delay * 2, Self.maximum) }
        return delay
    }

    /// Starts over after a success.
    mutating func reset() {
        delay = Self.initial
    }
}
