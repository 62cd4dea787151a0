package audit

import (
	"log/slog"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/standin/standin/internal/store"
	"github.com/standin/standin/internal/testutil"
)

// BenchmarkWriteSQLite is the whole write path: Record from the caller,
// batches written by Run into a SQLite store. A Flush every 256 records
// keeps the producer from outrunning the store (the gateway makes records
// far slower than Record takes them), so nothing is dropped. cpu-ns/rec
// counts the process's CPU time, the writer goroutine's included.
func BenchmarkWriteSQLite(b *testing.B) {
	st, err := store.OpenSQLite(b.Context(), filepath.Join(b.TempDir(), "standin.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	w := &Writer{Store: st, Logger: slog.New(slog.DiscardHandler)}
	start(b, w)
	r := rec(1)
	b.ReportAllocs()
	cpu0 := testutil.CPUTime(b)
	for i := 0; b.Loop(); i++ {
		w.Record(r)
		if i%256 == 255 {
			if err := w.Flush(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := w.Flush(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "recs/s")
	b.ReportMetric(float64((testutil.CPUTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/rec")
	if n := w.Dropped(); n != 0 {
		b.Fatalf("Dropped = %d, want 0", n)
	}
}

// BenchmarkGCWithWriter is the cost of one garbage collection while a
// running Writer holds a few records: what the Writer's memory adds to
// every GC cycle of the process (gc-cpu-ns/op: the runtime's count of GC
// CPU time, which a busy machine disturbs less than wall time).
func BenchmarkGCWithWriter(b *testing.B) {
	w := &Writer{Store: discardStore{}, FlushInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)}
	start(b, w)
	for i := range 10 {
		w.Record(rec(i))
	}
	gc := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(gc)
	gc0 := gc[0].Value.Float64()
	for b.Loop() {
		runtime.GC()
	}
	metrics.Read(gc)
	b.ReportMetric((gc[0].Value.Float64()-gc0)*1e9/float64(b.N), "gc-cpu-ns/op")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc), "heap-B")
	runtime.KeepAlive(w)
}
