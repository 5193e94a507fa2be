/// The Monitor module. Its first real types land with their issue (see docs/architecture.md).
public enum MonitorModuleInfo {
    /// The module name, for diagnostics.
    public static let name = "Monitor"
}
