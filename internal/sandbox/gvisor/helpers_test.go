package gvisor

import (
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/standin/standin/internal/testutil"
)

// These tests run real sandboxes: they need root and bin/runsc (`make
// runsc`). Each test has its own runsc root and state under tb.TempDir(),
// and deletes its sandboxes when it ends.

// newRuntime returns a Runtime with its own state directory.
func newRuntime(tb testing.TB) *Runtime {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatal("these tests run runsc, which needs root")
	}
	r, err := New(Config{Runsc: testutil.RunscBin(tb), StateDir: tb.TempDir(), Logger: slog.New(slog.DiscardHandler)})
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
	return testutil.Processes(tb, func(_, cmdline string) bool {
		return strings.Contains(cmdline, "--root="+root+" ")
	})
}
