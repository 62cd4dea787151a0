package namespaces

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/standin/standin/internal/sandbox"
	"github.com/standin/standin/internal/testutil"
)

// These tests run real sandboxes: they need root. Each test has its own
// state directory under tb.TempDir() and deletes its sandboxes when it ends.

// helperEnv makes the test binary act as something else than the tests
// (see helperMain).
const helperEnv = "STANDIN_NAMESPACES_TEST_HELPER"

func TestMain(m *testing.M) {
	Init() // the test binary is also the sandboxes' init
	if h := os.Getenv(helperEnv); h != "" {
		os.Exit(helperMain(h))
	}
	os.Exit(m.Run())
}

// helperMain runs the test binary as a stand-in for a daemon:
//
//	new:    New with a fresh state dir; prints its error
//	start:  Start a sandbox; prints whether the error is ErrUnavailable, and it
//	daemon: start a sandbox with `sleep` in the background, print the
//	        init's host pid, then wait to be killed
func helperMain(mode string) int {
	switch mode {
	case "new":
		dir, err := os.MkdirTemp("", "standin-ns-helper-")
		if err == nil {
			defer os.RemoveAll(dir)
			_, err = New(Config{StateDir: filepath.Join(dir, "state"), Logger: slog.New(slog.DiscardHandler)})
		}
		fmt.Println(err)
		return 0
	case "start":
		dir, err := os.MkdirTemp("", "standin-ns-helper-")
		if err != nil {
			fmt.Println(err)
			return 1
		}
		defer os.RemoveAll(dir)
		r, err := New(Config{StateDir: filepath.Join(dir, "state"), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			fmt.Println(err)
			return 1
		}
		in, err := r.Start(context.Background(), sandbox.Spec{ID: "helper"})
		if err == nil {
			in.Delete(context.Background())
		}
		fmt.Println(errors.Is(err, sandbox.ErrUnavailable), err)
		return 0
	case "daemon":
		r, err := New(Config{StateDir: os.Getenv("STATE_DIR"), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			fmt.Println(err)
			return 1
		}
		in, err := r.Start(context.Background(), sandbox.Spec{ID: "daemon"})
		if err != nil {
			fmt.Println(err)
			return 1
		}
		if code, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{"sh", "-c", "sleep 1000 >/dev/null 2>&1 &"}}); err != nil || code != 0 {
			fmt.Println(code, err)
			return 1
		}
		fmt.Println(in.(*Instance).cmd.Process.Pid)
		select {}
	}
	fmt.Fprintf(os.Stderr, "unknown %s %q\n", helperEnv, mode)
	return 2
}

// newRuntime returns a Runtime with its own state directory and the
// default spare init.
func newRuntime(tb testing.TB) *Runtime {
	tb.Helper()
	return newRuntimeConfig(tb, Config{})
}

func newRuntimeConfig(tb testing.TB, cfg Config) *Runtime {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatal("these tests create namespaces, which needs root")
	}
	cfg.StateDir = tb.TempDir()
	cfg.Logger = slog.New(slog.DiscardHandler)
	r, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

// nsProcs returns the host pids of the processes in the PID namespace of
// process pid (pid included), with their command lines.
func nsProcs(tb testing.TB, pid int) []string {
	tb.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		tb.Fatalf("PID namespace of %d: %v", pid, err)
	}
	return procsIn(tb, "pid", ns)
}

// procsIn returns the processes whose namespace of kind (as in
// /proc/PID/ns/KIND) is ns.
func procsIn(tb testing.TB, kind, ns string) []string {
	tb.Helper()
	return testutil.Processes(tb, func(pid, _ string) bool {
		got, err := os.Readlink(filepath.Join("/proc", pid, "ns", kind))
		return err == nil && got == ns // else gone, or elsewhere
	})
}
