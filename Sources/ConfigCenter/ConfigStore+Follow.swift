import Logging

extension ConfigStore {
    /// Keeps a view of the records under `prefix`: `load` gets every record there (the view is built from it),
    /// then `apply` gets each change as it commits, in order. When the view fell behind the change feed, it is
    /// loaded again; when the store cannot be read, that is logged and retried a second later. Returns when the
    /// task is cancelled.
    ///
    /// The subscription starts before the load, so no change committed in between is missed (one may be applied
    /// on top of a load that already holds it: `apply` must be idempotent).
    public func follow(
        prefix: String, logger: Logger, what: String, load: ([KVVersion]) -> Void, apply: (KVVersion) -> Void
    ) async {
        while !Task.isCancelled {
            let subscription = self.feed.subscribe(.prefix(prefix))
            do {
                load(try await self.list(prefix: prefix))
            } catch {
                logger.error("\(what): cannot load the records", metadata: ["config.prefix": "\(prefix)", "config.error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            for await event in subscription.events {
                if case .change(let version) = event { apply(version) }
            }
            guard subscription.lagged else { return }
            logger.warning("\(what): fell behind the change feed; reloading", metadata: ["config.prefix": "\(prefix)"])
        }
    }
}
