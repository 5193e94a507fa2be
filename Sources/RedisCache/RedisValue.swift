/// A reply from Redis (RESP2).
public enum RedisValue: Sendable, Equatable {
    /// A simple string such as `OK` or `PONG`.
    case status(String)
    /// An error reply such as `ERR unknown command`. Commands return it as a value; they do not throw it.
    case error(String)
    /// An integer reply.
    case integer(Int64)
    /// A bulk string: any bytes.
    case bulk([UInt8])
    /// A null bulk string or null array, such as `GET` of a missing key.
    case null
    /// An array reply, such as `HGETALL` or `EXEC`.
    case array([RedisValue])

    /// The text of a bulk string or status reply, if it is valid UTF-8.
    public var string: String? {
        switch self {
        case .status(let text): text
        case .bulk(let bytes): String(validating: bytes, as: UTF8.self)
        default: nil
        }
    }

    /// The value of an integer reply, or of a bulk string or status reply that holds a decimal integer
    /// (as `GET` returns a counter written by `INCR`).
    public var int: Int64? {
        switch self {
        case .integer(let value): value
        case .status, .bulk: string.flatMap { Int64($0) }
        default: nil
        }
    }

    /// The elements of an array reply.
    public var array: [RedisValue]? {
        if case .array(let elements) = self { elements } else { nil }
    }
}

/// Why a Redis operation failed. Error *replies* from the server are not thrown: they come back as
/// `RedisValue.error`.
public struct RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of failure.
    public enum Kind: Sendable, Equatable {
        /// A Redis URL could not be parsed.
        case invalidURL
        /// The server could not be reached.
        case connect
        /// The server rejected the credentials, or wants some and none were configured.
        case auth
        /// Reading from or writing to the server failed, or the server closed the connection.
        case io
        /// The server did not answer within the command timeout.
        case timeout
        /// The server sent something that is not valid RESP, or a command could not be encoded.
        case protocolError
        /// The server refused part of setting up a connection (such as `SELECT`).
        case server
        /// The connection or client is closed, or the operation was cancelled before it ran.
        case closed
    }

    /// The kind of failure.
    public var kind: Kind
    /// A sentence for people, naming the server and the cause.
    public var message: String

    /// Creates an error.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
