package gvisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/standin/standin/internal/sandbox"
	"github.com/standin/standin/internal/sandbox/agent"
	"github.com/standin/standin/internal/sandbox/sandboxtest"
	"github.com/standin/standin/internal/testutil"
)

// The promises every runtime keeps; what follows is gVisor's own.
func TestConformance(t *testing.T) {
	sandboxtest.Run(t, sandboxtest.Config{
		New: func(tb testing.TB) sandbox.Runtime { return newRuntime(tb) },
		// runsc's processes of the sandbox (the Sentry and the gofer) and
		// its bundle directory.
		Leftovers: func(tb testing.TB, in sandbox.Instance) func() []string {
			r, bundle := in.(*Instance).rt, in.(*Instance).bundle
			procs := func() []string {
				var procs []string
				for _, p := range runscProcs(tb, r.Root()) {
					if strings.Contains(p, " --bundle="+bundle+" ") {
						procs = append(procs, p)
					}
				}
				return procs
			}
			if len(procs()) == 0 {
				tb.Fatalf("no runsc process found for the running sandbox %q", in.ID())
			}
			return func() []string {
				left := procs()
				if _, err := os.Stat(bundle); err == nil {
					left = append(left, "bundle "+bundle)
				}
				return left
			}
		},
		// The state dir: runsc's root, the bundles.
		Hidden:    func(r sandbox.Runtime) []string { return []string{filepath.Dir(r.(*Runtime).Root())} },
		DrainIdle: agent.DrainIdle,
		Gaps: sandboxtest.Gaps{
			// runsc would make a missing mount target on the host, as
			// root: the runtime refuses such a Spec instead.
			MissingMountTargets: true,
		},
	})
}

// A daemon that restarts finds the sandboxes of the previous one and
// removes them, but not its own.
func TestCleanup(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	old, err := New(Config{Runsc: testutil.RunscBin(t), StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	stale := sandboxtest.Start(t, old, sandbox.Spec{})

	r, err := New(Config{Runsc: testutil.RunscBin(t), StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	mine := sandboxtest.Start(t, r, sandbox.Spec{})
	before := len(runscProcs(t, r.Root()))

	removed, err := r.Cleanup(context.Background())
	if err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if diff := cmp.Diff([]string{stale.ID()}, removed); diff != "" {
		t.Errorf("Cleanup removed (-want +got):\n%s", diff)
	}
	after := len(runscProcs(t, r.Root()))
	if after == 0 || after >= before {
		t.Errorf("runsc processes: %d before Cleanup, %d after; want fewer, not none", before, after)
	}
	if got := sandboxtest.Cmd(t, mine, "echo", "alive"); got.Stdout != "alive\n" {
		t.Errorf("own sandbox after Cleanup: %+v", got)
	}
	if removed, err := r.Cleanup(context.Background()); err != nil || len(removed) != 0 {
		t.Errorf("second Cleanup = %q, %v; want nothing", removed, err)
	}
}

// A Start that fails in runsc (here, on a network namespace that does not
// exist) leaves no bundle, and the running sandboxes alone.
func TestStartFailure(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := sandboxtest.Start(t, r, sandbox.Spec{})

	spec := sandbox.Spec{ID: sandboxtest.ID(), NetNS: "/run/netns/standin-no-such-ns"}
	if _, err := r.Start(context.Background(), spec); err == nil {
		t.Fatal("Start with a missing netns succeeded")
	}
	if procs := runscProcs(t, r.Root()); len(procs) == 0 {
		t.Error("the running sandbox's processes are gone")
	}
	if got := sandboxtest.Cmd(t, in, "echo", "alive"); got.Stdout != "alive\n" {
		t.Errorf("running sandbox after a failed Start: %+v", got)
	}
	if _, err := os.Stat(filepath.Join(r.bundles, spec.ID)); err == nil {
		t.Error("bundle left after a failed Start")
	}
}

func TestNewErrors(t *testing.T) {
	_, err := New(Config{Runsc: filepath.Join(t.TempDir(), "runsc"), StateDir: t.TempDir()})
	if !errors.Is(err, sandbox.ErrUnavailable) || !strings.Contains(err.Error(), "make runsc") {
		t.Errorf("New(missing runsc) = %v, want ErrUnavailable saying `make runsc`", err)
	}
	_, err = New(Config{Runsc: testutil.RunscBin(t), StateDir: t.TempDir(), Overlay: "disk"})
	if !errors.Is(err, sandbox.ErrInvalidSpec) {
		t.Errorf("New(Overlay: disk) = %v, want ErrInvalidSpec", err)
	}
}

// runsc's host processes get a clean environment, not the daemon's (which
// may hold the master key).
func TestRunscEnvironment(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	sandboxtest.Start(t, r, sandbox.Spec{})
	procs := runscProcs(t, r.Root())
	if len(procs) == 0 {
		t.Fatal("no runsc process found")
	}
	for _, p := range procs {
		pid, _, _ := strings.Cut(p, ":")
		b, err := os.ReadFile(filepath.Join("/proc", pid, "environ"))
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") {
			// runsc passes its own RUNSC_* variables to its children.
			if kv != defaultPath && !strings.HasPrefix(kv, "RUNSC_") {
				t.Errorf("environment of %s has %q, want only PATH and RUNSC_*", p, kv)
			}
		}
	}
}

// The writable layer can live on disk instead of in memory.
func TestOverlayDir(t *testing.T) {
	t.Parallel()
	overlay := filepath.Join(t.TempDir(), "overlay")
	r, err := New(Config{Runsc: testutil.RunscBin(t), StateDir: t.TempDir(), Overlay: overlay, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	dir := sandboxtest.HostDir(t)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	in := sandboxtest.Start(t, r, sandbox.Spec{})
	f := filepath.Join(dir, "new")
	if got := sandboxtest.Sh(t, in, "head -c 1000000 /dev/zero > "+f+" && wc -c < "+f); got.Stdout != "1000000\n" {
		t.Errorf("write to the overlay = %+v, want 1000000 bytes", got)
	}
	if _, err := os.Stat(f); err == nil {
		t.Errorf("%s written through to the host", f)
	}
	if got := sandboxtest.Sh(t, in, "ls -A "+overlay); got != (sandboxtest.Result{}) {
		t.Errorf("overlay dir visible inside: %+v", got)
	}
}

// Delete leaves no zombie of runsc's processes in the daemon, which is
// their reaper (see reap.go), and the runtime knew both of them.
func TestDeleteReaps(t *testing.T) {
	r := newRuntime(t)
	ctx := context.Background()
	sb, err := r.Start(ctx, sandbox.Spec{ID: sandboxtest.ID()})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	in := sb.(*Instance)
	if in.sandbox == nil || in.gofer == nil {
		t.Fatalf("sandbox process %v, gofer %v: want both read from runsc's state", in.sandbox, in.gofer)
	}
	pids := []int{in.sandbox.pid, in.gofer.pid}
	for _, pid := range pids {
		if ppid := parentPID(t, pid); ppid != os.Getpid() {
			t.Errorf("parent of runsc process %d = %d, want this process %d (a child subreaper)", pid, ppid, os.Getpid())
		}
	}
	if err := in.Delete(ctx); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, pid := range pids {
		// A zombie still has its /proc entry.
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after Delete, stat /proc/%d: %v, want it gone (reaped)", pid, err)
		}
	}
}

// parentPID reads the parent of pid from /proc.
func parentPID(tb testing.TB, pid int) int {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// pid (comm) state ppid ...: comm may hold spaces, so from the last ")".
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		tb.Fatalf("parse /proc/%d/stat: %v", pid, err)
	}
	return ppid
}
