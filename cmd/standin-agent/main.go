// Command standin-agent is the in-sandbox agent of the gVisor runtime on
// its own: the first process of every sandbox, which runs the commands the
// daemon sends (see package agent). It is the standin binary's agent mode
// in a binary a sixth of the size, which starts faster under gVisor, where
// every page the Go runtime touches is a costly fault. `make build` puts it
// in bin/ next to standin, where the runtime looks for it first.
package main

import (
	"fmt"
	"os"

	"github.com/standin/standin/internal/sandbox/agent"
)

func main() {
	agent.Main() // exits when run as the agent
	fmt.Fprintf(os.Stderr, "standin-agent runs inside sandboxes only (as %q %s)\n", "standin-agent", agent.ArgAgent)
	os.Exit(2)
}
