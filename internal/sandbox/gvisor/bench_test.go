package gvisor

import (
	"context"
	"testing"
	"time"

	"github.com/standin/standin/internal/sandbox"
	"github.com/standin/standin/internal/sandbox/sandboxtest"
)

// BenchmarkStart measures a sandbox start up to the end of its first
// command, the latency a user sees; Delete is timed separately.
func BenchmarkStart(b *testing.B) {
	r := newRuntime(b)
	ctx := context.Background()
	var deleting time.Duration
	for b.Loop() {
		in, err := r.Start(ctx, sandbox.Spec{ID: sandboxtest.ID()})
		if err != nil {
			b.Fatal(err)
		}
		if code, err := in.Exec(ctx, sandbox.ExecSpec{Args: []string{"true"}}); err != nil || code != 0 {
			b.Fatalf("Exec(true) = %d, %v", code, err)
		}
		b.StopTimer()
		t0 := time.Now()
		if err := in.Delete(ctx); err != nil {
			b.Fatal(err)
		}
		deleting += time.Since(t0)
		b.StartTimer()
	}
	b.ReportMetric(float64(deleting.Milliseconds())/float64(b.N), "delete-ms/op")
}

// BenchmarkExec measures one command's round trip in a running sandbox.
func BenchmarkExec(b *testing.B) { sandboxtest.BenchExec(b, newRuntime(b)) }
