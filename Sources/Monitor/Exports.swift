// Monitor's users (Server, Agent, the CLI, the tests) see the types its API is made of — `FieldError` for rule
// and silence problems, `DurationText` — through it.
@_exported import Common
