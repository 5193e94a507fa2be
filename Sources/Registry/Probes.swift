import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// Runs one probe of an http or tcp check.
public protocol CheckProber: Sendable {
    /// The observed status and a short output for people.
    func probe(_ check: CheckDefinition) async -> (HealthStatus, String)
}

/// Probes over the network: HTTP GET with AsyncHTTPClient, TCP connect with NIO.
public struct NetworkProber: CheckProber {
    private let client: HTTPClient

    /// - Parameter client: the HTTP client to use (the shared singleton by default).
    public init(client: HTTPClient = .shared) {
        self.client = client
    }

    public func probe(_ check: CheckDefinition) async -> (HealthStatus, String) {
        let timeout = TimeAmount.milliseconds(check.timeoutMillis)
        switch check.kind {
        case .http:
            guard let url = check.url else { return (.critical, "no url") }
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "User-Agent", value: "gossamer-health-check")
            do {
                let response = try await self.client.execute(request, timeout: timeout)
                var body = try await response.body.collect(upTo: 4096)
                let text = body.readString(length: min(body.readableBytes, 256)) ?? ""
                let summary = "HTTP GET \(url): \(response.status.code) \(response.status.reasonPhrase)" + (text.isEmpty ? "" : " — \(text)")
                switch response.status.code {
                case 200..<300: return (.passing, summary)
                case 429: return (.warning, summary)
                default: return (.critical, summary)
                }
            } catch {
                return (.critical, "HTTP GET \(url) failed: \(error)")
            }
        case .tcp:
            guard let target = check.tcp, let (host, port) = RegistrationRequest.hostPort(target) else { return (.critical, "no tcp target") }
            do {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(timeout)
                    .connect(host: host, port: port).get()
                try? await channel.close()
                return (.passing, "TCP connect \(target): success")
            } catch {
                return (.critical, "TCP connect \(target) failed: \(error)")
            }
        case .ttl:
            return (.critical, "ttl checks are not probed")
        }
    }
}
