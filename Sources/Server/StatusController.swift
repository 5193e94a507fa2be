import ConfigCenter
import Foundation
import Hummingbird
import Registry

/// `GET /v1/status`, `GET /health` and `POST /v1/admin/compact`.
struct StatusController: Sendable {
    let store: ConfigStore
    let settings: ServerSettings
    let cluster: (any ClusterView)?
    let started: ContinuousClock.Instant
    let startedWall: Date
    var replicator: Replicator? = nil
    /// The service registry (nil in router tests without one).
    var registry: Registry? = nil
    /// The registry's Redis cache, when configured: degraded does not fail `/health` (lookups are served
    /// from the store), but it shows.
    var cacheStatus: (@Sendable () -> (healthy: Bool, detail: String))? = nil

    struct StatusDTO: Encodable {
        var node: String
        var version: String
        var revision: Int64
        var keys: Int
        var versions: Int
        var watchers: Int
        var started_at: String
        var uptime_seconds: Double
        var gossip: [String: JSONValue]?
        var registry: [String: JSONValue]?
    }

    struct HealthDTO: Encodable {
        var status: String
        var node: String
        var checks: [String: String]
    }

    struct CompactDTO: Encodable {
        var versions_removed: Int
        var keys_forgotten: Int
    }

    func addRoutes(to router: Router<AgentRequestContext>) {
        router.get("/v1/status", use: self.status)
        router.get("/health", use: self.health)
        router.post("/v1/admin/compact", use: self.compact)
    }

    @Sendable func status(request: Request, context: AgentRequestContext) async throws -> Response {
        _ = try QueryFlags(request, allowed: [], endpoint: "GET /v1/status")
        let counts = try await self.store.counts()
        let uptime = ContinuousClock.now - self.started
        return try JSONBody.response(
            StatusDTO(
                node: self.settings.nodeName, version: self.settings.version, revision: try await self.store.revision(),
                keys: counts.keys, versions: counts.versions, watchers: self.store.feed.subscriberCount,
                started_at: Timestamps.iso8601(millis: Int64(self.startedWall.timeIntervalSince1970 * 1000)),
                uptime_seconds: Double(uptime.components.seconds) + Double(uptime.components.attoseconds) / 1e18,
                gossip: self.cluster?.gossipStatus(), registry: self.registry.map { self.registryStatus($0) }))
    }

    private func registryStatus(_ registry: Registry) -> [String: JSONValue] {
        let services = registry.services()
        var status: [String: JSONValue] = [
            "services": .int(services.count), "instances": .int(services.reduce(0) { $0 + $1.instances }),
            "passing": .int(services.reduce(0) { $0 + $1.passing }), "removed_critical": .int(registry.removedCritical),
            "checks_running": .int(registry.checksRunning),
        ]
        if let cache = self.cacheStatus?() { status["redis"] = .string(cache.detail) }
        return status
    }

    @Sendable func health(request: Request, context: AgentRequestContext) async throws -> Response {
        var checks: [String: String] = [:]
        var failing = false
        do {
            _ = try await self.store.revision()
            checks["store"] = "ok"
        } catch {
            checks["store"] = "\(error)"
            failing = true
        }
        if let replicator = self.replicator {
            let divergent = replicator.divergentPeers()
            if divergent.isEmpty {
                checks["consistency"] = replicator.resyncing ? "ok (resyncing after a long absence)" : "ok"
            } else {
                checks["consistency"] =
                    "diverged from \(divergent.joined(separator: ", ")) for longer than \(DurationText.format(replicator.settings.divergenceBound)); see GET /v1/consistency"
                failing = true
            }
        }
        var degraded = false
        if let cache = self.cacheStatus?() {
            checks["redis"] = cache.detail
            degraded = !cache.healthy
        }
        return try JSONBody.response(
            HealthDTO(status: failing ? "failing" : (degraded ? "degraded" : "ok"), node: self.settings.nodeName, checks: checks), status: failing ? .serviceUnavailable : .ok)
    }

    @Sendable func compact(request: Request, context: AgentRequestContext) async throws -> Response {
        let flags = try QueryFlags(request, allowed: ["keep_versions", "keep_for"], endpoint: "POST /v1/admin/compact")
        var retention = self.store.settings.retention
        if let keep = try flags.int("keep_versions", min: 1) { retention.keepVersions = keep }
        if let text = flags["keep_for"] {
            guard let duration = DurationText.parse(text) else { throw APIError.badRequest("keep_for must be a duration like 7d or 12h, not '\(text)'") }
            retention.keepFor = duration
        }
        let report = try await self.store.compact(retention: retention)
        return try JSONBody.response(CompactDTO(versions_removed: report.versionsRemoved, keys_forgotten: report.keysForgotten))
    }
}
