import Foundation
import Testing

@testable import Registry

/// Validation of registrations: every bad field is refused with its name, good ones get their defaults.
@Suite struct RegistrationTests {
    private func validate(_ json: String, service: String = "payments", id: String = "p-1") throws(RegistrationError) -> ServiceInstance {
        let request: RegistrationRequest
        do {
            request = try JSONDecoder().decode(RegistrationRequest.self, from: Data(json.utf8))
        } catch {
            throw RegistrationError(field: "json", "\(error)")
        }
        return try request.validated(service: service, id: id, owner: "n1", now: 1000)
    }

    private func field(_ json: String, service: String = "payments", id: String = "p-1") -> String? {
        do {
            _ = try self.validate(json, service: service, id: id)
            return nil
        } catch {
            return error.field
        }
    }

    @Test func test_validated_minimalRegistration_getsDefaults() throws {
        let instance = try self.validate(#"{"address":"10.0.0.1","port":8080}"#)
        #expect(instance.weight == 100 && instance.tags.isEmpty && instance.meta.isEmpty && instance.zone == nil)
        #expect(instance.initialStatus == .passing, "no checks: passing at once")
        #expect(instance.owner == "n1" && instance.registeredAt == 1000 && instance.deregisterCriticalAfterMillis == nil)
    }

    @Test func test_validated_checks_defaultIDsIntervalsAndCriticalStart() throws {
        let instance = try self.validate(
            #"{"address":"h","port":1,"checks":[{"type":"http","url":"http://h:1/health"},{"type":"tcp","tcp":"h:1","interval":"5s","failures_before_critical":3},{"type":"tcp","tcp":"h:2"},{"type":"ttl","ttl":"30s","id":"beat"}]}"#)
        #expect(instance.checks.map(\.id) == ["p-1:http", "p-1:tcp", "p-1:tcp:2", "beat"])
        #expect(instance.checks[0].intervalMillis == 10_000 && instance.checks[0].timeoutMillis == 2_000)
        #expect(instance.checks[1].intervalMillis == 5_000 && instance.checks[1].failuresBeforeCritical == 3)
        #expect(instance.checks[3].ttlMillis == 30_000)
        #expect(instance.initialStatus == .critical, "with checks: critical until the first passes")
    }

    @Test func test_validated_badFields_nameTheField() {
        #expect(self.field(#"{"port":80}"#) == "address")
        #expect(self.field(#"{"address":"h"}"#) == "port")
        #expect(self.field(#"{"address":"h","port":0}"#) == "port")
        #expect(self.field(#"{"address":"h","port":65536}"#) == "port")
        #expect(self.field(#"{"address":"h","port":1,"weight":0}"#) == "weight")
        #expect(self.field(#"{"address":"h","port":1,"weight":1001}"#) == "weight")
        #expect(self.field(#"{"address":"h","port":1,"checks":[{"type":"grpc"}]}"#) == "checks[0].type")
        #expect(self.field(#"{"address":"h","port":1,"checks":[{"type":"http"}]}"#) == "checks[0].url")
        #expect(self.field(#"{"address":"h","port":1,"checks":[{"type":"tcp","tcp":"nohost"}]}"#) == "checks[0].tcp")
        #expect(self.field(#"{"address":"h","port":1,"checks":[{"type":"ttl"}]}"#) == "checks[0].ttl")
        #expect(self.field(#"{"address":"h","port":1,"checks":[{"type":"ttl","ttl":"soon"}]}"#) == "checks[0].ttl")
        #expect(self.field(#"{"address":"h","port":1,"status":"maintenance"}"#) == "status")
        #expect(self.field(#"{"address":"h","port":1,"deregister_critical_after":"30s"}"#) == "deregister_critical_after")
        #expect(self.field(#"{"address":"h","port":1}"#, service: "Bad Name") == "name")
        #expect(self.field(#"{"address":"h","port":1}"#, id: "-x") == "id")
    }

    @Test func test_validated_oversizedMetadata_refused() {
        let big = String(repeating: "x", count: 600)
        #expect(self.field(#"{"address":"h","port":1,"meta":{"k":"\#(big)"}}"#) == "meta.k")
        let many = (0..<20).map { #""k\#($0)":"\#(String(repeating: "y", count: 500))""# }.joined(separator: ",")
        #expect(self.field(#"{"address":"h","port":1,"meta":{\#(many)}}"#) == "meta")
    }

    @Test func test_validated_deregisterCriticalAfter_atLeastTheMinimum() throws {
        let instance = try self.validate(#"{"address":"h","port":1,"deregister_critical_after":"10m"}"#)
        #expect(instance.deregisterCriticalAfterMillis == 600_000)
        let request = try JSONDecoder().decode(RegistrationRequest.self, from: Data(#"{"address":"h","port":1,"deregister_critical_after":2}"#.utf8))
        let lowered = try request.validated(service: "s", id: "i", owner: "n1", now: 0, minimumDeregisterAfter: .seconds(1))
        #expect(lowered.deregisterCriticalAfterMillis == 2_000, "a number is seconds")
    }
}

/// The anti-flap counts of a check (pure).
@Suite struct CheckTrackerTests {
    private func tracker(successes: Int, failures: Int, initial: HealthStatus = .critical) -> CheckTracker {
        CheckTracker(
            definition: CheckDefinition(id: "c", kind: .tcp, tcp: "h:1", successBeforePassing: successes, failuresBeforeCritical: failures),
            initial: initial)
    }

    /// Feeds results in order; returns the reported status after each.
    private func statuses(_ tracker: inout CheckTracker, _ results: [HealthStatus], force: Bool = false) -> [HealthStatus] {
        results.map { result in
            _ = force ? tracker.force(result, output: "forced") : tracker.record(result, output: "\(result.rawValue) result")
            return tracker.status
        }
    }

    @Test func test_record_successBeforePassing_needsThatManyInARow() {
        var tracker = self.tracker(successes: 3, failures: 1)
        #expect(self.statuses(&tracker, [.passing, .passing, .passing]) == [.critical, .critical, .passing])
    }

    @Test func test_record_failureResetsTheSuccessCount() {
        var tracker = self.tracker(successes: 2, failures: 1)
        #expect(self.statuses(&tracker, [.passing, .critical, .passing, .passing]) == [.critical, .critical, .critical, .passing])
    }

    @Test func test_record_failuresBeforeCritical_toleratesBlips() {
        var tracker = self.tracker(successes: 1, failures: 3, initial: .passing)
        let seen = self.statuses(&tracker, [.critical, .critical, .passing, .critical, .critical, .critical])
        #expect(seen == [.passing, .passing, .passing, .passing, .passing, .critical], "a success resets the failure count")
        #expect(tracker.output == "critical result")
    }

    @Test func test_record_changeIsReportedOnce() {
        var tracker = self.tracker(successes: 1, failures: 1)
        let first = tracker.record(.passing, output: "ok")
        let second = tracker.record(.passing, output: "ok")
        #expect(first && !second)
    }

    @Test func test_force_appliesAtOnce() {
        var tracker = self.tracker(successes: 5, failures: 5)
        #expect(self.statuses(&tracker, [.passing, .warning], force: true) == [.passing, .warning])
    }

    @Test func test_aggregateStatus_isTheWorst() {
        #expect(aggregateStatus([HealthStatus.passing, .warning]) == .warning)
        #expect(aggregateStatus([HealthStatus.passing, .critical, .warning]) == .critical)
        #expect(aggregateStatus([HealthStatus]()) == .passing)
    }
}
