import Common
import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// MARK: - Webhook sender

/// The real ``NotificationSender``, for every receiver kind:
/// - ``AlertRule/Receiver/webhook(_:)``: `POST <url>` with the Alertmanager webhook message;
/// - ``AlertRule/Receiver/alertmanager(_:)``: `POST <url>/api/v2/alerts` with the postable alerts (a URL that already
///   ends in `/api/v2/alerts` is used as is);
/// - ``AlertRule/Receiver/log``: one `info` line per alert through the logger, always delivered.
///
/// Bodies are JSON (``jsonBody(_:)``), `Content-Type: application/json`. Each request has a deadline of
/// ``timeout``. A 2xx answer is success; 408, 429, 5xx, timeouts and connection errors are retryable; other answers
/// (4xx, or 3xx left after the client's redirects) and unusable URLs are permanent. The reason of a failure includes
/// the status and the start of the answer's body.
public struct WebhookSender: NotificationSender {
    /// The HTTP client; by default the process-wide `HTTPClient.shared`.
    public let httpClient: HTTPClient
    /// How long one request may take. Default 10 s.
    public let timeout: Duration
    /// Where `log` receivers write, and where request failures are logged at `debug`.
    public let logger: Logger

    /// The most bytes of an answer's body read (to quote it in a failure reason); the rest is ignored.
    static let maximumAnswerBytes = 4096

    /// Creates a sender.
    public init(httpClient: HTTPClient = .shared, timeout: Duration = .seconds(10), logger: Logger) {
        self.httpClient = httpClient
        self.timeout = timeout
        self.logger = logger
    }

    /// Sends `notification` as `payload` to its receiver.
    public func send(_ notification: AlertNotification, payload: NotificationPayload) async -> DeliveryResult {
        switch notification.receiver {
        case .webhook(let url):
            return await self.post(payload, to: url)
        case .alertmanager(let url):
            return await self.post(payload, to: Self.alertsURL(url))
        case .log:
            self.log(notification, payload: payload)
            return .success
        }
    }

    // MARK: - HTTP

    /// `<base>/api/v2/alerts`, unless `base` already ends with that path.
    static func alertsURL(_ base: String) -> String {
        let path = "/api/v2/alerts"
        var trimmed = Substring(base)
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        return trimmed.hasSuffix(path) ? String(trimmed) : trimmed + path
    }

    /// The JSON body for `payload`: keys sorted and slashes unescaped, so equal payloads give equal bytes.
    public static func jsonBody(_ payload: NotificationPayload) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data =
            switch payload {
            case .webhook(let message): try encoder.encode(message)
            case .postableAlerts(let alerts): try encoder.encode(alerts)
            }
        return Array(data)
    }

    private func post(_ payload: NotificationPayload, to url: String) async -> DeliveryResult {
        let body: [UInt8]
        do {
            body = try Self.jsonBody(payload)
        } catch {
            return .permanent("cannot encode the payload: \(error)")
        }
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "gossamer")
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await self.httpClient.execute(
                request, timeout: .milliseconds(self.timeout.wholeMilliseconds))
            var answer = ByteBuffer()
            for try await var chunk in response.body where answer.readableBytes < Self.maximumAnswerBytes {
                let room = Self.maximumAnswerBytes - answer.readableBytes
                if let slice = chunk.readSlice(length: min(room, chunk.readableBytes)) {
                    answer.writeImmutableBuffer(slice)
                }
            }
            return Self.classify(status: response.status, answer: String(buffer: answer))
        } catch let error as HTTPClientError where Self.isUnusableURL(error, url: url) {
            return .permanent("unusable URL '\(url)': \(error)")
        } catch {
            return .retryable("\(error)")
        }
    }

    /// Success for 2xx; retryable for 408, 429 and 5xx; permanent otherwise.
    static func classify(status: HTTPResponseStatus, answer: String) -> DeliveryResult {
        let code = Int(status.code)
        if (200..<300).contains(code) { return .success }
        var reason = "HTTP \(code)"
        let quoted = answer.drop(while: \.isWhitespace).prefix(200).reversed().drop(while: \.isWhitespace).reversed()
        if !quoted.isEmpty { reason += ": " + String(quoted) }
        return code == 408 || code == 429 || code >= 500 ? .retryable(reason) : .permanent(reason)
    }

    private static func isUnusableURL(_ error: HTTPClientError, url: String) -> Bool {
        if error == .invalidURL || error == .emptyHost || error == .emptyScheme { return true }
        let scheme = url.prefix { $0 != ":" }
        return error == .unsupportedScheme(String(scheme))
    }

    // MARK: - Log receiver

    private func log(_ notification: AlertNotification, payload: NotificationPayload) {
        guard case .webhook(let message) = payload else { return }
        for alert in message.alerts {
            self.logger.info(
                "alert notification",
                metadata: [
                    "alert.rule": "\(alert.labels["alertname"] ?? "")",
                    "alert.status": "\(alert.status)",
                    "alert.labels": .dictionary(alert.labels.mapValues { .string($0) }),
                    "alert.annotations": .dictionary(alert.annotations.mapValues { .string($0) }),
                    "alert.starts_at": "\(alert.startsAt)",
                    "alert.ends_at": "\(alert.endsAt)",
                    "alert.fingerprint": "\(alert.fingerprint)",
                    "alert.group_key": "\(notification.groupKey)",
                ])
        }
    }
}
