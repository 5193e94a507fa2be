/// The one error type of the config store. Tests and the HTTP layer compare `code`.
public struct ConfigStoreError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as a stable, comparable value.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case badKey = "bad_key"
            case badValue = "bad_value"
            case badRequest = "bad_request"
            case notFound = "not_found"
            case casMismatch = "cas_mismatch"
            case txnFailed = "txn_failed"
            case tooLarge = "value_too_large"
            case storage = "storage_error"
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// The key is not a valid slash path.
        public static let badKey = Code(.badKey)
        /// The value does not parse as its declared content type (JSON, YAML).
        public static let badValue = Code(.badValue)
        /// A request argument is malformed (bad version, too many operations, …).
        public static let badRequest = Code(.badRequest)
        /// The key, or the requested version of it, does not exist.
        public static let notFound = Code(.notFound)
        /// A compare-and-set found another version than the one expected.
        public static let casMismatch = Code(.casMismatch)
        /// A transaction's compare failed; nothing was written.
        public static let txnFailed = Code(.txnFailed)
        /// The value is larger than the configured limit.
        public static let tooLarge = Code(.tooLarge)
        /// SQLite failed; the write was not applied.
        public static let storage = Code(.storage)

        /// The snake_case name used in JSON error bodies.
        public var description: String { self.value.rawValue }
    }

    /// What went wrong.
    public var code: Code
    /// A sentence for people: what happened and, where possible, what to do.
    public var message: String
    /// For `casMismatch`: the current version of the key (0 when it does not exist).
    public var currentVersion: Int?
    /// For `txnFailed`: the index of each failed compare with its current version.
    public var failures: [TxnFailure]
    /// The underlying error, if any.
    public var cause: (any Error)?

    public init(code: Code, message: String, currentVersion: Int? = nil, failures: [TxnFailure] = [], cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.currentVersion = currentVersion
        self.failures = failures
        self.cause = cause
    }

    public var description: String { "\(self.code): \(self.message)" }

    static func badKey(_ message: String) -> Self { .init(code: .badKey, message: message) }
    static func badRequest(_ message: String) -> Self { .init(code: .badRequest, message: message) }
    static func notFound(_ message: String) -> Self { .init(code: .notFound, message: message) }
}

/// One failed compare of a transaction.
public struct TxnFailure: Sendable, Equatable, Codable {
    /// Position of the operation in the transaction.
    public var index: Int
    /// The key it compared.
    public var key: String
    /// The version it expected (0: the key must not exist).
    public var expected: Int
    /// The version found (0: the key does not exist).
    public var current: Int
}
