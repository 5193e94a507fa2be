/// The one error type of the gossip transport and keyring. Tests compare `code`.
public struct GossipError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case badKey = "bad_key"
            case keyInUse = "key_in_use"
            case unknownKey = "unknown_key"
            case notEncrypted = "not_encrypted"
            case decryptFailed = "decrypt_failed"
            case bind = "bind_failed"
            case badSettings = "bad_settings"
            case stopped
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }
        /// A key is not base64 of 16, 24 or 32 bytes.
        public static let badKey = Code(.badKey)
        /// The primary key cannot be removed.
        public static let keyInUse = Code(.keyInUse)
        /// The key is not installed.
        public static let unknownKey = Code(.unknownKey)
        /// Keyring operations need encryption to be on (`--encrypt-key`).
        public static let notEncrypted = Code(.notEncrypted)
        /// No installed key opens the packet (wrong key, other cluster label, or tampering).
        public static let decryptFailed = Code(.decryptFailed)
        /// The gossip address could not be bound.
        public static let bind = Code(.bind)
        /// A setting is out of range.
        public static let badSettings = Code(.badSettings)
        /// The node has stopped.
        public static let stopped = Code(.stopped)
        public var description: String { self.value.rawValue }
    }

    public var code: Code
    public var message: String
    public var cause: (any Error)?

    public init(code: Code, message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String { self.message }
}
