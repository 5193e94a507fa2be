// WebhookBench: the two outbound HTTP clients this machine offers, delivering the same Alertmanager webhook
// message to the same receiver: AsyncHTTPClient (NIO, what `WebhookSender` uses) and FoundationNetworking's
// URLSession (backed by libcurl on Linux). Sequential POSTs, as a notifier sends them; reports wall latency
// p50/p99 and this process' CPU per request (getrusage), client by client, interleaved in rounds.
//
//   WebhookBench --url http://127.0.0.1:PORT/hook [--requests 2000] [--rounds 3]
//
// The receiver is whatever listens at --url (bench/alerts.sh starts one); only loopback URLs are accepted.
import AsyncHTTPClient
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Monitor
import NIOCore
import NIOHTTP1

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("WebhookBench: \(message)\n".utf8))
    exit(2)
}

struct Options {
    var url = ""
    var requests = 2000
    var rounds = 3
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = CommandLine.arguments.dropFirst()
    func value(_ flag: String) -> String {
        guard let value = arguments.popFirst() else { fail("\(flag) needs a value") }
        return value
    }
    func integer(_ flag: String) -> Int {
        guard let number = Int(value(flag)) else { fail("\(flag) takes an integer") }
        return number
    }
    while let argument = arguments.popFirst() {
        switch argument {
        case "--url": options.url = value(argument)
        case "--requests": options.requests = integer(argument)
        case "--rounds": options.rounds = integer(argument)
        default: fail("unknown argument \(argument); use --url URL [--requests N] [--rounds N]")
        }
    }
    guard options.url.hasPrefix("http://127.") else { fail("--url must be a loopback http:// URL, not '\(options.url)'") }
    guard (1...100_000).contains(options.requests), (1...20).contains(options.rounds) else { fail("--requests 1…100000, --rounds 1…20") }
    return options
}

let options = parseOptions()
let url = options.url
let requests = options.requests
let rounds = options.rounds

// A realistic message: two alerts of one group, as WebhookSender sends it.
let now = WallTime.now
let alerts = ["/", "/data"].map { mount in
    Alert(
        rule: "disk-full", status: .firing, labels: ["alertname": "disk-full", "mount": mount, "severity": "critical", "team": "ops"],
        annotations: ["summary": "disk \(mount) at 0.93"], value: 0.93, activeAt: now, firedAt: now)
}
let notification = AlertNotification(
    id: .init(rawValue: 1), receiver: .webhook(url), groupKey: AlertmanagerPayload.groupKey(["alertname": "disk-full"]),
    groupLabels: ["alertname": "disk-full"], alerts: alerts, attempt: 1)
let payload = NotificationPayload(
    notification, externalURL: "http://127.0.0.1:7700", generatorURL: { _ in "http://127.0.0.1:7700/v1/alerts/rules/disk-full" }, now: now,
    alertmanagerResendInterval: .seconds(60))
let body = try WebhookSender.jsonBody(payload)

func cpuNow() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted[max(0, min(sorted.count - 1, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1))]
}

struct Figures {
    var latencies: [Double] = []
    var cpu = 0.0
    var errors = 0
}

func viaAHC(_ client: HTTPClient) async -> Figures {
    var figures = Figures()
    let cpu0 = cpuNow()
    for _ in 0..<requests {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: body))
        let start = ContinuousClock.now
        do {
            let response = try await client.execute(request, timeout: .seconds(10))
            _ = try await response.body.collect(upTo: 1 << 20)
            if response.status.code / 100 != 2 { figures.errors += 1 }
        } catch {
            figures.errors += 1
        }
        let elapsed = ContinuousClock.now - start
        figures.latencies.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
    }
    figures.cpu = cpuNow() - cpu0
    return figures
}

func viaURLSession(_ session: URLSession) async -> Figures {
    var figures = Figures()
    let cpu0 = cpuNow()
    let data = Data(body)
    for _ in 0..<requests {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.timeoutInterval = 10
        let start = ContinuousClock.now
        let ok: Bool = await withCheckedContinuation { continuation in
            session.uploadTask(with: request, from: data) { _, response, error in
                continuation.resume(returning: error == nil && ((response as? HTTPURLResponse)?.statusCode ?? 0) / 100 == 2)
            }.resume()
        }
        if !ok { figures.errors += 1 }
        let elapsed = ContinuousClock.now - start
        figures.latencies.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
    }
    figures.cpu = cpuNow() - cpu0
    return figures
}

let client = HTTPClient(eventLoopGroupProvider: .singleton)
let session = URLSession(configuration: .default)
var results: [String: Figures] = ["AsyncHTTPClient": Figures(), "URLSession (libcurl)": Figures()]
print("WebhookBench: \(requests) sequential POSTs of a \(body.count)-byte webhook message per client per round, \(rounds) rounds, to \(url)")
for round in 1...rounds {
    for name in round % 2 == 1 ? ["AsyncHTTPClient", "URLSession (libcurl)"] : ["URLSession (libcurl)", "AsyncHTTPClient"] {
        let figures = name == "AsyncHTTPClient" ? await viaAHC(client) : await viaURLSession(session)
        results[name]!.latencies += figures.latencies
        results[name]!.cpu += figures.cpu
        results[name]!.errors += figures.errors
    }
}
try await client.shutdown().get()

print("client                  p50 ms   p99 ms   CPU µs/request   errors")
var line = "RESULT"
for name in ["AsyncHTTPClient", "URLSession (libcurl)"] {
    let figures = results[name]!
    let sorted = figures.latencies.sorted()
    let cpuPer = figures.cpu / Double(sorted.count) * 1e6
    print(
        name.padding(toLength: 22, withPad: " ", startingAt: 0)
            + String(format: "  %7.3f  %7.3f  %14.1f   %d", percentile(sorted, 50), percentile(sorted, 99), cpuPer, figures.errors))
    let key = name == "AsyncHTTPClient" ? "ahc" : "urlsession"
    line += String(format: " %@_p50_ms=%.3f %@_p99_ms=%.3f %@_cpu_us=%.1f %@_errors=%d", key, percentile(sorted, 50), key, percentile(sorted, 99), key, cpuPer, key, figures.errors)
}
print(line)
