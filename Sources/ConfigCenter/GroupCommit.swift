import Synchronization

/// Group commit: concurrent writers share one transaction (and one fsync).
///
/// The first writer to arrive when no batch is running becomes the *leader*: it takes up to `maxBatch`
/// queued requests (itself first), runs them through `execute` in one go, hands each waiter its
/// response, and passes leadership to the next queued writer, if any. No background task is needed:
/// the work always runs on a caller's own task.
final class GroupCommit<Request: Sendable, Response: Sendable>: Sendable {
    typealias Executor = @Sendable ([Request]) async -> [Response]

    private enum Outcome: Sendable {
        case done(Response)
        case lead
    }

    private struct Waiter {
        var request: Request
        var continuation: CheckedContinuation<Outcome, Never>
    }

    private struct State {
        var pending: [Waiter] = []
        var leading = false
    }

    private let state = Mutex(State())
    private let maxBatch: Int
    private let execute: Executor

    init(maxBatch: Int, execute: @escaping Executor) {
        precondition(maxBatch > 0, "maxBatch must be positive")
        self.maxBatch = maxBatch
        self.execute = execute
    }

    /// Queues `request` and returns its response once the batch holding it has been executed.
    func submit(_ request: Request) async -> Response {
        let outcome = await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
            let lead = self.state.withLock { state -> Bool in
                state.pending.append(Waiter(request: request, continuation: continuation))
                guard !state.leading else { return false }
                state.leading = true
                return true
            }
            if lead { continuation.resume(returning: .lead) }
        }
        switch outcome {
        case .done(let response):
            return response
        case .lead:
            return await self.lead()
        }
    }

    /// Runs one batch; the caller's own waiter is the first of `pending`.
    private func lead() async -> Response {
        let batch = self.state.withLock { state -> [Waiter] in
            let count = min(self.maxBatch, state.pending.count)
            let batch = Array(state.pending.prefix(count))
            state.pending.removeFirst(count)
            return batch
        }
        let responses = await self.execute(batch.map(\.request))
        precondition(responses.count == batch.count, "executor returned \(responses.count) responses for \(batch.count) requests")
        for (waiter, response) in zip(batch, responses).dropFirst() {
            waiter.continuation.resume(returning: .done(response))
        }
        let next = self.state.withLock { state -> Waiter? in
            guard let first = state.pending.first else {
                state.leading = false
                return nil
            }
            return first
        }
        next?.continuation.resume(returning: .lead)
        return responses[0]
    }
}
