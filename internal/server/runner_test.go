package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/api"
	"github.com/standin/standin/internal/sandbox"
	"github.com/standin/standin/internal/sandbox/netns"
	"github.com/standin/standin/internal/store"
)

// failingRuntime refuses every start, after the namespace, stack and files
// were made: what a runsc failure looks like to the runner.
type failingRuntime struct {
	starts atomic.Int32
	netns  atomic.Pointer[string] // the namespace the last start was given
}

func (f *failingRuntime) Name() string { return "failing" }

func (f *failingRuntime) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Instance, error) {
	f.starts.Add(1)
	f.netns.Store(&spec.NetNS)
	if _, err := os.Stat(spec.NetNS); err != nil {
		return nil, fmt.Errorf("test runtime: netns: %w", err)
	}
	return nil, errors.New("test runtime: runsc failed")
}

// newTestRunner opens a data dir and builds a runner with rt on it.
func newTestRunner(tb testing.TB, rt sandbox.Runtime) (*runner, *Data) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatal("this test makes network namespaces, which needs root; CI runs as root")
	}
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(tb.TempDir(), "data")
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	d := openData(tb, cfg.DataDir)
	tb.Cleanup(func() { d.Close() })
	logger := slog.New(slog.DiscardHandler)
	gw, _, err := newGateway(cfg, d, logger)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { gw.Close() })
	return newRunner(rt, gw, d.Store, cfg.DataDir, logger), d
}

// TestStartFailureLeavesNothing: when the runtime fails, POST /v1/sandboxes
// answers an error and leaves no record, namespace or file behind.
func TestStartFailureLeavesNothing(t *testing.T) {
	rt := &failingRuntime{}
	run, d := newTestRunner(t, rt)
	h := (&api.Server{Store: d.Store, Vault: d.Vault, Minter: d.Minter, Token: "test-token-0123456789abcdef0123",
		Logger: slog.New(slog.DiscardHandler), Sandboxes: run}).Handler()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := client.New(srv.URL, "test-token-0123456789abcdef0123")
	ctx := context.Background()

	_, err := c.CreateSandbox(ctx, client.SandboxCreate{Name: "sb"})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusInternalServerError || ae.Code != api.CodeStartFailed {
		t.Fatalf("CreateSandbox with a failing runtime = %v, want 500 %s", err, api.CodeStartFailed)
	}
	if rt.starts.Load() != 1 {
		t.Fatalf("runtime Start called %d times, want 1", rt.starts.Load())
	}
	if _, err := d.Store.GetSandbox(ctx, "sb"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSandbox after the failed start = %v, want not found", err)
	}
	// Only this start's namespace is checked: other test binaries make
	// and delete theirs under the same prefix in parallel.
	if p := rt.netns.Load(); p == nil || *p == "" {
		t.Errorf("the runtime was given no namespace")
	} else if _, err := os.Stat(*p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s after the failed start: stat = %v, want not exist", *p, err)
	}
	if ents, _ := os.ReadDir(run.sandboxesDir()); len(ents) != 0 {
		t.Errorf("%s holds %d entries after the failed start, want none", run.sandboxesDir(), len(ents))
	}
	if run.Running("") || len(run.live) != 0 {
		t.Errorf("runner still tracks %d sandboxes", len(run.live))
	}
	// A name freed by the failure can be used again.
	if _, err := c.CreateSandbox(ctx, client.SandboxCreate{Name: "sb"}); !errors.As(err, &ae) || ae.Code != api.CodeStartFailed {
		t.Errorf("second CreateSandbox = %v, want %s again (not already_exists)", err, api.CodeStartFailed)
	}
}

// TestCleanupLeftovers: what a killed server left (namespace, files, a
// record in state running) is removed at the next start and the record
// becomes "stopped"; another server's namespace is left alone.
func TestCleanupLeftovers(t *testing.T) {
	run, d := newTestRunner(t, &failingRuntime{})
	ctx := context.Background()
	id := fmt.Sprintf("sbx_cleanup%d", time.Now().UnixNano())
	if err := d.Store.CreateSandbox(ctx, &store.Sandbox{ID: id, Name: "old", State: stateRunning, CreatedAt: time.Now()}, nil); err != nil {
		t.Fatal(err)
	}
	theirs := fmt.Sprintf("%sother%d", nsPrefix, os.Getpid())
	for _, n := range []string{nsName(id), theirs} {
		ns, err := netns.Create(n, netns.Config{})
		if err != nil {
			t.Fatal(err)
		}
		ns.TUN.Close()
		t.Cleanup(func() { netns.Remove(n) })
	}
	files := filepath.Join(run.sandboxesDir(), id)
	if err := os.MkdirAll(files, 0o700); err != nil {
		t.Fatal(err)
	}

	if err := run.cleanup(ctx); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	names, err := netns.List(nsPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, nsName(id)) {
		t.Errorf("namespace %s of this data dir survived cleanup", nsName(id))
	}
	if !slices.Contains(names, theirs) {
		t.Errorf("namespace %s of another server was removed", theirs)
	}
	if _, err := os.Stat(files); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat %s after cleanup = %v, want not exist", files, err)
	}
	sb, err := d.Store.GetSandbox(ctx, "old")
	if err != nil || sb.State != stateStopped {
		t.Errorf("record after cleanup = %+v, %v; want state %q", sb, err, stateStopped)
	}
	if _, err := run.Exec(ctx, id, sandbox.ExecSpec{Args: []string{"true"}}); !errors.Is(err, api.ErrNotRunning) {
		t.Errorf("Exec on a stopped sandbox = %v, want ErrNotRunning", err)
	}
}

// TestRuntimeUnavailable: a server that cannot run sandboxes says how to
// fix it, or to opt out with runtime none.
func TestRuntimeUnavailable(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.RunscPath = filepath.Join(t.TempDir(), "no-runsc")
	_, err := newRuntime(cfg, slog.New(slog.DiscardHandler))
	if !errors.Is(err, sandbox.ErrUnavailable) {
		t.Fatalf("newRuntime with a missing runsc = %v, want ErrUnavailable", err)
	}
	for _, want := range []string{"make runsc", `"runtime": "none"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("newRuntime error %q does not mention %q", err, want)
		}
	}
	cfg.Runtime = RuntimeNone
	if rt, err := newRuntime(cfg, nil); rt != nil || err != nil {
		t.Errorf("newRuntime with runtime none = %v, %v; want nil, nil", rt, err)
	}
}
