/// The RedisCache module. Its first real types land with their issue (see docs/architecture.md).
public enum RedisCacheModuleInfo {
    /// The module name, for diagnostics.
    public static let name = "RedisCache"
}
