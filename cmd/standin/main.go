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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], &IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
