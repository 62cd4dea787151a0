package namespaces

import (
	"context"
	"testing"
	"time"

	"github.com/standin/standin/internal/sandbox"
	"github.com/standin/standin/internal/sandbox/sandboxtest"
)

// BenchmarkStartExec measures a sandbox's whole life around one command:
// Start, `true`, Delete. start-exec-ms/op is the latency a user sees up to
// the end of the first command (what gvisor's BenchmarkStart measures),
// delete-ms/op the rest. "spare" waits (untimed) for the spare init to be
// ready before each Start, as it is when sandboxes are not started back to
// back; "cold" has no spares, so every Start starts its init.
func BenchmarkStartExec(b *testing.B) {
	for _, bb := range []struct {
		name   string
		spares int
	}{{"spare", 1}, {"cold", -1}} {
		b.Run(bb.name, func(b *testing.B) {
			r := newRuntimeConfig(b, Config{Spares: bb.spares})
			ctx := context.Background()
			var starting, deleting time.Duration
			for b.Loop() {
				b.StopTimer()
				waitSpares(b, r)
				b.StartTimer()
				t0 := time.Now()
				in, err := r.Start(ctx, sandbox.Spec{ID: sandboxtest.ID()})
				if err != nil {
					b.Fatal(err)
				}
				if code, err := in.Exec(ctx, sandbox.ExecSpec{Args: []string{"true"}}); err != nil || code != 0 {
					b.Fatalf("Exec(true) = %d, %v", code, err)
				}
				t1 := time.Now()
				if err := in.Delete(ctx); err != nil {
					b.Fatal(err)
				}
				starting += t1.Sub(t0)
				deleting += time.Since(t1)
			}
			b.ReportMetric(float64(starting.Microseconds())/1000/float64(b.N), "start-exec-ms/op")
			b.ReportMetric(float64(deleting.Microseconds())/1000/float64(b.N), "delete-ms/op")
		})
	}
}

// BenchmarkExec measures one command's round trip in a running sandbox.
func BenchmarkExec(b *testing.B) { sandboxtest.BenchExec(b, newRuntime(b)) }
