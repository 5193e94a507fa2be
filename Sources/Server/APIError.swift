import ConfigCenter
import Foundation
import HTTPTypes
import Logging
import Hummingbird
import Registry
import NIOCore
import NIOHTTP1

/// An error answered by the HTTP layer itself (bad query flags, wrong method, unsupported media type, …).
/// Every error the API returns has the body `{"error": {"code": "...", "message": "..."}}`.
public struct APIError: Error, HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    /// Extra fields merged into the `error` object (e.g. `current_version`).
    public var details: [String: JSONValue]
    /// Extra response headers (e.g. `Allow` for 405).
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, code: String, _ message: String, details: [String: JSONValue] = [:], headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let (headers, body) = try self.rendered()
        return Response(status: self.status, headers: headers, body: .init(byteBuffer: body))
    }

    /// The error's headers and JSON body (`{"error": {"code", "message", …details}}`), as the router sends them.
    func rendered() throws -> (HTTPFields, ByteBuffer) {
        var error: [String: JSONValue] = ["code": .string(self.code), "message": .string(self.message)]
        error.merge(self.details) { _, new in new }
        var headers: HTTPFields = [.contentType: "application/json"]
        headers.append(contentsOf: self.headers)
        return (headers, try JSONBody.buffer(JSONValue.object(["error": .object(error)])))
    }

    static func badRequest(_ message: String, code: String = "bad_request") -> APIError {
        APIError(.badRequest, code: code, message)
    }
}

extension ConfigStoreError {
    /// The API form of a store error: the status it maps to and its JSON details.
    var apiError: APIError {
        switch self.code {
        case .badKey: return APIError(.badRequest, code: "\(self.code)", self.message)
        case .badValue: return APIError(.badRequest, code: "\(self.code)", self.message)
        case .badRequest: return APIError(.badRequest, code: "\(self.code)", self.message)
        case .notFound: return APIError(.notFound, code: "\(self.code)", self.message)
        case .casMismatch:
            return APIError(.conflict, code: "\(self.code)", self.message, details: ["current_version": .int(self.currentVersion ?? 0)])
        case .txnFailed:
            let failures = self.failures.map {
                JSONValue.object([
                    "index": .int($0.index), "key": .string($0.key), "expected": .int($0.expected), "current": .int($0.current),
                ])
            }
            return APIError(.conflict, code: "\(self.code)", self.message, details: ["failures": .array(failures)])
        case .tooLarge: return APIError(.contentTooLarge, code: "\(self.code)", self.message)
        default: return APIError(.internalServerError, code: "\(self.code)", self.message)
        }
    }
}

/// The one middleware every response passes: errors become the API's JSON error shape (so no handler or
/// router error escapes as plain text), and every answer gets `X-Gossamer-Node` and `X-Gossamer-Revision`.
struct ResponseMiddleware<Context: RequestContext>: RouterMiddleware {
    let node: String
    let feed: ChangeFeed

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await self.respond(request, context: context, next: next)
        Self.addAgentHeaders(to: &response.headers, node: self.node, feed: self.feed)
        return response
    }

    /// The headers every answer carries: which agent answered, and at which revision of its store.
    static func addAgentHeaders(to headers: inout HTTPFields, node: String, feed: ChangeFeed) {
        headers[.gossamerNode] = node
        headers[.gossamerRevision] = String(feed.revision)
    }

    private func respond(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return try error.response(from: request, context: context)
        } catch let error as ConfigStoreError {
            return try error.apiError.response(from: request, context: context)
        } catch let error as RegistryError {
            return try error.apiError.response(from: request, context: context)
        } catch let error as HTTPError {
            let code: String
            let message: String
            switch error.status {
            case .notFound:
                code = "no_route"
                message = "no such endpoint: \(request.method) \(request.uri.path) (see docs/api.md)"
            case .contentTooLarge:
                code = "body_too_large"
                message = error.body ?? "request body is too large"
            default:
                code = "http_\(error.status.code)"
                message = error.body ?? error.status.reasonPhrase
            }
            return try APIError(error.status, code: code, message).response(from: request, context: context)
        } catch let error as HTTPParserError {
            return try APIError.badRequest("malformed HTTP request: \(error)", code: "bad_http").response(from: request, context: context)
        } catch is NIOTooManyBytesError {
            return try APIError(.contentTooLarge, code: "body_too_large", "request body is too large").response(from: request, context: context)
        } catch let error as DecodingError {
            return try APIError.badRequest("request body is not valid JSON for this endpoint: \(DecodingErrorText.describe(error))", code: "bad_json")
                .response(from: request, context: context)
        } catch {
            context.logger.error("request failed", metadata: ["http.error": "\(error)"])
            return try APIError(.internalServerError, code: "internal", "internal error: \(error)").response(from: request, context: context)
        }
    }
}

/// Short, human descriptions of `DecodingError`s (Foundation's are verbose).
enum DecodingErrorText {
    /// A coding path as JSON-path text: `checks[0].interval` (empty for the top level).
    static func jsonPath(_ path: [any CodingKey]) -> String {
        var text = ""
        for key in path {
            if let index = key.intValue { text += "[\(index)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
        }
        return text
    }

    /// The field an error is about (`port`, `checks[0].interval`), or `body` for the document as a whole.
    static func field(of error: DecodingError) -> String {
        let path: [any CodingKey]
        switch error {
        case .keyNotFound(let key, let context): path = context.codingPath + [key]
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context): path = context.codingPath
        @unknown default: path = []
        }
        let text = self.jsonPath(path)
        return text.isEmpty ? "body" : text
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let path = self.jsonPath(context.codingPath)
            return path.isEmpty ? "" : " at \(path)"
        }
        switch error {
        case .keyNotFound(let key, let context): return "missing field '\(key.stringValue)'\(path(context))"
        case .typeMismatch(let type, let context): return "expected \(type)\(path(context))"
        case .valueNotFound(let type, let context): return "expected \(type)\(path(context)), found null"
        case .dataCorrupted(let context):
            let underlying = (context.underlyingError as? NSError)?.userInfo["NSDebugDescription"] as? String
            return (underlying ?? context.debugDescription) + path(context)
        @unknown default: return "\(error)"
        }
    }
}
