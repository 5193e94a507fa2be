/// A problem with one named field of a request, a rule or a setting: which field (as a JSON path such as `port`,
/// `checks[1].url`, `receivers[0].webhook`, `matchers[0].value`) and what is wrong, for people (the message names
/// the field too). The registry's registrations, alert rules (errors and warnings) and silences all report this,
/// and the HTTP layer answers it as `{"error": {"field": …, "message": …}}`.
public struct FieldError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The JSON path of the field.
    public var field: String
    /// What is wrong and what is accepted.
    public var message: String

    /// Creates a problem with `field`.
    public init(field: String, _ message: String) {
        self.field = field
        self.message = message
    }

    /// The message.
    public var description: String { self.message }
}
