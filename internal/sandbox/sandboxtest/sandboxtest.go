// Package sandboxtest checks that a sandbox.Runtime keeps the promises of
// package sandbox: Run is one conformance suite that every backend's tests
// call, so that a Spec means the same, and isolates as much, under each.
// Tests of what only one backend has (runsc's flags, the seccomp filter,
// spare inits, cleanup of leftovers) stay in that backend's package.
//
// The suite runs real sandboxes: it needs root, and starts each top-level
// case in parallel with its own Runtime. It touches the host only in ways
// it undoes: directories under /var/cache (which sandboxes see; /tmp is
// their own), network namespaces named stintest-*, and listeners on
// loopback. No AF_VSOCK socket is ever connected (on these machines one
// reaches the hypervisor's host): the suite only creates them, and expects
// that to be refused.
//
// The helpers (Start, Exec, Sh, ...) are for the backends' own tests too.
package sandboxtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/standin/standin/internal/sandbox"
)

// Config describes the Runtime under test.
type Config struct {
	// New returns a Runtime with state of its own, released when tb ends.
	// Required.
	New func(tb testing.TB) sandbox.Runtime

	// Leftovers is called while the sandbox in runs, with commands of it
	// running in the background, and returns a function that lists what of
	// it is on the host: processes, files, mounts (one string each). The
	// suite calls that function before Delete, when the list must not be
	// empty (else checking it afterwards proves nothing), and after Delete,
	// when it must be. Required.
	Leftovers func(tb testing.TB, in sandbox.Instance) func() []string

	// Hidden returns the host paths r hides from every sandbox besides
	// Spec.Hide (its own state, say), which must look empty inside. If
	// nil, there are none.
	Hidden func(r sandbox.Runtime) []string

	// DrainIdle is how long Exec keeps copying output that has gone idle
	// after the command exited (a background process may hold it open).
	// Output written before the exit must still arrive in full through a
	// writer slower than that. Required.
	DrainIdle time.Duration

	// Gaps are the runtime's known departures from what the suite checks.
	// The zero value checks everything.
	Gaps Gaps
}

// Gaps lists what a runtime is known to do differently from the rest, each
// a bug to fix in the runtime rather than a choice. A gap turns off the one
// assertion it names, which then logs what it saw instead; the rest of the
// case still runs.
type Gaps struct {
	// MissingMountTargets: a Mount whose Target is missing on the host (or
	// a dangling symlink there) is refused at Start with ErrInvalidSpec,
	// rather than made in the sandbox's own layer (runsc would make it on
	// the host's filesystem). Nothing may be made on the host either way.
	MissingMountTargets bool

	// ExecDirUnnamed: Exec with a Dir missing inside fails, but the error
	// does not name the Dir.
	ExecDirUnnamed bool
}

// Run runs the conformance suite on the Runtimes cfg.New returns, one
// subtest per promise.
func Run(t *testing.T, cfg Config) {
	if cfg.New == nil || cfg.Leftovers == nil || cfg.DrainIdle <= 0 {
		t.Fatal("sandboxtest.Config needs New, Leftovers and DrainIdle")
	}
	if os.Geteuid() != 0 {
		t.Fatal("the sandbox conformance suite runs real sandboxes, which needs root")
	}
	s := &suite{cfg: cfg}
	for _, c := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"Exec", s.testExec},
		{"ExecStdio", s.testExecStdio},
		{"ExecErrors", s.testExecErrors},
		{"ExecSlowWriter", s.testExecSlowWriter},
		{"ExecConcurrent", s.testExecConcurrent},
		{"TTY", s.testTTY},
		{"Filesystem", s.testFilesystem},
		{"Hide", s.testHide},
		{"Mounts", s.testMounts},
		{"Privileges", s.testPrivileges},
		{"Processes", s.testProcesses},
		{"Sockets", s.testSockets},
		{"DaemonUnreachable", s.testDaemonUnreachable},
		{"Network", s.testNetwork},
		{"Delete", s.testDelete},
		{"DeleteDuringExec", s.testDeleteDuringExec},
		{"StartErrors", s.testStartErrors},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t)
		})
	}
}

type suite struct {
	cfg Config
}

var idSeq atomic.Int64

// ID returns a sandbox ID unique on this machine for this process.
func ID() string {
	return fmt.Sprintf("test-%d-%d", os.Getpid(), idSeq.Add(1))
}

// Start starts a sandbox that is deleted when the test ends. An empty
// spec.ID is set to a new ID().
func Start(tb testing.TB, r sandbox.Runtime, spec sandbox.Spec) sandbox.Instance {
	tb.Helper()
	if spec.ID == "" {
		spec.ID = ID()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in, err := r.Start(ctx, spec)
	if err != nil {
		tb.Fatalf("Start: %v", err)
	}
	tb.Cleanup(func() {
		if err := in.Delete(context.Background()); err != nil {
			tb.Errorf("Delete: %v", err)
		}
	})
	return in
}

// Result is what a command did.
type Result struct {
	Stdout, Stderr string
	Exit           int
}

// Exec runs spec in the sandbox, its output in the Result, and fails the
// test if it cannot be run.
func Exec(tb testing.TB, in sandbox.Instance, spec sandbox.ExecSpec) Result {
	tb.Helper()
	var stdout, stderr bytes.Buffer
	spec.Stdout, spec.Stderr = &stdout, &stderr
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, err := in.Exec(ctx, spec)
	if err != nil {
		tb.Fatalf("Exec(%q): %v", spec.Args, err)
	}
	return Result{Stdout: stdout.String(), Stderr: stderr.String(), Exit: code}
}

// Cmd runs args in the sandbox.
func Cmd(tb testing.TB, in sandbox.Instance, args ...string) Result {
	tb.Helper()
	return Exec(tb, in, sandbox.ExecSpec{Args: args})
}

// Sh runs a shell script in the sandbox.
func Sh(tb testing.TB, in sandbox.Instance, script string) Result {
	tb.Helper()
	return Cmd(tb, in, "sh", "-c", script)
}

// Python runs a python3 program in the sandbox: the host's python3, seen
// read-only.
func Python(tb testing.TB, in sandbox.Instance, program string) Result {
	tb.Helper()
	return Cmd(tb, in, "/usr/bin/python3", "-c", program)
}

// HostDir makes a directory that sandboxes see (not under /tmp or
// /var/tmp, which are empty inside), removed when the test ends.
func HostDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("/var/cache", "standin-sandbox-test-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// WriteFile writes a file with exactly mode (no umask).
func WriteFile(tb testing.TB, path, content string, mode os.FileMode) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		tb.Fatal(err)
	}
}

// BenchExec measures one command's round trip in a running sandbox of r.
func BenchExec(b *testing.B, r sandbox.Runtime) {
	in := Start(b, r, sandbox.Spec{})
	ctx := context.Background()
	for b.Loop() {
		if code, err := in.Exec(ctx, sandbox.ExecSpec{Args: []string{"true"}}); err != nil || code != 0 {
			b.Fatalf("Exec(true) = %d, %v", code, err)
		}
	}
}

// WriterFunc is an io.Writer made of a function.
type WriterFunc func([]byte) (int, error)

func (f WriterFunc) Write(p []byte) (int, error) { return f(p) }
