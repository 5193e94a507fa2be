/// The Registry module. Its first real types land with their issue (see docs/architecture.md).
public enum RegistryModuleInfo {
    /// The module name, for diagnostics.
    public static let name = "Registry"
}
