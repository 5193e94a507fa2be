import GossipCore
import Synchronization
import TestSupport
import Testing

@testable import Gossip

/// Real sockets on 127.0.0.1: two nodes in one process find each other, broadcast, and see a leave.
@Suite struct GossipNodeTests {
    func settings(_ name: String, seeds: [SWIM.Address] = [], key: String? = nil) throws -> GossipSettings {
        var settings = GossipSettings()
        settings.name = name
        settings.bindPort = 0
        settings.seeds = seeds
        settings.leaveFlush = .milliseconds(300)
        if let key { settings.keyring = try Keyring(primary: key) }
        return settings
    }

    func waitFor(_ what: String, _ condition: () -> Bool) async throws {
        let start = ContinuousClock.now
        while !condition() {
            guard ContinuousClock.now - start < .seconds(15) else {
                Issue.record("timed out: \(what)")
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    @Test(arguments: [nil, Keyring.generate()])
    func test_twoNodes_joinBroadcastLeave(key: String?) async throws {
        let received = Locked<[String]>([])
        let a = try GossipNode(settings: self.settings("a", key: key))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await a.run() }
            try await self.waitFor("a bound") { a.snapshot.address != nil }
            let seed = try #require(a.snapshot.address)
            var handlers = GossipNode.Handlers()
            handlers.onUserBroadcast = { origin, payload in received.withLock { $0.append("\(origin):\(String(decoding: payload, as: UTF8.self))") } }
            let b = try GossipNode(settings: self.settings("b", seeds: [seed], key: key), handlers: handlers)
            let events = b.events()
            group.addTask { try await b.run() }

            try await self.waitFor("both alive on both") {
                a.members.filter { $0.status == .alive }.count == 2 && b.members.filter { $0.status == .alive }.count == 2
            }
            var iterator = events.makeAsyncIterator()
            let joined = await iterator.next()
            #expect(joined?.member.name == "a")

            #expect(await a.broadcast(Array("hello".utf8)))
            try await self.waitFor("broadcast delivered") { received.withLock { $0 } == ["a:hello"] }

            a.leave()
            try await self.waitFor("b sees a left") { b.members.first { $0.name == "a" }?.status == .left }
            b.leave()
            try await group.waitForAll()
        }
        #expect(a.snapshot.shell.datagramsOut > 0)
    }
}
