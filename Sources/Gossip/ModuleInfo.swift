/// The Gossip module. Its first real types land with their issue (see docs/architecture.md).
public enum GossipModuleInfo {
    /// The module name, for diagnostics.
    public static let name = "Gossip"
}
