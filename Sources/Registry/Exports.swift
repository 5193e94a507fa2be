// The registry's API reports `FieldError` (as `RegistrationError`); its users see it through Registry.
@_exported import Common
