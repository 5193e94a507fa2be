import ConfigCenter
import Hummingbird

/// `?replicas=K|all&timeout=…` on writes: answer only once K agents hold the write (DESIGN decision 4's
/// "synchronous / semi-synchronous replication"). 1, the default, answers as soon as this agent committed.
struct WriteConcern: Sendable {
    /// Agents that must hold the write, this one included; nil: every live member.
    var replicas: Int?
    var timeout: Duration?

    static let parameters = ["replicas", "timeout"]

    /// The concern the query asks for; nil when it asks for none beyond this agent.
    static func parse(_ flags: QueryFlags) throws(APIError) -> WriteConcern? {
        var concern = WriteConcern()
        if let text = flags["timeout"] {
            guard let timeout = DurationText.parse(text), timeout > .zero, timeout <= .seconds(120) else {
                throw APIError.badRequest("timeout must be a duration up to 2m such as 500ms or 5s, not '\(text)'")
            }
            concern.timeout = timeout
        }
        switch flags["replicas"] {
        case nil:
            if flags.has("timeout") { throw APIError.badRequest("'timeout' needs 'replicas' (the number of agents that must hold the write)") }
            return nil
        case "all":
            concern.replicas = nil
        case let text?:
            guard let count = Int(text), count >= 1, count <= 1000 else {
                throw APIError.badRequest("replicas must be a number of agents from 1 to 1000 or 'all', not '\(text)'")
            }
            if count == 1 { return nil }
            concern.replicas = count
        }
        return concern
    }

    /// Waits for the write that produced local `revision`; throws 504 naming how many agents hold it.
    func enforce(revision: Int64, replicator: Replicator?) async throws(APIError) {
        guard let replicator else {
            let required = self.replicas ?? 1
            guard required > 1 else { return }
            throw Self.timeoutError(acknowledged: 1, required: required, extra: "this agent runs without a cluster (no gossip address)")
        }
        let result = await replicator.awaitReplicas(self.replicas, revision: revision, timeout: self.timeout)
        guard result.satisfied else {
            throw Self.timeoutError(
                acknowledged: result.acknowledged, required: result.required,
                extra: "waited \(DurationText.format(self.timeout ?? replicator.settings.writeConcernTimeout))")
        }
    }

    private static func timeoutError(acknowledged: Int, required: Int, extra: String) -> APIError {
        APIError(
            .gatewayTimeout, code: "replication_timeout",
            "the write is stored on \(acknowledged) of the \(required) agents required (\(extra)); it is applied here and keeps replicating",
            details: ["acknowledged": .int(acknowledged), "required": .int(required)])
    }
}
