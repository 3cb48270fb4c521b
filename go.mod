module github.com/stewardhq/steward

go 1.26.0

require (
	github.com/pelletier/go-toml/v2 v2.4.3
	golang.org/x/sys v0.49.0
)

require github.com/creack/pty v1.1.24

require github.com/gorilla/websocket v1.5.3 // indirect
