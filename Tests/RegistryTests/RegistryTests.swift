import ConfigCenter
import Foundation
import Synchronization
import Testing

@testable import Registry

/// A membership the test sets by hand.
final class TestMembership: RegistryMembership {
    let state: Mutex<[AgentInfo]>
    init(_ agents: [AgentInfo]) { self.state = Mutex(agents) }
    func agents() -> [AgentInfo] { self.state.withLock { $0 } }
    func set(_ name: String, alive: Bool? = nil, draining: Bool? = nil) {
        self.state.withLock { agents in
            guard let index = agents.firstIndex(where: { $0.name == name }) else { return }
            if let alive { agents[index].alive = alive }
            if let draining { agents[index].draining = draining }
        }
    }
}

/// Probe results the test scripts, per check id (the last result repeats).
final class ScriptedProber: CheckProber {
    let script = Mutex<[String: [HealthStatus]]>([:])
    func set(_ id: String, _ results: [HealthStatus]) { self.script.withLock { $0[id] = results } }
    func probe(_ check: CheckDefinition) async -> (HealthStatus, String) {
        let status = self.script.withLock { script -> HealthStatus in
            guard var results = script[check.id], let first = results.first else { return .critical }
            if results.count > 1 { results.removeFirst() }
            script[check.id] = results
            return first
        }
        return (status, "scripted \(status.rawValue)")
    }
}

/// A registry over a real SQLite store in a temp dir.
struct RegistryFixture {
    let directory: URL
    let store: ConfigStore
    let registry: Registry
    let membership: TestMembership
    let prober: ScriptedProber

    init(node: String = "n1", agents: [String] = ["n1", "n2"]) throws {
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("gossamer-registry-\(UUID().uuidString)")
        var settings = ConfigSettings()
        settings.nodeName = node
        self.store = try ConfigStore(directory: self.directory, settings: settings)
        self.membership = TestMembership(agents.map { AgentInfo(name: $0, alive: true, http: "127.0.0.1:1") })
        self.prober = ScriptedProber()
        var registrySettings = RegistrySettings()
        registrySettings.minimumDeregisterAfter = .seconds(1)
        self.registry = Registry(store: self.store, membership: self.membership, settings: registrySettings, prober: self.prober)
    }

    func cleanup() { try? FileManager.default.removeItem(at: self.directory) }

    func request(_ json: String) throws -> RegistrationRequest {
        try JSONDecoder().decode(RegistrationRequest.self, from: Data(json.utf8))
    }

    /// Runs the registry while `body` runs.
    func running(_ body: () async throws -> Void) async throws {
        let task = Task { await self.registry.run() }
        defer { task.cancel() }
        try await self.eventually("catalog loaded") { self.registry.isLoaded }
        try await body()
    }

    /// Polls until `condition` holds or 5 s pass.
    func eventually(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while !condition() {
            guard ContinuousClock.now < deadline else {
                Issue.record("timed out waiting for: \(what)")
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

@Suite struct RegistryTests {
    @Test func test_register_thenLookup_returnsPassingInstanceWithOwner() async throws {
        let fixture = try RegistryFixture()
        defer { fixture.cleanup() }
        let view = try await fixture.registry.register(
            service: "payments", id: "p-1", request: try fixture.request(#"{"address":"10.0.0.1","port":8080,"tags":["v2"],"zone":"a"}"#))
        #expect(view.status == .passing && view.owner == "n1" && view.ownerAlive)
        let lookup = fixture.registry.lookup("payments", filter: LookupFilter(passingOnly: true, tags: ["v2"], zone: "a"))
        #expect(lookup.instances.map(\.id) == ["p-1"])
        #expect(fixture.registry.lookup("payments", filter: LookupFilter(tags: ["v1"])).instances.isEmpty)
        #expect(fixture.registry.lookup("payments", filter: LookupFilter(zone: "b")).instances.isEmpty)
        #expect(fixture.registry.services() == [ServiceSummary(name: "payments", instances: 1, passing: 1, protectThreshold: 0)])
        // The records are in the store, where replication carries them.
        #expect(try await fixture.store.current("_gossamer/registry/instances/payments/p-1") != nil)
    }

    @Test func test_lookup_ownerNotAlive_instanceCritical() async throws {
        let fixture = try RegistryFixture(node: "n1")
        defer { fixture.cleanup() }
        _ = try await fixture.registry.register(service: "s", id: "i", request: try fixture.request(#"{"address":"h","port":1}"#))
        // The record says n2 owns it (as if registered there and replicated here).
        var stored = try #require(fixture.registry.catalog.records().first?.instance.value)
        stored.owner = "n2"
        _ = try await fixture.store.put("_gossamer/registry/instances/s/i", value: try Registry.encode(stored), contentType: "json")
        _ = fixture.registry.catalog.apply(try #require(try await fixture.store.current("_gossamer/registry/instances/s/i")))
        #expect(fixture.registry.instance("s", "i")?.status == .passing)
        // When
        fixture.membership.set("n2", alive: false)
        // Then
        let view = try #require(fixture.registry.instance("s", "i"))
        #expect(view.status == .critical && !view.ownerAlive)
        #expect(view.checks.isEmpty)
        #expect(fixture.registry.lookup("s", filter: LookupFilter(passingOnly: true)).instances.isEmpty)
    }

    @Test func test_maintenanceAndDrain_takeInstanceOutOfRotation() async throws {
        let fixture = try RegistryFixture()
        defer { fixture.cleanup() }
        _ = try await fixture.registry.register(service: "s", id: "i", request: try fixture.request(#"{"address":"h","port":1}"#))
        let inMaintenance = try await fixture.registry.setMaintenance(service: "s", id: "i", enable: true, reason: "upgrade")
        #expect(inMaintenance.status == .maintenance && inMaintenance.maintenanceReason == "upgrade")
        #expect(fixture.registry.lookup("s", filter: LookupFilter(passingOnly: true)).instances.isEmpty)
        let back = try await fixture.registry.setMaintenance(service: "s", id: "i", enable: false, reason: nil)
        #expect(back.status == .passing)
        fixture.membership.set("n1", draining: true)
        #expect(fixture.registry.instance("s", "i")?.status == .maintenance)
        await #expect(throws: RegistryError.self) {
            _ = try await fixture.registry.setMaintenance(service: "s", id: "missing", enable: true, reason: nil)
        }
    }

    @Test func test_protectThreshold_belowIt_passingLookupReturnsEveryInstance() async throws {
        let fixture = try RegistryFixture()
        defer { fixture.cleanup() }
        for id in ["a", "b", "c", "d"] {
            let status = id == "a" ? "passing" : "critical"
            _ = try await fixture.registry.register(
                service: "s", id: id, request: try fixture.request(#"{"address":"h","port":1,"status":"\#(status)","checks":[{"type":"ttl","ttl":"1h"}]}"#))
        }
        #expect(fixture.registry.lookup("s", filter: LookupFilter(passingOnly: true)).instances.map(\.id) == ["a"], "no threshold: only passing")
        _ = try await fixture.registry.setSettings("s", ServiceSettings(protectThreshold: 0.5))
        let protected = fixture.registry.lookup("s", filter: LookupFilter(passingOnly: true))
        #expect(protected.protected && protected.instances.count == 4, "25% passing < 50%: every instance, with health")
        #expect(protected.instances.filter { $0.status == .passing }.map(\.id) == ["a"])
        await #expect(throws: RegistryError.self) { _ = try await fixture.registry.setSettings("s", ServiceSettings(protectThreshold: 1.5)) }
    }

    @Test func test_blockingLookup_wakesOnChangeAndTimesOutOtherwise() async throws {
        let fixture = try RegistryFixture()
        defer { fixture.cleanup() }
        try await fixture.running {
            _ = try await fixture.registry.register(service: "s", id: "a", request: try fixture.request(#"{"address":"h","port":1}"#))
            let index = fixture.registry.index(of: "s")
            let started = ContinuousClock.now
            await fixture.registry.waitForChange("s", above: index, timeout: .milliseconds(300))
            let idle = fixture.registry.lookup("s", filter: LookupFilter())
            #expect(idle.index == index && ContinuousClock.now - started >= .milliseconds(280), "nothing changed: waits the whole timeout")
            async let woken: Void = fixture.registry.waitForChange("s", above: index, timeout: .seconds(10))
            try await Task.sleep(for: .milliseconds(100))
            _ = try await fixture.registry.register(service: "s", id: "b", request: try fixture.request(#"{"address":"h","port":2}"#))
            await woken
            let answer = fixture.registry.lookup("s", filter: LookupFilter())
            #expect(answer.index > index && answer.instances.map(\.id) == ["a", "b"])
            #expect(ContinuousClock.now - started < .seconds(5))
        }
    }

    @Test func test_checks_antiFlapCountsRespected_andHealthWrittenToStore() async throws {
        let fixture = try RegistryFixture()
        defer { fixture.cleanup() }
        fixture.prober.set("i:tcp", [.passing, .passing, .critical, .passing, .critical, .critical])
        try await fixture.running {
            _ = try await fixture.registry.register(
                service: "s", id: "i",
                request: try fixture.request(
                    #"{"address":"h","port":1,"checks":[{"type":"tcp","tcp":"h:1","interval":"100ms","success_before_passing":2,"failures_before_critical":2}]}"#))
            #expect(fixture.registry.instance("s", "i")?.status == .critical, "critical until the first check passes")
            try await fixture.eventually("passing after two successes") { fixture.registry.instance("s", "i")?.status == .passing }
            // One failure between successes is a blip; two in a row turn it critical.
            try await fixture.eventually("critical after two failures in a row") { fixture.registry.instance("s", "i")?.status == .critical }
            let history = try await fixture.store.history("_gossamer/registry/health/s/i", limit: 20)
            let statuses = try history.reversed().map { try JSONDecoder().decode(InstanceHealth.self, from: $0.value).status }
            #expect(statuses == [.critical, .passing, .critical], "one write per transition, none for the blip: \(statuses)")
        }
    }

    @Test func test_ttlCheck_reportsAndExpiry() async throws {
        let fixture = try RegistryFixture()
        defer { fixture.cleanup() }
        try await fixture.running {
            _ = try await fixture.registry.register(
                service: "s", id: "i", request: try fixture.request(#"{"address":"h","port":1,"checks":[{"type":"ttl","ttl":"400ms"}]}"#))
            try await fixture.eventually("check running") { fixture.registry.runner.isRunning("s/i") }
            let reported = try await fixture.registry.report(check: "i:ttl", status: .passing, note: "all good")
            #expect(reported.status == .passing && reported.output == "all good")
            try await fixture.eventually("passing") { fixture.registry.instance("s", "i")?.status == .passing }
            try await fixture.eventually("critical once the TTL runs out") { fixture.registry.instance("s", "i")?.status == .critical }
            #expect(fixture.registry.instance("s", "i")?.checks.first?.output.contains("expired") == true)
            await #expect(throws: RegistryError.notFound("no check 'nope' is registered")) {
                _ = try await fixture.registry.report(check: "nope", status: .passing, note: nil)
            }
        }
    }

    @Test func test_reaper_removesCriticalInstanceOnce_byOwnerOrCustodian() async throws {
        let fixture = try RegistryFixture(node: "n1", agents: ["n1", "n2", "n3"])
        defer { fixture.cleanup() }
        // An instance owned by n3, critical since registration, removable after 1 s.
        let request = try fixture.request(#"{"address":"h","port":1,"deregister_critical_after":"1s"}"#)
        var instance = try request.validated(service: "s", id: "i", owner: "n3", now: 1000, minimumDeregisterAfter: .seconds(1))
        instance.initialStatus = .critical
        _ = try await fixture.store.put("_gossamer/registry/instances/s/i", value: try Registry.encode(instance), contentType: "json")
        fixture.registry.catalog.load(try await fixture.store.list(prefix: RegistryKeys.root))
        let now = wallMillis()
        // The owner is alive: it alone removes it, so n1 does nothing.
        await fixture.registry.reaper.pass(fixture.registry.catalog, now: now)
        await fixture.registry.reaper.pass(fixture.registry.catalog, now: now + 5_000)
        #expect(fixture.registry.reaper.removed == 0)
        // The owner dies: n1 (smallest alive name) is custodian; the clock starts when it saw the owner gone.
        fixture.membership.set("n3", alive: false)
        fixture.registry.catalog.refreshAgents()
        await fixture.registry.reaper.pass(fixture.registry.catalog, now: now)
        #expect(fixture.registry.reaper.removed == 0, "not yet critical for 1 s")
        await fixture.registry.reaper.pass(fixture.registry.catalog, now: now + 1_500)
        #expect(fixture.registry.reaper.removed == 1)
        fixture.registry.catalog.load(try await fixture.store.list(prefix: RegistryKeys.root))
        await fixture.registry.reaper.pass(fixture.registry.catalog, now: now + 3_000)
        #expect(fixture.registry.reaper.removed == 1, "removed exactly once")
        let history = try await fixture.store.history("_gossamer/registry/instances/s/i", limit: 10)
        #expect(history.filter(\.tombstone).count == 1)
    }

    @Test func test_reaper_notCustodian_doesNothing() async throws {
        let fixture = try RegistryFixture(node: "n2", agents: ["n1", "n2", "n3"])
        defer { fixture.cleanup() }
        let request = try fixture.request(#"{"address":"h","port":1,"deregister_critical_after":"1s"}"#)
        let instance = try request.validated(service: "s", id: "i", owner: "n3", now: 1000, minimumDeregisterAfter: .seconds(1))
        _ = try await fixture.store.put("_gossamer/registry/instances/s/i", value: try Registry.encode(instance), contentType: "json")
        fixture.registry.catalog.load(try await fixture.store.list(prefix: RegistryKeys.root))
        fixture.membership.set("n3", alive: false)
        fixture.registry.catalog.refreshAgents()
        let now = wallMillis()
        await fixture.registry.reaper.pass(fixture.registry.catalog, now: now)
        await fixture.registry.reaper.pass(fixture.registry.catalog, now: now + 10_000)
        #expect(fixture.registry.reaper.removed == 0, "n1 is the custodian, not n2")
    }

    @Test func test_deregister_removesBothRecords() async throws {
        let fixture = try RegistryFixture()
        defer { fixture.cleanup() }
        _ = try await fixture.registry.register(service: "s", id: "i", request: try fixture.request(#"{"address":"h","port":1}"#))
        #expect(try await fixture.registry.deregister(service: "s", id: "i"))
        #expect(fixture.registry.instance("s", "i") == nil)
        #expect(try await fixture.registry.deregister(service: "s", id: "i") == false)
        #expect(try await fixture.store.current("_gossamer/registry/health/s/i")?.tombstone == true)
        #expect(fixture.registry.services().isEmpty)
    }

    @Test func test_register_checkIDUsedByAnotherInstance_refused() async throws {
        let fixture = try RegistryFixture()
        defer { fixture.cleanup() }
        _ = try await fixture.registry.register(
            service: "s", id: "a", request: try fixture.request(#"{"address":"h","port":1,"checks":[{"type":"ttl","ttl":"1m","id":"beat"}]}"#))
        await #expect(throws: RegistryError.self) {
            _ = try await fixture.registry.register(
                service: "t", id: "b", request: try fixture.request(#"{"address":"h","port":1,"checks":[{"type":"ttl","ttl":"1m","id":"beat"}]}"#))
        }
        #expect(fixture.registry.instance("t", "b") == nil, "nothing stored")
    }
}
