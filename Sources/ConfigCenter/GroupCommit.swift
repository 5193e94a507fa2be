import Synchronization

/// Group commit: concurrent writers share one transaction (and one fsync).
///
/// The first writer to arrive when no batch is running becomes the *leader*: it takes up to `maxBatch`
/// queued requests (itself first), runs them through `execute` in one go, hands each waiter its
/// response, and passes leadership to the next queued writer, if any. No background task is needed: the
/// work runs on a caller's own task, or, when the leader is a callback writer (`submit(_:then:)`), on a task
/// started for that one batch.
final class GroupCommit<Request: Sendable, Response: Sendable>: Sendable {
    typealias Executor = @Sendable ([Request]) async -> [Response]

    private enum Outcome: Sendable {
        case done(Response)
        case lead
    }

    /// How a queued writer learns its outcome: an awaiting task, or a callback (`submit(_:then:)`).
    private enum Notify {
        case task(CheckedContinuation<Outcome, Never>)
        case callback(@Sendable (Response) -> Void)
    }

    private struct Waiter {
        var request: Request
        var notify: Notify

        func deliver(_ response: Response) {
            switch self.notify {
            case .task(let continuation): continuation.resume(returning: .done(response))
            case .callback(let callback): callback(response)
            }
        }
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
            if self.enqueue(Waiter(request: request, notify: .task(continuation))) { continuation.resume(returning: .lead) }
        }
        switch outcome {
        case .done(let response):
            return response
        case .lead:
            let (batch, responses) = await self.runBatch()
            for (waiter, response) in zip(batch, responses).dropFirst() { waiter.deliver(response) }
            self.handOff()
            return responses[0]
        }
    }

    /// Queues `request` and calls `then` (on the thread that ran the batch) with its response. For callers that
    /// are not tasks, such as an event loop: no task is created per request, only one per batch such writers lead.
    func submit(_ request: Request, then: @escaping @Sendable (Response) -> Void) {
        if self.enqueue(Waiter(request: request, notify: .callback(then))) {
            Task { await self.leadDetached() }
        }
    }

    /// Appends a waiter; true when it must lead (no batch is running).
    private func enqueue(_ waiter: Waiter) -> Bool {
        self.state.withLock { state -> Bool in
            state.pending.append(waiter)
            guard !state.leading else { return false }
            state.leading = true
            return true
        }
    }

    /// Runs one batch of the queued requests, oldest first (the leader's own waiter is the first).
    private func runBatch() async -> ([Waiter], [Response]) {
        let batch = self.state.withLock { state -> [Waiter] in
            let count = min(self.maxBatch, state.pending.count)
            let batch = Array(state.pending.prefix(count))
            state.pending.removeFirst(count)
            return batch
        }
        let responses = await self.execute(batch.map(\.request))
        precondition(responses.count == batch.count, "executor returned \(responses.count) responses for \(batch.count) requests")
        return (batch, responses)
    }

    /// Leads a batch whose first waiter is a callback.
    private func leadDetached() async {
        let (batch, responses) = await self.runBatch()
        for (waiter, response) in zip(batch, responses) { waiter.deliver(response) }
        self.handOff()
    }

    /// Passes leadership to the next queued writer, if any.
    private func handOff() {
        let next = self.state.withLock { state -> Notify? in
            guard let first = state.pending.first else {
                state.leading = false
                return nil
            }
            return first.notify
        }
        switch next {
        case .task(let continuation): continuation.resume(returning: .lead)
        case .callback: Task { await self.leadDetached() }
        case nil: break
        }
    }
}
