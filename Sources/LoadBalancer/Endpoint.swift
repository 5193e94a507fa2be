// MARK: - Endpoint

/// One upstream instance a strategy can pick: a stable identity, where to connect, how much traffic it should get
/// relative to its peers, and (optionally) where it runs.
///
/// The `id` is the registry's instance id, not the address: the consistent-hash ring places an endpoint by `id`, so an
/// instance that moves to a new IP keeps its keys.
public struct Endpoint: Hashable, Sendable {
    /// A host and port to connect to.
    public struct Address: Hashable, Sendable, CustomStringConvertible {
        /// A host name or an IP literal.
        public var host: String
        /// A TCP port.
        public var port: Int

        /// Creates an address.
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// `host:port`, with an IPv6 literal in brackets.
        public var description: String {
            self.host.utf8.contains(UInt8(ascii: ":")) ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
        }
    }

    /// The weight an endpoint gets when its registration names none.
    public static let defaultWeight = 100
    /// The weights an endpoint may have: 1 (a trickle) to 1,000 (ten times the default).
    public static let weightRange: ClosedRange<Int> = 1...1000

    /// The stable instance id (the registry key). Two endpoints in one snapshot must not share it.
    public let id: String
    /// Where to connect.
    public let address: Address
    /// The relative share of traffic, in `weightRange`; `defaultWeight` (100) unless the registration says otherwise.
    public let weight: Int
    /// The zone or rack the instance runs in, if known.
    public let zone: String?

    /// Creates an endpoint.
    ///
    /// - Precondition: `weight` is in `Endpoint.weightRange`. Operator input is checked where it enters (the registry)
    ///   or clamped with `Endpoint.clampedWeight(_:)`.
    public init(id: String, address: Address, weight: Int = Endpoint.defaultWeight, zone: String? = nil) {
        precondition(Endpoint.weightRange.contains(weight), "endpoint \(id): weight \(weight) is outside 1...1000")
        self.id = id
        self.address = address
        self.weight = weight
        self.zone = zone
    }

    /// `weight` clamped into `weightRange`, for values that come from outside the process.
    public static func clampedWeight(_ weight: Int) -> Int {
        min(max(weight, Endpoint.weightRange.lowerBound), Endpoint.weightRange.upperBound)
    }
}
