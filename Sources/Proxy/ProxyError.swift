// MARK: - Proxy error

/// The one error type of the proxy's public API. Tests compare `code`.
public struct ProxyError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case bind = "bind_failed"
            case alreadyStarted = "already_started"
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// The listen address could not be bound.
        public static let bind = Code(.bind)
        /// `run()` was called on a proxy that is running or has run.
        public static let alreadyStarted = Code(.alreadyStarted)

        /// The code as snake case.
        public var description: String { self.value.rawValue }
    }

    /// What went wrong.
    public var code: Code
    /// What to do about it, for people.
    public var message: String
    /// The underlying error, if any.
    public var cause: (any Error)?

    /// Creates an error.
    public init(code: Code, message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// The message.
    public var description: String { self.message }
}
