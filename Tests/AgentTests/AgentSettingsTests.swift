import Foundation
import Testing

import ConfigCenter
import Gossip
import GossipCore
import Server

@testable import Agent

@Suite struct AgentSettingsTests {
    @Test func test_resolve_flagsOverrideFileOverrideDefaults() throws {
        let file = ["node_name": "from-file", "http": "127.0.0.1:9000", "retention.keep_versions": "5"]
        let flags = ["node-name": "from-flag"]
        let settings = try AgentSettings.resolve([file, flags])
        #expect(settings.nodeName == "from-flag")
        #expect(settings.config.nodeName == "from-flag" && settings.server.nodeName == "from-flag")
        #expect(settings.httpPort == 9000)
        #expect(settings.config.retention.keepVersions == 5)
        #expect(settings.dataDir == "./data")
    }

    @Test(arguments: [
        (["nope": "1"], "unknown setting 'nope'"),
        (["http": "localhost"], "http must be host:port"),
        (["log_level": "loud"], "log_level must be"),
        (["durability": "maybe"], "durability must be full or normal"),
        (["retention.keep_for": "soon"], "must be a duration"),
        (["max_value_bytes": "0"], "max_value_bytes must be an integer"),
        (["node_name": "a b"], "node_name must be"),
    ])
    func test_resolve_badValue_errorNamesTheSetting(_ values: [String: String], _ expected: String) {
        #expect {
            try AgentSettings.resolve([values])
        } throws: { "\($0)".contains(expected) }
    }

    @Test func test_configFile_toml_tablesFlattenAndCommentsIgnored() throws {
        let text = """
            # agent settings
            node_name = "n1"   # inline comment
            http = '127.0.0.1:7701'
            [retention]
            keep_versions = 10
            tombstone_horizon = "48h"
            """
        let values = try ConfigFile.parseTOML(text)
        #expect(values == ["node_name": "n1", "http": "127.0.0.1:7701", "retention.keep_versions": "10", "retention.tombstone_horizon": "48h"])
        let settings = try AgentSettings.resolve([values])
        #expect(settings.config.retention.tombstoneHorizon == .seconds(48 * 3600))
    }

    @Test func test_configFile_yaml_nestedMappingsFlatten() throws {
        let values = try ConfigFile.parseYAML("node_name: n2\nretention:\n  keep_for: 30d\n")
        #expect(values == ["node_name": "n2", "retention.keep_for": "30d"])
    }

    @Test(arguments: ["x = [1, 2]", "[bad", "just words", "a = \"unterminated"])
    func test_configFile_badTOML_lineNamed(_ text: String) {
        #expect { try ConfigFile.parseTOML(text, path: "agent.toml") } throws: { "\($0)".contains("agent.toml:1") }
    }
}

@Suite struct AgentGossipSettingsTests {
    @Test func test_gossipFlags_mapToGossipSettings() throws {
        let key = "3p0Hk0bYbz3sQvCz1Bb7cZ0ixnJ2Yd2gkz9h8OQZ2lQ="
        let settings = try AgentSettings.resolve([[
            "node_name": "n1", "gossip": "127.0.0.1:7946", "join": "127.0.0.1:7947, 127.0.0.1:7948", "tags": "zone=a,role=api",
            "encrypt_key": key, "cluster_label": "prod", "gossip_profile": "wan",
        ]])
        let gossip = try #require(settings.gossip)
        #expect(gossip.name == "n1" && gossip.bindPort == 7946)
        #expect(gossip.seeds.map(\.port) == [7947, 7948])
        #expect(gossip.tags == ["zone": "a", "role": "api"])
        #expect(gossip.keyring?.label == "prod")
        #expect(gossip.swim.probeInterval > SWIM.Settings.lan.probeInterval)
    }

    @Test func test_noGossipAddress_runsAlone() throws {
        #expect(try AgentSettings.resolve([["node_name": "solo"]]).gossip == nil)
    }

    @Test(arguments: [
        (["join": "127.0.0.1:1"], "needs a gossip address"),
        (["gossip": "nope"], "gossip must be host:port"),
        (["gossip": "127.0.0.1:1", "join": "x"], "join takes gossip addresses"),
        (["gossip": "127.0.0.1:1", "encrypt_key": "short"], "encrypt_key"),
        (["gossip": "127.0.0.1:1", "cluster_label": "x"], "cluster_label needs encrypt_key"),
        (["gossip": "127.0.0.1:1", "tags": "novalue"], "tags take k=v"),
        (["gossip": "127.0.0.1:1", "gossip_profile": "fast"], "gossip_profile must be"),
    ])
    func test_badGossipSettings_named(_ values: [String: String], _ expected: String) {
        #expect { try AgentSettings.resolve([values]) } throws: { "\($0)".contains(expected) }
    }
}
