package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/sandbox"
	"github.com/standin/standin/internal/sandbox/netns"
	"github.com/standin/standin/internal/store"
	"github.com/standin/standin/internal/testutil"
)

// waitUntil polls cond until it holds; it fails the test after a minute.
// It waits for background work to finish, it times nothing.
func waitUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("still not %s after a minute", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPool: a create takes a pre-started sandbox, which then follows its
// owner's rules (its DNS answers what they allow and nothing else) and is
// replaced in the pool; a pooled sandbox with no owner answers no DNS;
// shutting down removes the pool's sandboxes with the rest.
func TestPool(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.RunscPath = testutil.RunscBin(t)
	rt, err := newRuntime(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(runtimeStateDir(cfg.DataDir)) })
	run, d := newTestRunner(t, rt)
	ctx := context.Background()
	run.startPool(1)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			run.stopAll(ctx)
		}
	})
	waitUntil(t, "one sandbox in the pool", func() bool { return len(run.pool) == 1 })

	// Unowned: no DNS answer, even for a name any rule would allow.
	pooled := <-run.pool
	var out strings.Builder
	code, err := pooled.inst.Exec(ctx, sandbox.ExecSpec{Args: []string{"getent", "hosts", "api.corp.test"}, Stdout: &out})
	if err != nil || code == 0 {
		t.Errorf("getent hosts in an unowned pooled sandbox = %d, %v, %q; want a failure", code, err, out.String())
	}
	run.pool <- pooled

	id := fmt.Sprintf("sbx_pool%d", time.Now().UnixNano())
	sb := &store.Sandbox{ID: id, Name: "pooled", CreatedAt: time.Now(),
		Network: client.NetworkRules{AllowOut: []string{"api.corp.test"}, DenyOut: []string{"0.0.0.0/0", "::/0"}}}
	if err := d.Store.CreateSandbox(ctx, sb, nil); err != nil {
		t.Fatal(err)
	}
	if err := run.Start(ctx, sb); err != nil {
		t.Fatalf("Start: %v", err)
	}
	r := run.live[id]
	if r == nil || !strings.HasPrefix(r.inst.ID(), "pool-") || r.owner() != id {
		t.Fatalf("Start did not take the pooled sandbox: %+v", r)
	}
	for _, tt := range []struct {
		name string
		ok   bool
	}{{"api.corp.test", true}, {"evil.example", false}} {
		code, err := run.Exec(ctx, id, sandbox.ExecSpec{Args: []string{"getent", "hosts", tt.name}})
		if err != nil || (code == 0) != tt.ok {
			t.Errorf("getent hosts %s in the sandbox = %d, %v; want success %v (its owner's rules)", tt.name, code, err, tt.ok)
		}
	}
	waitUntil(t, "the pool refilled", func() bool { return len(run.pool) == 1 })
	next := <-run.pool
	run.pool <- next
	if next.inst.ID() == r.inst.ID() {
		t.Fatalf("pool refilled with the sandbox it gave away")
	}

	run.stopAll(ctx)
	stopped = true
	names, err := netns.List(nsPrefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, inst := range []string{r.inst.ID(), next.inst.ID()} {
		if slices.Contains(names, nsName(inst)) {
			t.Errorf("namespace of %s left after shutdown", inst)
		}
	}
	if procs := testutil.RunscProcs(t, runtimeStateDir(cfg.DataDir)); len(procs) != 0 {
		t.Errorf("runsc processes after shutdown:\n%s", strings.Join(procs, "\n"))
	}
}

// benchRuntime is the runtime the sandbox benchmarks use: gvisor, or the
// one STANDIN_BENCH_RUNTIME names (namespaces).
func benchRuntime() string {
	if rt := os.Getenv("STANDIN_BENCH_RUNTIME"); rt != "" {
		return rt
	}
	return RuntimeGVisor
}

// BenchmarkSandboxLifecyclePool is BenchmarkSandboxLifecycle with a pool
// of one: create -> first exec (`true`) finished, through the API, for 50
// sandboxes one after another, each taken from the pool. Between creates
// it waits (untimed) for the pool to refill, as a server with a pool sized
// for its create rate would be.
func BenchmarkSandboxLifecyclePool(b *testing.B) {
	cfg := sandboxConfig(b)
	cfg.Runtime = benchRuntime()
	cfg.Pool = 1
	runc := make(chan *runner, 1)
	c, stop := startServerHook(b, cfg, func(r *runner) { runc <- r })
	b.Cleanup(stop)
	run := <-runc
	ctx := context.Background()
	const n = 50
	var starts, creates []time.Duration
	b.ResetTimer()
	for i := range n {
		b.StopTimer()
		waitUntil(b, "one sandbox in the pool", func() bool { return len(run.pool) == 1 })
		b.StartTimer()
		name := fmt.Sprintf("pool-%d", i)
		t0 := time.Now()
		if _, err := c.CreateSandbox(ctx, client.SandboxCreate{Name: name}); err != nil {
			b.Fatalf("CreateSandbox(%q): %v", name, err)
		}
		creates = append(creates, time.Since(t0))
		if got := execIn(b, c, name, client.ExecRequest{Args: []string{"true"}}); got.Exit != 0 {
			b.Fatalf("true in %q = %+v", name, got)
		}
		starts = append(starts, time.Since(t0))
		b.StopTimer()
		if err := c.DeleteSandbox(ctx, name); err != nil {
			b.Fatalf("DeleteSandbox(%q): %v", name, err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	reportPercentiles(b, "start-", starts)
	reportPercentiles(b, "create-", creates)
}
