// MARK: - Route

/// Sends requests whose path starts with `pathPrefix` to `pool`. The longest matching prefix wins; a route for `"/"`
/// is the default. A prefix matches whole path segments: `/api` matches `/api` and `/api/users`, not `/apix`.
public struct Route: Sendable {
    /// The path prefix, starting with `/`.
    public var pathPrefix: String
    /// The pool that serves the route.
    public var pool: UpstreamPool
    /// Whether to remove the prefix before forwarding (`/api/users` → `/users` for prefix `/api`).
    public var stripPrefix: Bool

    /// Creates a route.
    public init(pathPrefix: String, pool: UpstreamPool, stripPrefix: Bool = false) {
        self.pathPrefix = pathPrefix
        self.pool = pool
        self.stripPrefix = stripPrefix
    }
}

// MARK: - Route table

/// The routes sorted for longest-prefix matching.
struct RouteTable: Sendable {
    /// The routes, longest prefix first.
    let routes: [Route]
    /// Each distinct pool once, in the order the routes named them (for the admin API and metrics).
    let pools: [UpstreamPool]

    init(_ routes: [Route]) {
        self.routes = routes.enumerated()
            .sorted { ($0.element.pathPrefix.utf8.count, -$0.offset) > ($1.element.pathPrefix.utf8.count, -$1.offset) }
            .map(\.element)
        var pools: [UpstreamPool] = []
        for route in routes where !pools.contains(where: { $0 === route.pool }) {
            pools.append(route.pool)
        }
        self.pools = pools
    }

    /// The route for a request target (path plus optional query), or `nil` when none matches.
    func match(_ uri: String) -> Route? {
        let target = uri.utf8
        for route in self.routes where RouteTable.matches(prefix: route.pathPrefix.utf8, target: target) {
            return route
        }
        return nil
    }

    /// Whether `prefix` matches `target` on a segment boundary.
    static func matches(prefix: String.UTF8View, target: String.UTF8View) -> Bool {
        var targetIndex = target.startIndex
        for byte in prefix {
            guard targetIndex != target.endIndex, target[targetIndex] == byte else { return false }
            targetIndex = target.index(after: targetIndex)
        }
        if prefix.last == UInt8(ascii: "/") || targetIndex == target.endIndex { return true }
        let next = target[targetIndex]
        return next == UInt8(ascii: "/") || next == UInt8(ascii: "?")
    }

    /// `uri` without the route's prefix, never empty (`/api?x=1` → `/?x=1`).
    static func strip(prefix: String, from uri: String) -> String {
        let rest = Substring(Substring(uri).utf8.dropFirst(prefix.utf8.count))
        // A prefix ending in "/" consumed the separator, and an exact match leaves nothing: keep a leading "/".
        if prefix.utf8.last == UInt8(ascii: "/") || rest.isEmpty || rest.first == "?" { return "/" + rest }
        return String(rest)
    }
}
