import LoadBalancer
import Testing

@Suite struct BalancerTests {
    @Test func test_balancer_noEndpoints_returnsNil() {
        // Given
        let balancer = Balancer(settings: Settings())

        // When / Then
        #expect(balancer.pick() == nil)
    }

    @Test func test_balancer_update_swapsTheSnapshot() {
        // Given
        let balancer = Balancer(settings: Settings(), endpoints: makeEndpoints(2))

        // When
        balancer.update(endpoints: makeEndpoints(3, prefix: "other"))
        let ids = Set((0..<30).compactMap { _ in balancer.pick()?.endpoint.id })

        // Then
        #expect(ids == ["other-0", "other-1", "other-2"])
    }

    @Test func test_balancer_inFlightCounters_surviveSnapshotSwaps() {
        // Given
        var settings = Settings()
        settings.strategy = .leastRequest
        let balancer = Balancer(settings: settings, endpoints: makeEndpoints(3))
        let first = balancer.snapshot
        first.inFlight[0].increment()

        // When: the pool changes order and grows.
        balancer.update(endpoints: makeEndpoints(4).reversed())
        let second = balancer.snapshot

        // Then
        #expect(second.inFlight[3] === first.inFlight[0])
        #expect(second.inFlight[3].current == 1)
        #expect(balancer.counters.total == 1)
        first.inFlight[0].decrement()
        #expect(balancer.counters.total == 0)
    }

    @Test func test_balancer_leastRequest_followsInFlightCounts() {
        // Given
        var settings = Settings()
        settings.strategy = .leastRequest
        let balancer = Balancer(settings: settings, endpoints: makeEndpoints(3))

        // When: each pick keeps its request open.
        let picks = (0..<9).compactMap { _ -> String? in
            guard let pick = balancer.pick() else { return nil }
            pick.counter.increment()
            return pick.endpoint.id
        }

        // Then: the load stays level.
        #expect(balancer.snapshot.inFlight.map(\.current) == [3, 3, 3])
        #expect(picks.count == 9)
    }

    @Test func test_balancer_consistentHash_sameKeySameEndpoint() {
        // Given
        var settings = Settings()
        settings.strategy = .consistentHash
        let balancer = Balancer(settings: settings, endpoints: makeEndpoints(10))
        let key = StableHash.hash("user-42")

        // When
        let ids = Set((0..<20).compactMap { _ in balancer.pick(hashKey: key)?.endpoint.id })

        // Then
        #expect(ids.count == 1)
        #expect(balancer.snapshot.ring != nil)
    }

    @Test func test_balancer_retryPick_movesToAnotherEndpoint() throws {
        // Given
        let balancer = Balancer(settings: Settings(), endpoints: makeEndpoints(3))
        let first = try #require(balancer.pick())

        // When
        let retry = balancer.retryPick(after: first)

        // Then
        #expect(retry != nil)
        #expect(retry?.endpoint.id != first.endpoint.id)
    }
}

@Suite struct SettingsTests {
    @Test func test_settings_defaults_validate() throws {
        // Given / When / Then
        try Settings().validate()
    }

    @Test func test_settings_boundedLoadBelowOne_isRejected() {
        // Given
        var settings = Settings()
        settings.consistentHash.boundedLoadFactor = 0.9

        // When / Then
        #expect(throws: Settings.ValidationError.self) { try settings.validate() }
    }

    @Test func test_settings_shareAboveOne_namesTheField() {
        // Given
        var settings = Settings()
        settings.panicThreshold = 1.5

        // When
        var field: String?
        do { try settings.validate() } catch { field = error.field }

        // Then
        #expect(field == "panicThreshold")
    }
}

@Suite struct EndpointTests {
    @Test func test_address_ipv6Host_isBracketed() {
        // Given / When / Then
        #expect(Endpoint.Address(host: "::1", port: 80).description == "[::1]:80")
        #expect(Endpoint.Address(host: "10.0.0.1", port: 80).description == "10.0.0.1:80")
    }

    @Test func test_clampedWeight_outOfRange_isClamped() {
        // Given / When / Then
        #expect(Endpoint.clampedWeight(0) == 1)
        #expect(Endpoint.clampedWeight(5_000) == 1_000)
        #expect(Endpoint.clampedWeight(7) == 7)
    }
}
