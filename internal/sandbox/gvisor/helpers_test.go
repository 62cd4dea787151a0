package gvisor

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/standin/standin/internal/sandbox/sandboxtest"
)

// These tests run real sandboxes: they need root and bin/runsc (`make
// runsc`). Each test has its own runsc root and state under tb.TempDir(),
// and deletes its sandboxes when it ends.

// runscBin finds bin/runsc at the root of the repository.
func runscBin(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		p := filepath.Join(dir, "bin", "runsc")
		if _, err := os.Stat(filepath.Join(dir, "tools", "runsc", "go.mod")); err == nil {
			if _, err := os.Stat(p); err != nil {
				tb.Fatalf("%s is missing: run `make runsc` (or `make test`, which builds it)", p)
			}
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("repository root (with tools/runsc) not found above the working directory")
		}
		dir = parent
	}
}

// newRuntime returns a Runtime with its own state directory.
func newRuntime(tb testing.TB) *Runtime {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatal("these tests run runsc, which needs root")
	}
	r, err := New(Config{Runsc: runscBin(tb), StateDir: tb.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return r
}

// runscProcs returns the host processes of runsc commands and sandboxes
// that use root, by their command lines (zombies have none and are not
// counted).
func runscProcs(tb testing.TB, root string) []string {
	tb.Helper()
	return sandboxtest.Processes(tb, func(_, cmdline string) bool {
		return strings.Contains(cmdline, "--root="+root+" ")
	})
}
