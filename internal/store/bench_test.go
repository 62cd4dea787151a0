package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/standin/standin/internal/testutil"
)

func BenchmarkCreateBinding(b *testing.B) {
	ctx := context.Background()
	s, _ := newStore(b)
	mustCreateSecret(b, s, "gh")
	mustCreateSandbox(b, s, "sb")
	for i := 0; b.Loop(); i++ {
		bd := testBinding("sb", fmt.Sprintf("E%d", i), "gh")
		if err := s.CreateBinding(ctx, &bd); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBindingByHash(b *testing.B) {
	ctx := context.Background()
	s, _ := newStore(b)
	mustCreateSecret(b, s, "gh")
	const n = 1000
	bs := make([]Binding, n)
	for i := range bs {
		bs[i] = testBinding("sb", fmt.Sprintf("E%d", i), "gh")
	}
	mustCreateSandbox(b, s, "sb", bs...)
	for i := 0; b.Loop(); i++ {
		if _, err := s.BindingByHash(ctx, bs[i%n].StandInHash); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendActivity stores batches of the sizes the audit writer
// hands over: a full batch (256), a timer flush of a few records, and one.
// "one-by-one" is the insert before issue 3 (one statement per record,
// prepared per batch), kept here so one run compares both. cpu-ns/rec
// counts the process's CPU time, which a shared machine disturbs less than
// wall time.
func BenchmarkAppendActivity(b *testing.B) {
	impls := []struct {
		name   string
		append func(*SQLite, context.Context, []Activity) error
	}{
		{"one-by-one", (*SQLite).appendActivityOneByOne},
		{"batched", (*SQLite).AppendActivity},
	}
	for _, size := range []int{256, 37, 1} {
		for _, impl := range impls {
			b.Run(fmt.Sprintf("%s/batch=%d", impl.name, size), func(b *testing.B) {
				ctx := context.Background()
				s, _ := newStore(b)
				recs := make([]Activity, size)
				for i := range recs {
					recs[i] = Activity{Time: t0, SecretID: "sec_gh", SecretName: "gh", SandboxID: "sb_1", SandboxName: "sb",
						Method: "POST", Host: "api.github.com", Path: fmt.Sprintf("/graphql/%d", i), Status: 200,
						UpstreamStatus: 200, Latency: 1234567, BytesIn: 512, BytesOut: 4096, Outcome: "swapped"}
				}
				b.ReportAllocs()
				cpu0 := testutil.CPUTime(b)
				for b.Loop() {
					if err := impl.append(s, ctx, recs); err != nil {
						b.Fatal(err)
					}
				}
				n := float64(b.N * size)
				b.ReportMetric(n/b.Elapsed().Seconds(), "recs/s")
				b.ReportMetric(float64((testutil.CPUTime(b)-cpu0).Nanoseconds())/n, "cpu-ns/rec")
			})
		}
	}
}

// appendActivityOneByOne is AppendActivity as it was before issue 3: the
// benchmark's baseline.
func (s *SQLite) appendActivityOneByOne(ctx context.Context, recs []Activity) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append activity: %w", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, activityInsert(1))
	if err != nil {
		return fmt.Errorf("append activity: %w", err)
	}
	defer st.Close()
	for i := range recs {
		if _, err := st.ExecContext(ctx, appendActivityArgs(nil, &recs[i])...); err != nil {
			return fmt.Errorf("append activity: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append activity: %w", err)
	}
	return nil
}
