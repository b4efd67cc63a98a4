package config

// Secret holds a credential read from the environment or a file. It never
// prints itself: String, GoString, MarshalText and Format all redact it, so
// a Secret in a log field or an error message shows "[redacted]".
type Secret struct{ v string }

// NewSecret wraps s; for tests and for values read by the loader.
func NewSecret(s string) Secret { return Secret{v: s} }

// Reveal returns the secret value. Call it only where the value is used.
func (s Secret) Reveal() string { return s.v }

// IsSet reports whether a value was configured.
func (s Secret) IsSet() bool { return s.v != "" }

func (Secret) String() string               { return "[redacted]" }
func (Secret) GoString() string             { return "[redacted]" }
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }
