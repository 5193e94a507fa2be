import ConfigCenter
import Foundation
import Logging
import RedisCache
import Synchronization

/// Writes the registry through to Redis so services in any language can read it (docs/api.md, "Redis cache"):
/// a hash per service (`gossamer:svc:<name>`: instance id → instance JSON), the set `gossamer:services`, and a
/// `PUBLISH gossamer:svc:<name>` of every change.
///
/// Each agent writes the instances it owns; the custodian (the alive agent with the smallest name) writes those
/// whose owner is gone and removes what the store no longer has. Writes go through a Lua script that refuses to
/// replace an entry with a newer stamp. Every `refresh` the mirror rewrites everything it is responsible for and
/// renews the hashes' TTL, which also rebuilds the cache after Redis comes back.
public final class RedisMirror: Sendable {
    public struct Settings: Sendable, Equatable {
        /// How often everything is rewritten and the TTLs renewed.
        public var refresh: Duration = .seconds(10)
        /// Hashes expire this long after the last refresh (the owners are gone).
        public var ttl: Duration = .seconds(60)
        /// Retry pace while Redis is unreachable.
        public var retry: Duration = .seconds(1)
        /// The custodian leaves an entry the store does not know alone until it is this old (a registration
        /// can reach Redis before it reaches the custodian).
        public var removalGrace: Duration = .seconds(30)
        public init() {}
    }

    static let servicesKey = "gossamer:services"
    static func hashKey(_ service: String) -> String { "gossamer:svc:\(service)" }

    private let registry: Registry
    private let endpoint: RedisEndpoint
    private let client: RedisClient
    private let settings: Settings
    private let logger: Logger
    private let dirty = Mutex<Set<String>>([])
    private let wake = Watermark()
    /// Per service, the entries this agent wrote, by id: unchanged ones are not rewritten on every change, and
    /// a delete carries the stamp written.
    private let written = Mutex<[String: [String: InstanceView]]>([:])
    private let writes = Atomic<Int>(0)
    private let failures = Atomic<Int>(0)
    private let healthy = Atomic<Bool>(true)
    private let lastError = Mutex<String?>(nil)

    public init(registry: Registry, endpoint: RedisEndpoint, settings: Settings = Settings(), logger: Logger) {
        self.registry = registry
        self.endpoint = endpoint
        self.client = RedisClient(endpoint: endpoint, logger: logger)
        self.settings = settings
        self.logger = logger
        registry.observe { [weak self] service in self?.markDirty(service) }
    }

    /// `ok`, or `degraded: <last error>` while Redis is unreachable.
    public var status: (healthy: Bool, detail: String) {
        self.healthy.load(ordering: .relaxed) ? (true, "ok") : (false, "degraded: \(self.lastError.withLock { $0 } ?? "unreachable")")
    }

    /// Entries written and failed writes so far (for metrics).
    public var counts: (writes: Int, failures: Int) { (self.writes.load(ordering: .relaxed), self.failures.load(ordering: .relaxed)) }

    private func markDirty(_ service: String) {
        self.dirty.withLock { _ = $0.insert(service) }
        self.wake.increment()
    }

    /// Connects (reporting a wrong address or password clearly), then mirrors until cancelled.
    public func run() async {
        do {
            try await self.client.connect()
            self.logger.info("redis cache connected", metadata: ["redis.endpoint": "\(self.endpoint)"])
        } catch {
            self.fail(error)
            self.logger.error(
                "redis cache unavailable; serving from the store and retrying",
                metadata: ["redis.endpoint": "\(self.endpoint)", "redis.error": "\(error)"])
        }
        var nextFullPass = ContinuousClock.now
        var seen: Int64 = 0
        while !Task.isCancelled {
            if ContinuousClock.now >= nextFullPass || !self.healthy.load(ordering: .relaxed) {
                let ok = await self.fullPass()
                nextFullPass = .now + (ok ? self.settings.refresh : self.settings.retry)
            }
            let services = self.dirty.withLock { dirty in
                defer { dirty = [] }
                return dirty
            }
            for service in services.sorted() {
                if !(await self.sync(service)) { self.dirty.withLock { _ = $0.insert(service) } }
            }
            let left = nextFullPass - .now
            if left > .zero { seen = await self.wake.wait(above: seen, timeout: left) } else { seen = self.wake.value }
        }
        await self.client.shutdown()
    }

    /// Checks every service this agent is responsible for (rewriting what Redis lost) and renews the TTLs; the
    /// custodian also removes entries the store no longer has.
    private func fullPass() async -> Bool {
        let services = Set(self.registry.services().map(\.name)).union(self.written.withLock { Set($0.keys) })
        for service in services.sorted() {
            guard await self.sync(service, refresh: true) else { return false }
        }
        guard self.registry.isCustodian else { return true }
        // An entry a fresh registration wrote may reach Redis before it reaches this agent's catalog: only
        // entries older than the grace period are removed.
        let cutoff = "\(wallMillis() - self.settings.removalGrace.wholeMilliseconds).0@"
        do {
            let listed = try await self.client.command("SMEMBERS", Self.servicesKey).array?.compactMap(\.string) ?? []
            for service in listed {
                let live = Set(self.registry.views(service).map(\.id))
                let fields = try await self.client.command("HKEYS", Self.hashKey(service)).array?.compactMap(\.string) ?? []
                for field in fields where !live.contains(field) {
                    try await self.delete(service: service, id: field, stamp: cutoff)
                }
                if fields.isEmpty { _ = try await self.client.command("SREM", Self.servicesKey, service) }
            }
            self.succeed()
            return true
        } catch {
            self.fail(error)
            return false
        }
    }

    /// Writes the entries of one service this agent is responsible for that changed (or, on a refresh, that
    /// Redis lacks), renews the hash's TTL on a refresh, and removes the entries it wrote that are gone from
    /// the store. Returns false when Redis failed.
    private func sync(_ service: String, refresh: Bool = false) async -> Bool {
        let views = self.registry.views(service)
        let custodian = self.registry.isCustodian
        let mine = views.filter { view in
            view.owner == self.registry.node || (!view.ownerAlive && custodian)
        }
        let present = Set(views.map(\.id))
        let previously = self.written.withLock { $0[service] ?? [:] }
        let hash = Self.hashKey(service)
        do {
            var missing: Set<String> = []
            if refresh, !mine.isEmpty {
                // One round trip: which of ours Redis lacks (restarted, flushed, expired), and renew the TTL.
                let replies = try await self.client.pipeline([
                    ["HMGET", hash] + mine.map(\.id), ["EXPIRE", hash, String(self.settings.ttl.components.seconds)],
                ])
                let values = replies.first?.array ?? []
                for (view, value) in zip(mine, values) where value == .null { missing.insert(view.id) }
            }
            var now: [String: InstanceView] = [:]
            for view in mine {
                now[view.id] = view
                if previously[view.id] == view && !missing.contains(view.id) { continue }
                try await self.set(view)
            }
            for (id, view) in previously where !present.contains(id) {
                try await self.delete(service: service, id: id, stamp: view.stamp)
            }
            self.written.withLock { $0[service] = now.isEmpty ? nil : now }
            self.succeed()
            return true
        } catch {
            self.fail(error)
            return false
        }
    }

    private func set(_ view: InstanceView) async throws(RedisError) {
        let json = Self.json(view)
        let message = Self.json(Message(op: "set", service: view.service, id: view.id, instance: view))
        let reply = try await self.client.eval(
            script: Self.setScript, keys: [Self.hashKey(view.service), Self.servicesKey],
            args: [view.id, json, view.stamp, String(self.settings.ttl.components.seconds), view.service, message])
        if case .error(let text) = reply { throw RedisError(.server, text) }
        self.writes.add(1, ordering: .relaxed)
    }

    private func delete(service: String, id: String, stamp: String?) async throws(RedisError) {
        let message = Self.json(Message(op: "delete", service: service, id: id, instance: nil))
        let reply = try await self.client.eval(
            script: Self.deleteScript, keys: [Self.hashKey(service), Self.servicesKey], args: [id, stamp ?? "", service, message])
        if case .error(let text) = reply { throw RedisError(.server, text) }
        self.writes.add(1, ordering: .relaxed)
    }

    private func succeed() {
        if !self.healthy.exchange(true, ordering: .relaxed) {
            // Redis may have restarted empty: the next refresh finds what it lacks and rewrites it.
            self.logger.notice("redis cache is back; rebuilt it from the store", metadata: ["redis.endpoint": "\(self.endpoint)"])
        }
    }

    private func fail(_ error: RedisError) {
        self.failures.add(1, ordering: .relaxed)
        self.lastError.withLock { $0 = error.description }
        if self.healthy.exchange(false, ordering: .relaxed) {
            self.logger.warning("redis cache degraded; serving from the store", metadata: ["redis.error": "\(error)"])
        }
    }

    /// The pub/sub message of a change.
    struct Message: Encodable {
        var op: String
        var service: String
        var id: String
        var instance: InstanceView?
    }

    static func json(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).flatMap { String(data: $0, encoding: .utf8) } ?? "{}"
    }

    /// Lua helper: is stamp text `a` (`wall.counter@node`) newer than `b`?
    private static let newer = """
        local function parse(s)
          local w, c, n = string.match(s or '', '^(%d+)%.(%d+)@(.*)$')
          return tonumber(w) or -1, tonumber(c) or -1, n or ''
        end
        local function newer(a, b)
          local aw, ac, an = parse(a)
          local bw, bc, bn = parse(b)
          if aw ~= bw then return aw > bw end
          if ac ~= bc then return ac > bc end
          return an > bn
        end
        local function stored_stamp(entry)
          local ok, decoded = pcall(cjson.decode, entry)
          if ok and type(decoded) == 'table' then return decoded['stamp'] end
          return nil
        end
        """

    /// KEYS: hash, services set. ARGV: id, json, stamp, ttl seconds, service, message.
    /// Refuses to replace a newer entry; publishes only when the entry changed.
    static let setScript = newer + """

        local current = redis.call('HGET', KEYS[1], ARGV[1])
        if current then
          local stamp = stored_stamp(current)
          if stamp and newer(stamp, ARGV[3]) then return 0 end
        end
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
        redis.call('SADD', KEYS[2], ARGV[5])
        if current ~= ARGV[2] then redis.call('PUBLISH', KEYS[1], ARGV[6]) end
        return 1
        """

    /// KEYS: hash, services set. ARGV: id, stamp ('' = unconditional), service, message.
    /// Keeps an entry newer than the delete (re-registered elsewhere since).
    static let deleteScript = newer + """

        local current = redis.call('HGET', KEYS[1], ARGV[1])
        if not current then return 0 end
        if ARGV[2] ~= '' then
          local stamp = stored_stamp(current)
          if stamp and newer(stamp, ARGV[2]) then return 0 end
        end
        redis.call('HDEL', KEYS[1], ARGV[1])
        if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[3]) end
        redis.call('PUBLISH', KEYS[1], ARGV[4])
        return 1
        """
}
