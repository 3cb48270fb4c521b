module github.com/stewardhq/steward

go 1.26.0

require (
	github.com/pelletier/go-toml/v2 v2.4.3
	golang.org/x/sys v0.49.0
)

require (
	github.com/creack/pty v1.1.24
	github.com/fluent/fluent-logger-golang v1.10.2
	github.com/tinylib/msgp v1.3.0
)

require github.com/philhofer/fwd v1.2.0 // indirect
