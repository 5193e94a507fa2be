import Logging

/// Settings of the HTTP adapter. `Agent` fills them from flags and the config file.
public struct ServerSettings: Sendable {
    /// Node name reported in `X-Gossamer-Node` and `/v1/status`.
    public var nodeName: String = "local"
    /// Version string of the build, reported by `/v1/status`.
    public var version: String = "dev"
    /// Interval of `heartbeat` events on watch streams. Default 15 s: keeps idle proxies from closing the stream.
    public var watchHeartbeat: Duration = .seconds(15)
    /// Longest `wait` a blocking read may ask for. Default 10 min.
    public var maxWait: Duration = .seconds(600)
    /// `wait` of a blocking read that gives `index` without `wait`. Default 5 min (as Consul).
    public var defaultWait: Duration = .seconds(300)
    /// Logger for request handling.
    public var logger = Logger(label: "gossamer.http")

    public init() {}
}
