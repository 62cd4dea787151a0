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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], &IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
