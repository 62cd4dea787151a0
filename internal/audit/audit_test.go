package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/standin/standin/internal/store"
	"github.com/standin/standin/internal/testutil"
)

// fakeStore is an Appender that keeps batches in memory and can fail.
type fakeStore struct {
	mu      sync.Mutex
	batches [][]store.Activity
	calls   int
	// fail, if set, is asked before each call (1-based) whether it fails.
	fail func(call int) error
	// called gets one value per AppendActivity call, successful or not.
	called chan struct{}
}

func newFakeStore() *fakeStore { return &fakeStore{called: make(chan struct{}, 1<<16)} }

func (f *fakeStore) AppendActivity(ctx context.Context, recs []store.Activity) error {
	defer func() { f.called <- struct{}{} }()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	// A real store fails on a cancelled context; so does this one, so a
	// Writer that writes with the cancelled Run context loses records.
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.fail != nil {
		if err := f.fail(f.calls); err != nil {
			return err
		}
	}
	f.batches = append(f.batches, slices.Clone(recs))
	return nil
}

func (f *fakeStore) sizes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for _, b := range f.batches {
		out = append(out, len(b))
	}
	return out
}

func (f *fakeStore) all() []store.Activity {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.Activity
	for _, b := range f.batches {
		out = append(out, b...)
	}
	return out
}

func (f *fakeStore) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// waitStored waits until f holds n records. The deadline only stops a
// broken Writer from hanging the suite; nothing asserts on elapsed time.
func (f *fakeStore) waitStored(tb testing.TB, n int) {
	tb.Helper()
	deadline := time.After(20 * time.Second)
	for len(f.all()) < n {
		select {
		case <-f.called:
		case <-deadline:
			tb.Fatalf("stored %d records, want %d", len(f.all()), n)
		}
	}
}

// waitCalls waits until f saw n AppendActivity calls.
func (f *fakeStore) waitCalls(tb testing.TB, n int) {
	tb.Helper()
	deadline := time.After(20 * time.Second)
	for f.callCount() < n {
		select {
		case <-f.called:
		case <-deadline:
			tb.Fatalf("saw %d store calls, want %d", f.callCount(), n)
		}
	}
}

func testLogger() (*slog.Logger, *testutil.SyncBuffer) {
	var buf testutil.SyncBuffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

// start runs w.Run and returns a stop func that cancels it and returns
// Run's error. Cleanup stops it too.
func start(tb testing.TB, w *Writer) (stop func() error) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-errc
		})
		return err
	}
	tb.Cleanup(func() { stop() })
	return stop
}

func rec(i int) store.Activity {
	return store.Activity{
		Time:        time.Unix(1700000000, int64(i)).UTC(),
		SecretID:    "sec_1",
		SecretName:  "anthropic",
		SandboxID:   "sbx_1",
		SandboxName: "agent",
		Method:      "POST",
		Host:        "api.anthropic.com",
		Path:        fmt.Sprintf("/v1/messages/%d", i),
		Status:      200,
		Latency:     time.Duration(i) * time.Millisecond,
		BytesIn:     int64(i),
		BytesOut:    int64(2 * i),
		Outcome:     "swapped",
	}
}

func paths(recs []store.Activity) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Path)
	}
	return out
}

func wantPaths(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, rec(i).Path)
	}
	return out
}

func TestBatchBySize(t *testing.T) {
	fs := newFakeStore()
	w := &Writer{Store: fs, BatchSize: 10, FlushInterval: time.Hour}
	for i := range 25 {
		w.Record(rec(i))
	}
	start(t, w)
	fs.waitStored(t, 20)
	if diff := cmp.Diff([]int{10, 10}, fs.sizes()); diff != "" {
		t.Errorf("batch sizes before Flush (-want +got):\n%s", diff)
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatalf("Flush = %v", err)
	}
	if diff := cmp.Diff([]int{10, 10, 5}, fs.sizes()); diff != "" {
		t.Errorf("batch sizes after Flush (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantPaths(0, 25), paths(fs.all())); diff != "" {
		t.Errorf("stored records (-want +got):\n%s", diff)
	}
}

func TestBatchByTime(t *testing.T) {
	fs := newFakeStore()
	w := &Writer{Store: fs, BatchSize: 1000, FlushInterval: time.Millisecond}
	start(t, w)
	for i := range 3 {
		w.Record(rec(i))
	}
	// No Flush: only the interval can write these.
	fs.waitStored(t, 3)
	if diff := cmp.Diff(wantPaths(0, 3), paths(fs.all())); diff != "" {
		t.Errorf("stored records (-want +got):\n%s", diff)
	}
	for _, n := range fs.sizes() {
		if n >= 1000 {
			t.Errorf("batch of %d records, want fewer than BatchSize", n)
		}
	}
}

func TestFlush(t *testing.T) {
	fs := newFakeStore()
	w := &Writer{Store: fs, BatchSize: 1000, FlushInterval: time.Hour}
	start(t, w)
	if err := w.Flush(t.Context()); err != nil {
		t.Fatalf("Flush of nothing = %v", err)
	}
	if n := fs.callCount(); n != 0 {
		t.Errorf("Flush of nothing made %d store calls, want 0", n)
	}
	total := 0
	for round, n := range []int{1, 7, 0, 300} {
		for range n {
			w.Record(rec(total))
			total++
		}
		if err := w.Flush(t.Context()); err != nil {
			t.Fatalf("round %d: Flush = %v", round, err)
		}
		// Flush has returned: everything recorded so far must be there,
		// without waiting.
		if diff := cmp.Diff(wantPaths(0, total), paths(fs.all())); diff != "" {
			t.Fatalf("round %d: stored after Flush (-want +got):\n%s", round, diff)
		}
	}
}

func TestFlushWithoutRun(t *testing.T) {
	w := &Writer{Store: newFakeStore()}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := w.Flush(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush without Run = %v, want context.Canceled", err)
	}
}

func TestShutdownFlush(t *testing.T) {
	fs := newFakeStore()
	log, buf := testLogger()
	w := &Writer{Store: fs, BatchSize: 1000, FlushInterval: time.Hour, Logger: log}
	stop := start(t, w)
	for i := range 7 {
		w.Record(rec(i))
	}
	// fakeStore fails on a cancelled context, so this also checks the
	// final write does not use Run's (cancelled) context.
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if diff := cmp.Diff(wantPaths(0, 7), paths(fs.all())); diff != "" {
		t.Errorf("stored at shutdown (-want +got):\n%s", diff)
	}
	if err := w.Flush(t.Context()); !errors.Is(err, ErrStopped) {
		t.Errorf("Flush after Run = %v, want ErrStopped", err)
	}
	w.Record(rec(7))
	if n := w.Dropped(); n != 1 {
		t.Errorf("Dropped after Record on a stopped Writer = %d, want 1", n)
	}
	if !strings.Contains(buf.String(), "audit records dropped") {
		t.Errorf("log = %q, want a drop warning", buf.String())
	}
}

func TestRunTwice(t *testing.T) {
	w := &Writer{Store: newFakeStore()}
	stop := start(t, w)
	if err := w.Flush(t.Context()); err != nil { // Run is up
		t.Fatal(err)
	}
	if err := w.Run(t.Context()); err == nil {
		t.Error("second Run = nil, want an error")
	}
	if err := stop(); err != nil {
		t.Errorf("first Run = %v", err)
	}
}

func TestDropWhenFull(t *testing.T) {
	fs := newFakeStore()
	log, buf := testLogger()
	w := &Writer{Store: fs, FlushInterval: time.Hour, Logger: log, queueSize: 4}
	// Run is not started yet, so nothing drains the queue.
	for i := range 10 {
		w.Record(rec(i))
	}
	if n := w.Dropped(); n != 6 {
		t.Errorf("Dropped = %d, want 6", n)
	}
	if n := strings.Count(buf.String(), "audit records dropped"); n != 1 {
		t.Errorf("log has %d drop warnings, want 1 (rate-limited):\n%s", n, buf.String())
	}
	start(t, w)
	if err := w.Flush(t.Context()); err != nil {
		t.Fatalf("Flush = %v", err)
	}
	if diff := cmp.Diff(wantPaths(0, 4), paths(fs.all())); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
}

var errStore = errors.New("database is locked")

func TestStoreErrorRetried(t *testing.T) {
	fs := newFakeStore()
	fs.fail = func(call int) error {
		if call <= 2 {
			return errStore
		}
		return nil
	}
	log, buf := testLogger()
	w := &Writer{Store: fs, FlushInterval: time.Hour, Logger: log, retryBase: time.Microsecond}
	start(t, w)
	for i := range 3 {
		w.Record(rec(i))
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatalf("Flush = %v, want nil after retries", err)
	}
	if n := fs.callCount(); n != 3 {
		t.Errorf("store calls = %d, want 3", n)
	}
	if diff := cmp.Diff(wantPaths(0, 3), paths(fs.all())); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
	if n := strings.Count(buf.String(), "audit write failed, retrying"); n != 2 {
		t.Errorf("log has %d retry lines, want 2:\n%s", n, buf.String())
	}
	if w.Dropped() != 0 {
		t.Errorf("Dropped = %d, want 0", w.Dropped())
	}
}

func TestStoreErrorDrops(t *testing.T) {
	fs := newFakeStore()
	var mu sync.Mutex // guards fail
	fail := true
	fs.fail = func(int) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return errStore
		}
		return nil
	}
	log, buf := testLogger()
	w := &Writer{Store: fs, FlushInterval: time.Hour, Logger: log, retryBase: time.Microsecond}
	start(t, w)
	for i := range 3 {
		w.Record(rec(i))
	}
	if err := w.Flush(t.Context()); !errors.Is(err, errStore) {
		t.Fatalf("Flush = %v, want %v", err, errStore)
	}
	if n := fs.callCount(); n != writeAttempts {
		t.Errorf("store calls = %d, want %d", n, writeAttempts)
	}
	if n := w.Dropped(); n != 3 {
		t.Errorf("Dropped = %d, want 3", n)
	}
	if !strings.Contains(buf.String(), "audit records lost") {
		t.Errorf("log = %q, want a lost-records error", buf.String())
	}

	// The Writer keeps going once the store recovers.
	mu.Lock()
	fail = false
	mu.Unlock()
	for i := 3; i < 5; i++ {
		w.Record(rec(i))
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatalf("Flush after recovery = %v", err)
	}
	if diff := cmp.Diff(wantPaths(3, 5), paths(fs.all())); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
}

// TestShutdownDuringRetry: a batch waiting for its retry when Run is
// cancelled is written by the final flush, not lost.
func TestShutdownDuringRetry(t *testing.T) {
	fs := newFakeStore()
	fs.fail = func(call int) error {
		if call == 1 {
			return errStore
		}
		return nil
	}
	w := &Writer{Store: fs, BatchSize: 3, FlushInterval: time.Hour, retryBase: time.Hour}
	stop := start(t, w)
	for i := range 3 {
		w.Record(rec(i))
	}
	fs.waitCalls(t, 1) // the failed attempt; the retry is an hour away
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if diff := cmp.Diff(wantPaths(0, 3), paths(fs.all())); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
	if w.Dropped() != 0 {
		t.Errorf("Dropped = %d, want 0", w.Dropped())
	}
}

func TestFinalFlushError(t *testing.T) {
	fs := newFakeStore()
	fs.fail = func(int) error { return errStore }
	w := &Writer{Store: fs, FlushInterval: time.Hour, retryBase: time.Microsecond}
	stop := start(t, w)
	w.Record(rec(0))
	if err := stop(); !errors.Is(err, errStore) {
		t.Fatalf("Run = %v, want %v", err, errStore)
	}
	if n := w.Dropped(); n != 1 {
		t.Errorf("Dropped = %d, want 1", n)
	}
}

func TestConcurrentRecord(t *testing.T) {
	const goroutines, each = 8, 500
	fs := newFakeStore()
	w := &Writer{Store: fs, BatchSize: 64, FlushInterval: time.Millisecond}
	start(t, w)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				w.Record(rec(g*each + i))
			}
		})
	}
	wg.Wait()
	if err := w.Flush(t.Context()); err != nil {
		t.Fatalf("Flush = %v", err)
	}
	got := paths(fs.all())
	slices.Sort(got)
	want := wantPaths(0, goroutines*each)
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
	for _, n := range fs.sizes() {
		if n > 64 {
			t.Errorf("batch of %d records, want at most BatchSize 64", n)
		}
	}
}

func TestSQLiteStore(t *testing.T) {
	ctx := t.Context()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "standin.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := &Writer{Store: st, BatchSize: 100, FlushInterval: time.Hour}
	stop := start(t, w)

	var want []store.Activity
	for i := range 250 {
		r := rec(i)
		r.SecretID = fmt.Sprintf("sec_%d", i%2)
		want = append(want, r)
		w.Record(r)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("Flush = %v", err)
	}
	list := func() []store.Activity {
		t.Helper()
		got, err := st.ListActivity(ctx, store.ActivityQuery{Limit: store.MaxActivityLimit})
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, func(a, b store.Activity) int { return int(a.ID - b.ID) })
		return got
	}
	opts := cmpopts.IgnoreFields(store.Activity{}, "ID")
	if diff := cmp.Diff(want, list(), opts); diff != "" {
		t.Errorf("stored after Flush (-want +got):\n%s", diff)
	}

	for i := 250; i < 255; i++ {
		want = append(want, rec(i))
		w.Record(rec(i))
	}
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if diff := cmp.Diff(want, list(), opts); diff != "" {
		t.Errorf("stored after shutdown (-want +got):\n%s", diff)
	}
}

type discardStore struct{}

func (discardStore) AppendActivity(context.Context, []store.Activity) error { return nil }

func BenchmarkRecord(b *testing.B) {
	w := &Writer{Store: discardStore{}, Logger: slog.New(slog.DiscardHandler)}
	start(b, w)
	r := rec(1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.Record(r)
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(w.Dropped())/float64(b.N), "dropped/op")
}

// TestQueueBoundCountsWriting: records being written count against the
// queue's bound, so no more than queueSize records are ever held.
func TestQueueBoundCountsWriting(t *testing.T) {
	fs := newFakeStore()
	entered, release := make(chan struct{}), make(chan struct{})
	fs.fail = func(call int) error {
		if call == 1 {
			close(entered)
			<-release
		}
		return nil
	}
	w := &Writer{Store: fs, BatchSize: 2, FlushInterval: time.Hour, queueSize: 4}
	start(t, w)
	w.Record(rec(0))
	w.Record(rec(1)) // a full batch: Run writes it, and the store holds it
	<-entered
	for i := 2; i < 6; i++ {
		w.Record(rec(i))
	}
	if n := w.Dropped(); n != 2 {
		t.Errorf("Dropped with 2 records being written and 2 queued = %d, want 2", n)
	}
	close(release)
	if err := w.Flush(t.Context()); err != nil {
		t.Fatalf("Flush = %v", err)
	}
	if diff := cmp.Diff(wantPaths(0, 4), paths(fs.all())); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
}

// TestShutdownWhileRecording: records made while Run shuts down are each
// either stored by the final flush or counted as dropped; none vanishes.
func TestShutdownWhileRecording(t *testing.T) {
	const goroutines, each = 4, 2000
	fs := newFakeStore()
	w := &Writer{Store: fs, BatchSize: 50, FlushInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)}
	stop := start(t, w)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				w.Record(rec(g*each + i))
			}
		})
	}
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	wg.Wait()
	stored := len(fs.all())
	if got := int64(stored) + w.Dropped(); got != goroutines*each {
		t.Errorf("stored %d + dropped %d = %d, want %d", stored, w.Dropped(), got, goroutines*each)
	}
	for _, n := range fs.sizes() {
		if n > 50 {
			t.Errorf("batch of %d records, want at most BatchSize 50", n)
		}
	}
}

// TestSQLiteStoreError: a batch the store refuses is reported, not lost in
// silence: Flush returns the error, Dropped counts the records, the log
// says how many were lost. Closing the store makes every insert fail.
func TestSQLiteStoreError(t *testing.T) {
	st, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "standin.db"))
	if err != nil {
		t.Fatal(err)
	}
	log, buf := testLogger()
	w := &Writer{Store: st, BatchSize: 10, FlushInterval: time.Hour, Logger: log, retryBase: time.Microsecond}
	stop := start(t, w)
	for i := range 5 {
		w.Record(rec(i))
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatalf("Flush = %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 5; i < 30; i++ {
		w.Record(rec(i))
	}
	if err := w.Flush(t.Context()); err == nil {
		t.Fatal("Flush into a closed store = nil, want an error")
	}
	if n := w.Dropped(); n != 25 {
		t.Errorf("Dropped = %d, want 25", n)
	}
	if n := strings.Count(buf.String(), "audit records lost"); n != 3 {
		t.Errorf("log has %d lost-records lines, want 3 (batches of 10, 10, 5):\n%s", n, buf.String())
	}
	w.Record(rec(30))
	if err := stop(); err == nil {
		t.Error("Run with a failing final flush = nil, want an error")
	}
	if n := w.Dropped(); n != 26 {
		t.Errorf("Dropped after the final flush = %d, want 26", n)
	}
}

// TestIntervalAfterWrite: records that arrive while a full batch is being
// written, too few for a batch of their own, are written by the interval
// without a Flush.
func TestIntervalAfterWrite(t *testing.T) {
	fs := newFakeStore()
	entered, release := make(chan struct{}), make(chan struct{})
	fs.fail = func(call int) error {
		if call == 1 {
			close(entered)
			<-release
		}
		return nil
	}
	w := &Writer{Store: fs, BatchSize: 2, FlushInterval: time.Millisecond}
	start(t, w)
	w.Record(rec(0))
	w.Record(rec(1))
	<-entered
	w.Record(rec(2))
	close(release)
	fs.waitStored(t, 3)
	if diff := cmp.Diff(wantPaths(0, 3), paths(fs.all())); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
}
