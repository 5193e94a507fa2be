import GossipCore
import TestSupport

/// One instance named "a" with hand-fed inputs and a manual `now`.
struct Fixture {
    var instance: SWIM.Instance
    var rng = SeededRandom(seed: 7)
    var now = SWIM.Instant(.seconds(100))

    static func address(_ name: String) -> SWIM.Address { SWIM.Address(host: "host-\(name)", port: 7946) }

    init(members: [String] = ["b", "c", "d", "e"], settings: SWIM.Settings = .lan, metadata: [String: String] = [:]) {
        self.instance = SWIM.Instance(settings: settings, name: "a", address: Self.address("a"), metadata: metadata)
        _ = self.instance.start(now: self.now, using: &self.rng)
        let alive = members.map { SWIM.Message.alive(.init(incarnation: 1, name: $0, address: Self.address($0))) }
        if !alive.isEmpty { _ = self.receive(alive, from: members[0]) }
    }

    mutating func advance(_ duration: Duration) { self.now = self.now + duration }

    mutating func receive(_ messages: [SWIM.Message], from name: String) -> [SWIM.Directive] {
        self.instance.receive(messages, from: Self.address(name), now: self.now, using: &self.rng)
    }

    mutating func fire(_ timer: SWIM.Timer) -> [SWIM.Directive] {
        self.instance.onTimer(timer, now: self.now, using: &self.rng)
    }

    /// Runs a probe tick and returns its directives plus the ping sent.
    mutating func probe() -> (directives: [SWIM.Directive], ping: SWIM.Message.Ping?, target: SWIM.Address?) {
        let directives = self.fire(.probeTick)
        for (to, message) in directives.sentMessages {
            if case .ping(let ping) = message { return (directives, ping, to) }
        }
        return (directives, nil, nil)
    }

    /// Drains the broadcast queue by sending gossip until nothing is left.
    mutating func drainQueue() {
        var rounds = 0
        while self.instance.broadcastQueueDepth > 0 && rounds < 1_000 {
            _ = self.fire(.gossipTick)
            rounds += 1
        }
    }
}

extension SWIM.Message {
    var ping: Ping? { if case .ping(let value) = self { value } else { nil } }
    var suspect: Suspect? { if case .suspect(let value) = self { value } else { nil } }
    var alive: Alive? { if case .alive(let value) = self { value } else { nil } }
    var dead: Dead? { if case .dead(let value) = self { value } else { nil } }
    var indirectPing: IndirectPing? { if case .indirectPing(let value) = self { value } else { nil } }
}
