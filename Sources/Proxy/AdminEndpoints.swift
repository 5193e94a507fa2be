import Foundation
import LoadBalancer
import NIOCore
import NIOHTTP1

// MARK: - Admin endpoints

/// The proxy's own endpoints under `/_lb/`, answered by the proxy and never forwarded:
/// `GET /_lb/upstreams` (JSON health and counters per pool and endpoint) and `GET /_lb/metrics` (Prometheus text).
enum AdminEndpoints {
    /// What an admin request asks for.
    enum Target {
        case upstreams
        case metrics
        case notFound
        case methodNotAllowed
    }

    /// Whether a request target belongs to the admin namespace.
    static func isAdmin(_ uri: String) -> Bool {
        RouteTable.matches(prefix: "/_lb".utf8, target: uri.utf8)
    }

    /// The admin endpoint a request addresses.
    static func target(method: String, uri: String) -> Target {
        let path = uri.utf8.split(separator: UInt8(ascii: "?"), maxSplits: 1, omittingEmptySubsequences: false).first
            .map { Substring($0) } ?? ""
        let target: Target
        switch path {
        case "/_lb/upstreams": target = .upstreams
        case "/_lb/metrics": target = .metrics
        default: return .notFound
        }
        return method == "GET" || method == "HEAD" ? target : .methodNotAllowed
    }

    /// The response for an admin target: status, content type and body.
    static func response(for target: Target, pools: [UpstreamPool]) -> (HTTPResponseStatus, String, String) {
        switch target {
        case .upstreams:
            return (.ok, "application/json", Self.upstreamsJSON(pools: pools))
        case .metrics:
            return (.ok, "text/plain; version=0.0.4; charset=utf-8", Self.metricsText(pools: pools))
        case .notFound:
            return (.notFound, "application/json", ErrorBody.json(code: "not_found", message: "no such load balancer endpoint"))
        case .methodNotAllowed:
            return (.methodNotAllowed, "application/json", ErrorBody.json(code: "method_not_allowed", message: "use GET"))
        }
    }

    // MARK: - Upstreams

    /// `{"pools":[{"name","strategy","panicking","upstreams":[{"id","address","weight","healthy","ejected_until",
    /// "in_flight","requests","failures"}]}]}`; `ejected_until` is an ISO 8601 time or `null`.
    static func upstreamsJSON(pools: [UpstreamPool]) -> String {
        let now = ContinuousClock.now
        let wallNow = Date()
        var json = #"{"pools":["#
        for (poolIndex, pool) in pools.enumerated() {
            if poolIndex > 0 { json += "," }
            let statuses = pool.status()
            json += #"{"name":\#(Self.quoted(pool.name)),"strategy":\#(Self.quoted(pool.settings.strategy.rawValue)),"#
            json += #""panicking":\#(pool.isPanicking),"upstreams":["#
            for (index, status) in statuses.enumerated() {
                if index > 0 { json += "," }
                var ejectedUntil = "null"
                if let until = status.ejectedUntil {
                    let seconds = Double(now.duration(to: until).nanoseconds) / 1_000_000_000
                    ejectedUntil = Self.quoted(wallNow.addingTimeInterval(seconds).formatted(.iso8601))
                }
                json += #"{"id":\#(Self.quoted(status.id)),"address":\#(Self.quoted(status.address.description)),"#
                json += #""weight":\#(status.weight),"healthy":\#(status.isHealthy),"ejected_until":\#(ejectedUntil),"#
                json += #""in_flight":\#(status.inFlight),"requests":\#(status.requests),"failures":\#(status.failures)}"#
            }
            json += "]}"
        }
        json += "]}"
        return json
    }

    // MARK: - Metrics

    /// Prometheus text exposition of the proxy's counters.
    static func metricsText(pools: [UpstreamPool]) -> String {
        let members = pools.map { ($0, $0.memberStats) }
        var text = ""
        text += "# HELP gossamer_lb_requests_total Responses sent to clients, by pool, upstream and status class.\n"
        text += "# TYPE gossamer_lb_requests_total counter\n"
        for (pool, stats) in members {
            for endpoint in stats {
                let labels = "pool=\(Self.label(pool.name)),upstream=\(Self.label(endpoint.id))"
                for (label, count) in endpoint.responsesByClass {
                    text += "gossamer_lb_requests_total{\(labels),code=\"\(label)\"} \(count)\n"
                }
            }
            let none = pool.noUpstreamResponses
            if none > 0 {
                text += "gossamer_lb_requests_total{pool=\(Self.label(pool.name)),upstream=\"\",code=\"5xx\"} \(none)\n"
            }
        }
        text += "# HELP gossamer_lb_upstream_latency_seconds Time from sending a request upstream to its response head.\n"
        text += "# TYPE gossamer_lb_upstream_latency_seconds histogram\n"
        for (pool, stats) in members {
            for endpoint in stats {
                let labels = "pool=\(Self.label(pool.name)),upstream=\(Self.label(endpoint.id))"
                let histogram = endpoint.latencyHistogram
                for (bound, count) in zip(EndpointStats.latencyLabels, histogram.cumulative) {
                    text += "gossamer_lb_upstream_latency_seconds_bucket{\(labels),le=\"\(bound)\"} \(count)\n"
                }
                text += "gossamer_lb_upstream_latency_seconds_bucket{\(labels),le=\"+Inf\"} \(histogram.count)\n"
                text += "gossamer_lb_upstream_latency_seconds_sum{\(labels)} \(histogram.sumSeconds)\n"
                text += "gossamer_lb_upstream_latency_seconds_count{\(labels)} \(histogram.count)\n"
            }
        }
        text += "# HELP gossamer_lb_ejections_total Passive ejections of upstream endpoints.\n"
        text += "# TYPE gossamer_lb_ejections_total counter\n"
        for (pool, stats) in members {
            for endpoint in stats {
                let labels = "pool=\(Self.label(pool.name)),upstream=\(Self.label(endpoint.id))"
                text += "gossamer_lb_ejections_total{\(labels)} \(endpoint.ejections)\n"
            }
        }
        text += "# HELP gossamer_lb_ring_keys_moved_total Of \(UpstreamPool.ringSampleCount) fixed sample keys, "
        text += "how many changed owner, summed over snapshot changes (consistent-hash pools).\n"
        text += "# TYPE gossamer_lb_ring_keys_moved_total counter\n"
        for (pool, _) in members where pool.settings.strategy == .consistentHash {
            text += "gossamer_lb_ring_keys_moved_total{pool=\(Self.label(pool.name))} \(pool.ringKeysMoved)\n"
        }
        return text
    }

    // MARK: - Encoding helpers

    /// A JSON string literal (Foundation's encoder does the escaping; the admin endpoints are not a hot path).
    static func quoted(_ value: String) -> String {
        (try? JSONEncoder().encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "\"\""
    }

    /// A Prometheus label value in quotes.
    static func label(_ value: String) -> String {
        var out = "\""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out + "\""
    }
}

// MARK: - Error bodies

/// The JSON error body every proxy-generated error uses: `{"error":{"code":"…","message":"…"}}`.
enum ErrorBody {
    /// The body for an error code and message.
    static func json(code: String, message: String) -> String {
        #"{"error":{"code":\#(AdminEndpoints.quoted(code)),"message":\#(AdminEndpoints.quoted(message))}}"#
    }
}
