import Hummingbird
import NIOCore

/// Request context of the agent's HTTP API: Hummingbird's core storage plus the client's address.
public struct AgentRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The peer address of the connection (nil in router tests).
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }

    /// The client's IP address as text, for the `client` field of history rows.
    var clientAddress: String? { self.remoteAddress?.ipAddress }
}
