// Command standin is the standin server and its command-line client.
//
// `standin serve` runs the server; every other subcommand talks to it over
// its API (the unix socket in the data directory, or STANDIN_URL).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/standin/standin/internal/sandbox/agent"
	"github.com/standin/standin/internal/sandbox/namespaces"
)

func main() {
	// Inside a sandbox this binary is the agent that runs commands.
	agent.Main()
	// Started by the namespaces runtime, it is a sandbox's init.
	namespaces.Init()
	os.Exit(runCommand())
}

// runCommand is the command as main runs it: SIGINT and SIGTERM cancel its
// context, so `standin serve` shuts down cleanly (its sandboxes, and one
// its pool is still starting, are removed). The tests' standin runs it too:
// a server they stop with SIGTERM must do the same.
func runCommand() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Main(ctx, os.Args[1:], &IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
}
