import Foundation
import RedisCache
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What the environment offers the tests that need a Redis server.
///
/// The test script exports `REDIS_HOSTNAME` and `REDIS_PORT` of a throwaway server. Without them the tests that
/// need it are skipped, except under `CI=true`, where they run and fail.
enum RedisTestEnvironment {
    private static let variables = ProcessInfo.processInfo.environment

    static let isCI = ["true", "1"].contains(variables["CI"]?.lowercased() ?? "")

    /// Whether the tests that use the shared server run.
    static let sharedServerTestsEnabled = variables["REDIS_PORT"] != nil || isCI

    /// The shared server; records a failure when it is not configured.
    static func sharedEndpoint() throws -> RedisEndpoint {
        let portText = try #require(variables["REDIS_PORT"], "REDIS_PORT is not set, and CI=true requires the redis tests")
        let port = try #require(Int(portText), "REDIS_PORT '\(portText)' is not a number")
        return RedisEndpoint(host: variables["REDIS_HOSTNAME"] ?? "127.0.0.1", port: port)
    }

    /// The `redis-server` executable on `PATH`, for tests that start their own server.
    static let redisServerPath: String? = (variables["PATH"] ?? "/usr/bin:/usr/local/bin")
        .split(separator: ":")
        .map { "\($0)/redis-server" }
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Whether the tests that start their own server run (under CI they fail when `redis-server` is missing).
    static let ownServerTestsEnabled = redisServerPath != nil || isCI
}

/// A test could not set up what it needs (thrown errors fail the test with this description).
struct TestSetupError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}

/// A key prefix no other test uses, so tests can share one server while running in parallel.
func uniquePrefix(_ test: String) -> String {
    "test:redis:\(test):\(UUID().uuidString.prefix(8)):"
}

/// A loopback TCP port that nothing listens on (just now), below the kernel's ephemeral range (32768 and up on
/// Linux): no outgoing connection or `bind` to port 0 takes it while a test's own server is down for a restart.
func freePort() throws -> Int {
    for _ in 0..<100 {
        let port = Int.random(in: 20_000..<32_000)
        if canBind(port: port) { return port }
    }
    throw TestSetupError("no free loopback port between 20000 and 32000")
}

/// Whether a listening socket could bind `127.0.0.1:port` (with `SO_REUSEADDR`, as redis-server binds).
private func canBind(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var reuse: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
    return withLoopbackAddress(port: port) { bind(fd, $0, $1) == 0 }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
func eventually(within timeout: Duration, _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return await condition()
}

/// Runs `body` with a new client, and shuts the client down afterwards whether or not `body` throws.
func withRedisClient<T>(
    endpoint: RedisEndpoint,
    connections: Int = 2,
    connectTimeout: Duration = .seconds(2),
    commandTimeout: Duration = .seconds(2),
    _ body: (RedisClient) async throws -> T
) async throws -> T {
    let client = RedisClient(
        endpoint: endpoint, connections: connections, connectTimeout: connectTimeout, commandTimeout: commandTimeout)
    do {
        let result = try await body(client)
        await client.shutdown()
        return result
    } catch {
        await client.shutdown()
        throw error
    }
}

/// A `redis-server` child process that one test starts on a free loopback port, in its own temp dir, and stops
/// by its PID (`stop`, `crash`, or at the latest when it is dropped). Only the test that owns it touches it.
///
/// It is spawned with `posix_spawn` and an empty signal mask: `Process` would pass on the signal mask of the
/// test runner's thread, which blocks SIGTERM.
final class OwnRedisServer {
    private(set) var port: Int
    private let directory: String
    private let extraArguments: [String]
    private var pid: pid_t?

    /// Starts a server with `extraArguments` (such as `["--requirepass", "secret"]`) and waits until it accepts
    /// connections. Tries another port if a parallel test took the first one.
    init(extraArguments: [String] = []) async throws {
        self.port = try freePort()
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("redis-test-\(UUID().uuidString.prefix(8))").path
        self.extraArguments = extraArguments
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for _ in 1..<3 {
            if (try? await start()) != nil { return }
            port = try freePort()
        }
        try await start()
    }

    deinit {
        crash()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// An endpoint for this server.
    func endpoint(username: String? = nil, password: String? = nil) -> RedisEndpoint {
        RedisEndpoint(host: "127.0.0.1", port: port, username: username, password: password)
    }

    /// Starts the server (again, after `stop` or `crash`, on the same port) and waits until it accepts connections.
    func start() async throws {
        guard let path = RedisTestEnvironment.redisServerPath else {
            throw TestSetupError("redis-server is not on PATH")
        }
        let pid = try Self.spawn(path, [
            "--bind", "127.0.0.1", "--port", String(port), "--dir", directory, "--logfile", "\(directory)/redis.log",
            "--save", "", "--appendonly", "no", "--daemonize", "no",
        ] + extraArguments)
        self.pid = pid
        let ready = await eventually(within: .seconds(5)) {
            guard isRunning else { return true }
            return (try? RedisConnection(endpoint: endpoint(), connectTimeout: .milliseconds(200), commandTimeout: .milliseconds(200))) != nil
        }
        let log = (try? String(contentsOfFile: "\(directory)/redis.log", encoding: .utf8)) ?? ""
        guard ready, isRunning else {
            throw TestSetupError("redis-server on port \(port) did not start: \(log)")
        }
    }

    /// Kills the server at once (SIGKILL, like a crash) and waits for it to exit.
    func crash() {
        guard let pid, isRunning else { return }
        kill(pid, SIGKILL)
        waitpid(pid, nil, 0)
        self.pid = nil
    }

    /// Stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it to exit.
    func stop() async {
        guard let pid, isRunning else { return }
        kill(pid, SIGTERM)
        _ = await eventually(within: .seconds(5)) { !isRunning }
        crash()
    }

    /// Whether the process is still running; reaps it if it has exited.
    private var isRunning: Bool {
        guard let pid else { return false }
        if waitpid(pid, nil, WNOHANG) == 0 { return true }
        self.pid = nil
        return false
    }

    private static func spawn(_ path: String, _ arguments: [String]) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGTERM, SIGINT, SIGHUP] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0)

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let environment: [UnsafeMutablePointer<CChar>?] = [nil]
        var pid = pid_t()
        let status = posix_spawn(&pid, path, &actions, &attributes, argv, environment)
        guard status == 0 else {
            throw TestSetupError("cannot start \(path): \(String(cString: strerror(status)))")
        }
        return pid
    }
}

/// Collects the messages of a subscriber in the background, so tests can wait for them without cancelling the
/// stream (cancelling a task that iterates an `AsyncStream` terminates the stream).
final class MessageCollector: Sendable {
    private let received = Mutex<[RedisMessage]>([])
    private let finished = Atomic(false)

    init(_ subscriber: RedisSubscriber) {
        let messages = subscriber.messages
        Task { [self] in
            for await message in messages {
                received.withLock { $0.append(message) }
            }
            finished.store(true, ordering: .releasing)
        }
    }

    var messages: [RedisMessage] { received.withLock { $0 } }

    /// Waits until a message matching `predicate` arrives; returns whether one did within `timeout`.
    func waitFor(within timeout: Duration = .seconds(5), _ predicate: (RedisMessage) -> Bool) async -> Bool {
        await eventually(within: timeout) { messages.contains(where: predicate) }
    }

    /// Waits until the subscriber finishes the stream; returns whether it did within `timeout`.
    func waitForEnd(within timeout: Duration) async -> Bool {
        await eventually(within: timeout) { finished.load(ordering: .acquiring) }
    }
}

/// Publishes `payload` until at least one subscriber receives it (a new subscriber needs a moment to subscribe).
/// Returns whether one did within `timeout`.
func publishUntilReceived(_ client: RedisClient, channel: String, payload: String, within timeout: Duration = .seconds(5)) async -> Bool {
    await eventually(within: timeout) {
        let receivers = try? await client.command("PUBLISH", channel, payload)
        return (receivers?.int ?? 0) > 0
    }
}
