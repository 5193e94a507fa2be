// ConfigCenter's users (Server, Agent, Registry, the CLI) read durations and use `Duration.wholeMilliseconds`
// through it, as before they moved to the Common module.
@_exported import Common
