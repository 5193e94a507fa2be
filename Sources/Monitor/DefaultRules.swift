// MARK: - Default rules

/// The rules every agent starts with, as data: operators can read them back, override them by name, or delete them.
///
/// Each reads a metric the agent exports (the exporters are wired separately) and is written so that a metric nobody
/// exports yet (Redis not configured, no registered service) means no alert: every rule uses `no_data: ok`.
public enum DefaultRules {
    /// A member the local agent's gossip view declares dead: `gossamer_members{state="dead"} > 0`, at once, critical.
    /// Every agent sees the same dead member and produces the same labels, so Alertmanager deduplicates them.
    public static let memberDead = AlertRule(
        name: "member-dead",
        metric: "gossamer_members",
        match: ["state": "dead"],
        aggregate: .max,
        op: .greaterThan,
        threshold: 0,
        severity: .critical,
        annotations: [
            "summary": "{{ $value }} cluster member(s) dead",
            "description": "Gossip declared members dead; they are removed from the cluster after the reap timeout.",
        ]
    )

    /// This agent's Lifeguard local-health score above zero for a minute: it is missing acks, so its own probing
    /// is stretched; usually an overloaded node or a lossy network.
    public static let localHealthDegraded = AlertRule(
        name: "local-health-degraded",
        metric: "gossamer_gossip_local_health",
        op: .greaterThan,
        threshold: 0,
        for: .seconds(60),
        severity: .warning,
        annotations: ["summary": "gossip local health score is {{ $value }} (0 is healthy)"]
    )

    /// A disk over 90% full for 5 minutes, per mount point; it resolves only once it falls to 85% (no flapping).
    public static let diskFull = AlertRule(
        name: "disk-full",
        metric: "gossamer_disk_used_ratio",
        op: .greaterThan,
        threshold: 0.9,
        recover: 0.85,
        for: .seconds(300),
        severity: .critical,
        annotations: ["summary": "disk {{ $labels.mount }} is {{ $value }} full"]
    )

    /// The slowest peer more than 30 s behind in replication for 2 minutes.
    public static let replicationLagHigh = AlertRule(
        name: "replication-lag-high",
        metric: "gossamer_replication_lag_seconds",
        aggregate: .max,
        op: .greaterThan,
        threshold: 30,
        for: .seconds(120),
        severity: .warning,
        annotations: ["summary": "replication lag is {{ $value }}s"]
    )

    /// Anti-entropy finds peers whose keyspace differs from ours for 5 minutes: divergence is not healing.
    public static let divergencePersists = AlertRule(
        name: "divergence-persists",
        metric: "gossamer_consistency_divergent_peers",
        op: .greaterThan,
        threshold: 0,
        for: .seconds(300),
        severity: .critical,
        annotations: ["summary": "{{ $value }} peer(s) divergent for 5 minutes; see GET /v1/consistency"]
    )

    /// The Redis cache unreachable for a minute. Redis is only a cache (the agent serves from its own store), hence a
    /// warning. Without Redis configured the gauge is not exported and the rule stays quiet.
    public static let redisCacheDown = AlertRule(
        name: "redis-cache-down",
        metric: "gossamer_redis_cache_up",
        op: .equal,
        threshold: 0,
        for: .seconds(60),
        severity: .warning,
        annotations: ["summary": "Redis cache unreachable; lookups are served from the local store"]
    )

    /// A registered service with no passing instance for a minute, one alert per service.
    ///
    /// Formulation: `gossamer_registry_instances{status="passing"} < 1`, aggregate none. It relies on the exporter
    /// setting the `{service, status="passing"}` gauge for every registered service, to 0 when none passes, rather than
    /// leaving it out; and destroying the service's series once it has no instances at all, so a removed service
    /// resolves through `no_data: ok` instead of alerting forever. `< 1` rather than `== 0` so a fractional or negative
    /// glitch cannot hide it. The minute rides out rolling deploys.
    public static let serviceNoPassingInstances = AlertRule(
        name: "service-no-passing-instances",
        metric: "gossamer_registry_instances",
        match: ["status": "passing"],
        op: .lessThan,
        threshold: 1,
        for: .seconds(60),
        severity: .critical,
        annotations: ["summary": "service {{ $labels.service }} has no passing instance"]
    )

    /// All default rules, in this order.
    public static let all: [AlertRule] = [
        memberDead, localHealthDegraded, diskFull, replicationLagHigh, divergencePersists, redisCacheDown,
        serviceNoPassingInstances,
    ]
}
