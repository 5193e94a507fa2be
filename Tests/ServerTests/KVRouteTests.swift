import ConfigCenter
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import Server

func makeApp(configure: (inout ConfigSettings) -> Void = { _ in }) throws -> (some ApplicationProtocol, ConfigStore) {
    var config = ConfigSettings()
    config.nodeName = "t1"
    configure(&config)
    let store = try ConfigStore.inMemory(settings: config)
    var settings = ServerSettings()
    settings.nodeName = "t1"
    return (Application(router: buildRouter(store: store, settings: settings)), store)
}

/// The JSON object in `buffer` ([:] when it is not one, which then fails the expectations that read it).
func json(_ buffer: ByteBuffer) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))) as? [String: Any] ?? [:]
}

func errorCode(_ buffer: ByteBuffer) -> String? {
    (json(buffer)["error"] as? [String: Any])?["code"] as? String
}

@Suite struct KVRouteTests {
    @Test func test_putThenGet_jsonCarriesValueAndMetadataAndHeaders() async throws {
        let (app, _) = try makeApp()
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/kv/app/db.yaml?type=yaml", method: .put, headers: [.init("X-Gossamer-Author")!: "alice"], body: ByteBuffer(string: "a: 1\n")) { response in
                #expect(response.status == .ok)
                #expect(json(response.body)["version"] as? Int == 1)
            }
            try await client.execute(uri: "/v1/kv/app/db.yaml", method: .get) { response in
                #expect(response.status == .ok)
                let body = json(response.body)
                #expect(body["value"] as? String == "a: 1\n")
                #expect(body["type"] as? String == "yaml")
                #expect(body["author"] as? String == "alice")
                #expect(response.headers[.init("X-Gossamer-Node")!] == "t1")
                #expect(response.headers[.init("X-Gossamer-Revision")!] == "1")
                #expect(response.headers[.init("X-Gossamer-Stamp")!] == body["stamp"] as? String)
            }
            try await client.execute(uri: "/v1/kv/app/db.yaml?raw", method: .get) { response in
                #expect(String(buffer: response.body) == "a: 1\n")
                #expect(response.headers[.contentType] == "application/yaml")
            }
        }
    }

    /// A PUT's `Content-Type` names the stored type: parameters and blanks ignored, case-insensitive.
    @Test(arguments: [
        ("application/json", "json"), ("application/json; charset=utf-8", "json"), ("  Application/JSON ;x=1", "json"),
        ("text/yaml", "yaml"), ("application/x-yaml\t", "yaml"), ("text/plain", nil), ("", nil), (" ; charset=utf-8", nil),
        ("application/jsonx", nil),
    ] as [(String, String?)])
    func test_contentType_fromMediaType(_ mediaType: String, _ expected: String?) {
        #expect(KVController.contentType(fromMediaType: mediaType) == expected)
        #expect(KVController.contentType(fromMediaType: nil) == nil)
    }

    @Test func test_binaryValue_roundTripsAsBase64() async throws {
        let (app, _) = try makeApp()
        try await app.test(.router) { client in
            let bytes: [UInt8] = [0xFF, 0x00, 0xFE]
            _ = try await client.execute(uri: "/v1/kv/bin", method: .put, body: ByteBuffer(bytes: bytes))
            try await client.execute(uri: "/v1/kv/bin", method: .get) { response in
                let body = json(response.body)
                #expect(body["encoding"] as? String == "base64")
                #expect(Data(base64Encoded: body["value"] as? String ?? "") == Data(bytes))
            }
        }
    }

    /// Each bad request gets the documented status and error code, and the store is left unchanged.
    @Test(arguments: [
        (HTTPRequest.Method.put, "/v1/kv/a//b", "x", 400, "bad_key"),
        (.put, "/v1/kv/a/../b", "x", 400, "bad_key"),
        (.put, "/v1/kv/%FF", "x", 400, "bad_key"),
        (.put, "/v1/kv/j?type=json", "{\"a\":", 400, "bad_value"),
        (.put, "/v1/kv/y?type=yaml", "a: [1", 400, "bad_value"),
        (.put, "/v1/kv/t?type=NOT%20A%20TYPE", "x", 400, "bad_request"),
        (.put, "/v1/kv/big", String(repeating: "x", count: 1025), 413, "value_too_large"),
        (.put, "/v1/kv/seed?cas=7", "x", 409, "cas_mismatch"),
        (.put, "/v1/kv/seed?cas=abc", "x", 400, "bad_request"),
        (.put, "/v1/kv/seed?bogus=1", "x", 400, "unknown_parameter"),
        (.get, "/v1/kv/missing", "", 404, "not_found"),
        (.get, "/v1/kv/seed?version=9", "", 404, "not_found"),
        (.get, "/v1/kv/seed?diff=1", "", 400, "bad_request"),
        (.get, "/v1/kv/seed?recurse&history", "", 400, "bad_request"),
        (.get, "/v1/kv/seed?index=garbage", "", 400, "bad_request"),
        (.get, "/v1/kv/seed?index=0&wait=11m", "", 400, "bad_request"),
        (.get, "/v1/kv/seed?wait=1s", "", 400, "bad_request"),
        (.delete, "/v1/kv/seed?cas=9", "", 409, "cas_mismatch"),
        (.delete, "/v1/kv/?recurse", "", 400, "bad_request"),
        (.post, "/v1/kv/seed", "", 400, "bad_request"),
        (.post, "/v1/kv/seed?rollback=5", "", 404, "not_found"),
        (.patch, "/v1/kv/seed", "", 405, "method_not_allowed"),
        (.post, "/v1/txn", "not json", 400, "bad_json"),
        (.post, "/v1/txn", "{\"ops\": [{\"op\": \"explode\", \"key\": \"a\"}]}", 400, "bad_request"),
        (.post, "/v1/txn", "{\"ops\": [{\"op\": \"set\", \"key\": \"a\"}]}", 400, "bad_request"),
        (.post, "/v1/txn", "{\"ops\": []}", 400, "bad_request"),
        (.post, "/v1/txn", "{\"ops\": [{\"op\": \"check\", \"key\": \"seed\", \"version\": 3}]}", 409, "txn_failed"),
        (.get, "/v1/nothing", "", 404, "no_route"),
    ])
    func test_badRequest_answeredWithStatusAndCode_storeUnchanged(
        _ method: HTTPRequest.Method, _ uri: String, _ body: String, _ status: Int, _ code: String
    ) async throws {
        // Given
        let (app, store) = try makeApp { $0.maxValueBytes = 1024 }
        try await store.put("seed", value: Data("v".utf8))
        // When / Then
        try await app.test(.router) { client in
            try await client.execute(uri: uri, method: method, body: ByteBuffer(string: body)) { response in
                #expect(Int(response.status.code) == status)
                let found = errorCode(response.body)
                #expect(found == code)
                #expect(response.headers[.contentType] == "application/json")
            }
        }
        #expect(try await store.revision() == 1)
        #expect(try await store.get("seed")?.value == Data("v".utf8))
    }

    @Test func test_txn_wrongMediaType_is415() async throws {
        let (app, _) = try makeApp()
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/txn", method: .post, headers: [.contentType: "text/plain"], body: ByteBuffer(string: "{}")) {
                #expect($0.status == .unsupportedMediaType)
                let found = errorCode($0.body)
                #expect(found == "unsupported_media_type")
            }
        }
    }

    @Test func test_txn_mixedOps_appliedTogether() async throws {
        let (app, store) = try makeApp()
        try await store.put("a", value: Data("1".utf8))
        let body = """
            {"ops": [{"op": "check", "key": "a", "version": 1}, {"op": "set", "key": "b", "value": "x", "cas": 0},
                     {"op": "set", "key": "c", "value_base64": "/w=="}, {"op": "delete", "key": "a"}, {"op": "get", "key": "b"}]}
            """
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/txn", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: body)) { response in
                #expect(response.status == .ok)
                let results = json(response.body)["results"] as? [[String: Any]]
                #expect(results?.count == 5)
                #expect((results?[4]["version"] as? [String: Any])?["value"] as? String == "x")
            }
        }
        #expect(try await store.get("c")?.value == Data([0xFF]))
        #expect(try await store.get("a") == nil)
    }

    @Test func test_listKeysHistoryDiffRollback_overHTTP() async throws {
        let (app, store) = try makeApp()
        try await store.put("app/x", value: Data("one\n".utf8))
        try await store.put("app/x", value: Data("two\n".utf8))
        try await store.put("app/y", value: Data("y".utf8))
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/kv/app/?keys", method: .get) {
                #expect(String(buffer: $0.body) == "[\"app/x\",\"app/y\"]\n")
            }
            try await client.execute(uri: "/v1/kv/app/x?history&limit=1", method: .get) {
                let list = try #require(try JSONSerialization.jsonObject(with: Data($0.body.readableBytesView)) as? [[String: Any]])
                #expect(list.map { $0["version"] as? Int } == [2])
            }
            try await client.execute(uri: "/v1/kv/app/x?diff=1,2", method: .get) {
                #expect(String(buffer: $0.body).contains("-one\n+two\n"))
            }
            try await client.execute(uri: "/v1/kv/app/x?rollback=1", method: .post) {
                #expect(json($0.body)["version"] as? Int == 3)
            }
            try await client.execute(uri: "/v1/kv/app/?recurse", method: .delete) {
                #expect(json($0.body)["deleted"] as? Int == 2)
            }
        }
        #expect(try await store.get("app/x") == nil)
    }

    /// `raw` combines with `version` and with a blocking `index` read (docs/api.md shows `?version=1&raw`);
    /// `holders` combines with none of the read flags.
    @Test func test_raw_combinesWithVersionAndIndex_holdersWithNothing() async throws {
        let (app, store) = try makeApp()
        try await store.put("app/x", value: Data("one\n".utf8))
        let second = try await store.put("app/x", value: Data("two\n".utf8))
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/kv/app/x?version=1&raw", method: .get) {
                #expect($0.status == .ok)
                #expect(String(buffer: $0.body) == "one\n")
                #expect($0.headers[.init("X-Gossamer-Version")!] == "1")
            }
            try await client.execute(uri: "/v1/kv/app/x?index=\(second.stamp)&wait=100ms&raw", method: .get) {
                #expect($0.status == .ok)
                #expect(String(buffer: $0.body) == "two\n")
            }
            for other in ["raw", "version=1", "history", "keys"] {
                try await client.execute(uri: "/v1/kv/app/x?holders&\(other)", method: .get) {
                    #expect($0.status == .badRequest)
                    #expect(errorCode($0.body) == "bad_request")
                }
            }
        }
    }

    @Test func test_blockingGet_returnsWhenKeyChanges() async throws {
        let (app, store) = try makeApp()
        let first = try await store.put("k", value: Data("1".utf8))
        try await app.test(.router) { client in
            async let changed: Void = {
                try await Task.sleep(for: .milliseconds(200))
                try await store.put("k", value: Data("2".utf8))
            }()
            let started = ContinuousClock.now
            try await client.execute(uri: "/v1/kv/k?index=\(first.stamp)&wait=20s", method: .get) { response in
                #expect(json(response.body)["value"] as? String == "2")
                #expect(ContinuousClock.now - started < .seconds(10))
            }
            try await changed
            // An index that is already stale answers at once; a wait that runs out answers with the same stamp.
            try await client.execute(uri: "/v1/kv/k?index=\(first.stamp)&wait=20s", method: .get) {
                #expect(json($0.body)["version"] as? Int == 2)
            }
            let current = try #require(try await store.get("k"))
            try await client.execute(uri: "/v1/kv/k?index=\(current.stamp)&wait=300ms", method: .get) {
                #expect($0.headers[.init("X-Gossamer-Stamp")!] == current.stamp.description)
            }
        }
    }

    @Test func test_statusAndHealth_reportNodeAndRevision() async throws {
        let (app, store) = try makeApp()
        try await store.put("k", value: Data("1".utf8))
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/status", method: .get) {
                let body = json($0.body)
                #expect(body["node"] as? String == "t1")
                #expect(body["revision"] as? Int == 1)
                #expect(body["keys"] as? Int == 1)
            }
            try await client.execute(uri: "/health", method: .get) {
                #expect($0.status == .ok)
                #expect(json($0.body)["status"] as? String == "ok")
            }
        }
    }
}

@Suite struct TimestampTests {
    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00.000Z"), (Int64(1_795_292_219_214), "2026-11-21T20:16:59.214Z"),
        (Int64(951_782_400_000), "2000-02-29T00:00:00.000Z"), (Int64(-1), "1969-12-31T23:59:59.999Z"),
        (Int64(4_102_444_799_999), "2099-12-31T23:59:59.999Z"),
    ])
    func test_iso8601_matchesCalendar(_ millis: Int64, _ expected: String) {
        #expect(Timestamps.iso8601(millis: millis) == expected)
    }
}

@Suite struct FastJSONTests {
    /// The hand-written JSON of a version equals what JSONEncoder (sorted keys, unescaped slashes) writes.
    @Test(arguments: ["plain", "with \"quotes\" and \\ backslash", "line\nbreak\ttab\u{01}", "ünïcode/键 🎉", ""])
    func test_versionJSON_matchesFoundation(_ value: String) throws {
        let version = KVVersion(
            key: "a/b\"c", value: Data(value.utf8), contentType: "yaml", version: 3, revision: 42,
            stamp: Stamp(wall: 1_795_292_219_214, counter: 2, node: "n1"), parent: Stamp(wall: 5, counter: 0, node: "n0"),
            author: "alice", client: nil, tombstone: false, conflict: true, appliedAt: 7)
        let dto = VersionDTO(version, includeValue: true)
        var fast = ""
        dto.appendJSON(to: &fast)
        let foundation = String(decoding: try JSONBody.encoder().encode(dto), as: UTF8.self)
        let parsedFast = try JSONSerialization.jsonObject(with: Data(fast.utf8)) as? NSDictionary
        let parsedFoundation = try JSONSerialization.jsonObject(with: Data(foundation.utf8)) as? NSDictionary
        #expect(parsedFast == parsedFoundation)
        #expect(fast.count == foundation.count || fast == foundation)
    }
}
