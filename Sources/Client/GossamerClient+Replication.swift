import Foundation
import NIOCore

/// Replication and consistency calls: the cluster-wide consistency view, on-demand checks, conflicts,
/// which version each agent holds, and write concerns (`?replicas=K|all&timeout=…`) on writes.
extension GossamerClient {
    /// How many agents must hold a write before the agent answers (`?replicas=`), and how long it waits (`?timeout=`).
    public struct WriteConcern: Sendable, Equatable {
        /// A number of agents (this one included) from 1 to 1000, or nil for every live agent (`all`).
        public var replicas: Int?
        /// How long the agent waits for them; nil: the agent's default (5s).
        public var timeout: Duration?

        /// Checks `--replicas K|all` and a timeout already parsed (the CLI uses the agent's own `DurationText`);
        /// the error says what is accepted.
        public init(replicas: String, timeout: Duration?) throws {
            switch replicas.lowercased() {
            case "all": self.replicas = nil
            default:
                guard let count = Int(replicas), (1...1000).contains(count) else {
                    throw ClientError("replicas must be a number of agents from 1 to 1000 or 'all', not '\(replicas)'")
                }
                self.replicas = count
            }
            if let timeout {
                guard timeout > .zero, timeout <= .seconds(120) else {
                    throw ClientError("timeout must be a duration up to 2m such as 500ms, 5s or 1m30s")
                }
                self.timeout = timeout
            }
        }

        /// The query parameters a write takes.
        public var query: [(String, String?)] {
            var query: [(String, String?)] = [("replicas", self.replicas.map(String.init) ?? "all")]
            if let timeout = self.timeout { query.append(("timeout", "\(Self.millis(timeout))ms")) }
            return query
        }

        /// How long the HTTP request may take: the agent waits up to `timeout` (default 5s) for the replicas
        /// after committing, so allow that on top of the usual limit.
        public var requestTimeout: TimeAmount {
            .milliseconds(30_000 + Self.millis(self.timeout ?? .seconds(5)))
        }

        private static func millis(_ duration: Duration) -> Int64 {
            duration.components.seconds * 1000 + (duration.components.attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        }
    }

    /// `GET /v1/consistency`: does every live agent hold the same keyspace, and each peer's replication state.
    public func consistency() async throws -> Reply {
        try await self.send(.GET, "/v1/consistency")
    }

    /// `POST /v1/consistency/check`: compares this agent's keyspace with one peer's (or every live peer's) now;
    /// with `repair`, copies the newer versions each side lacks.
    public func checkConsistency(peer: String? = nil, repair: Bool = false) async throws -> Reply {
        var query: [(String, String?)] = []
        if let peer { query.append(("peer", peer)) }
        if repair { query.append(("repair", "true")) }
        // A check lists and compares whole keyspaces with every peer; allow more than a plain request.
        return try await self.send(.POST, "/v1/consistency/check", query: query, timeout: .seconds(120))
    }

    /// `GET /v1/conflicts`: versions that were written concurrently on different agents and lost (kept in history).
    public func conflicts(prefix: String = "", limit: Int? = nil) async throws -> Reply {
        var query: [(String, String?)] = []
        if !prefix.isEmpty { query.append(("prefix", prefix)) }
        if let limit { query.append(("limit", "\(limit)")) }
        return try await self.send(.GET, "/v1/conflicts", query: query)
    }

    /// `GET /v1/kv/<key>?holders`: which version of the key each live agent holds.
    public func holders(_ key: String) async throws -> Reply {
        let path = "/v1/kv/" + key.split(separator: "/", omittingEmptySubsequences: false).map { Self.escape(String($0)) }.joined(separator: "/")
        return try await self.send(.GET, path, query: [("holders", nil)])
    }
}

extension GossamerClient.Reply {
    /// The `error.code` of an API error body (`not_found`, `no_route`, `replication_timeout`, …).
    public var errorCode: String? {
        guard let object = try? JSONSerialization.jsonObject(with: self.body) as? [String: Any],
            let error = object["error"] as? [String: Any]
        else { return nil }
        return error["code"] as? String
    }

    /// A write whose write concern was not met in time (504 `replication_timeout`): applied on the agent and
    /// still replicating, but held by fewer agents than asked.
    public struct ReplicationTimeout: Sendable, Equatable {
        public var message: String
        public var acknowledged: Int?
        public var required: Int?
    }

    /// The replication timeout this reply reports, if it is one.
    public var replicationTimeout: ReplicationTimeout? {
        guard self.status == 504,
            let object = try? JSONSerialization.jsonObject(with: self.body) as? [String: Any],
            let error = object["error"] as? [String: Any], error["code"] as? String == "replication_timeout"
        else { return nil }
        return ReplicationTimeout(
            message: error["message"] as? String ?? self.errorMessage,
            acknowledged: (error["acknowledged"] as? NSNumber)?.intValue, required: (error["required"] as? NSNumber)?.intValue)
    }
}
