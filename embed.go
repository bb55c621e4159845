// Package checkinbot holds files that ship inside the binary from the
// repository root. The program itself is in cmd/checkinbot; see README.md.
package checkinbot

import _ "embed"

// ExampleConfig is checkinbot.example.toml: the commented example an
// operator copies, and the built-in defaults used without --config.
//
//go:embed checkinbot.example.toml
var ExampleConfig string
