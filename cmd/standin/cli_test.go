package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/standin/standin/internal/sandbox/agent"
	"github.com/standin/standin/internal/server"
	"github.com/standin/standin/internal/testutil"
)

func TestMain(m *testing.M) {
	// Sandboxes started by these tests run this binary as their agent.
	agent.Main()
	testscript.Main(m, map[string]func(){
		"standin": func() { os.Exit(runCommand()) },
	})
}

// TestScript runs the CLI transcripts in testdata/script. Each script gets
// its own data directory ($WORK/data); the command `serve` starts a real
// server on it (socket only) for the rest of the script.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("STANDIN_DATA_DIR", filepath.Join(env.WorkDir, "data"))
			env.Setenv("HOME", env.WorkDir)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"serve": cmdServeInProcess,
		},
	})
}

// cmdServeInProcess is the script command `serve [gvisor]`: without an
// argument the server has no sandbox runtime (records only); with gvisor it
// runs real sandboxes (root and bin/runsc needed, as in CI).
func cmdServeInProcess(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) > 1 || len(args) == 1 && args[0] != server.RuntimeGVisor {
		ts.Fatalf("usage: serve [gvisor]")
	}
	cfg := server.DefaultConfig()
	cfg.DataDir = ts.Getenv("STANDIN_DATA_DIR")
	cfg.Listen = "off"
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Runtime = server.RuntimeNone
	if len(args) == 1 {
		if os.Geteuid() != 0 {
			ts.Fatalf("serve gvisor runs sandboxes, which needs root; CI runs as root")
		}
		cfg.Runtime = server.RuntimeGVisor
		cfg.RunscPath = runscBin(ts)
	}
	logf, err := os.Create(filepath.Join(ts.Getenv("WORK"), "server.log"))
	ts.Check(err)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	s := &server.Server{
		Config: cfg,
		Logger: slog.New(slog.NewTextHandler(logf, nil)),
		Ready:  func(server.Addrs) { close(ready) },
	}
	go func() { done <- s.Run(ctx) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		ts.Fatalf("server did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		ts.Fatalf("server did not start within 30s")
	}
	ts.Defer(func() {
		cancel()
		<-done
		logf.Close()
	})
}

// runscBin finds bin/runsc at the root of the repository.
func runscBin(ts *testscript.TestScript) string {
	p, err := testutil.RunscPath()
	if err != nil {
		ts.Fatalf("%v", err)
	}
	return p
}

var _ io.Writer = (*os.File)(nil)
