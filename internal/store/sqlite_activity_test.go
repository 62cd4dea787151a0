package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// activityFixture appends records for two secrets and returns them with
// their IDs, oldest first.
func activityFixture(tb testing.TB, s *SQLite) []Activity {
	tb.Helper()
	mk := func(i int, secret, sandbox string, status int) Activity {
		return Activity{
			Time: t0.Add(time.Duration(i) * time.Minute), SecretID: "sec_" + secret, SecretName: secret,
			SandboxID: "sb_" + sandbox, SandboxName: sandbox, Method: "GET", Host: "api.github.com",
			Path: fmt.Sprintf("/r/%d", i), Status: status, UpstreamStatus: status, Latency: time.Duration(i) * time.Millisecond,
			BytesIn: int64(i), BytesOut: int64(10 * i), Outcome: "swapped", Reason: "",
		}
	}
	recs := []Activity{
		mk(0, "gh", "web", 200),
		mk(1, "gh", "api", 404),
		mk(2, "oa", "web", 200),
		mk(3, "gh", "web", 502),
		mk(4, "gh", "web", 201),
		mk(5, "gh", "api", 403),
	}
	recs[5].Outcome, recs[5].Reason = "refused", "host not in allowlist"
	if err := s.AppendActivity(context.Background(), recs); err != nil {
		tb.Fatalf("AppendActivity = %v", err)
	}
	return recs
}

func TestActivityFilters(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	recs := activityFixture(t, s)
	for i := 1; i < len(recs); i++ {
		if recs[i].ID <= recs[i-1].ID {
			t.Fatalf("ids not increasing: %d then %d", recs[i-1].ID, recs[i].ID)
		}
	}
	pick := func(idx ...int) []Activity {
		var out []Activity
		for _, i := range idx {
			out = append(out, recs[i])
		}
		return out
	}

	tests := []struct {
		name string
		q    ActivityQuery
		want []Activity
	}{
		{"secret newest first", ActivityQuery{SecretID: "sec_gh"}, pick(5, 4, 3, 1, 0)},
		{"all secrets", ActivityQuery{}, pick(5, 4, 3, 2, 1, 0)},
		{"other secret", ActivityQuery{SecretID: "sec_oa"}, pick(2)},
		{"unknown secret", ActivityQuery{SecretID: "sec_nope"}, nil},
		{"sandbox", ActivityQuery{SecretID: "sec_gh", SandboxName: "api"}, pick(5, 1)},
		{"2xx", ActivityQuery{SecretID: "sec_gh", StatusClass: 2}, pick(4, 0)},
		{"4xx", ActivityQuery{SecretID: "sec_gh", StatusClass: 4}, pick(5, 1)},
		{"5xx", ActivityQuery{SecretID: "sec_gh", StatusClass: 5}, pick(3)},
		{"since inclusive", ActivityQuery{SecretID: "sec_gh", Since: recs[3].Time}, pick(5, 4, 3)},
		{"until exclusive", ActivityQuery{SecretID: "sec_gh", Until: recs[3].Time}, pick(1, 0)},
		{"since and until", ActivityQuery{SecretID: "sec_gh", Since: recs[1].Time, Until: recs[4].Time}, pick(3, 1)},
		{"limit", ActivityQuery{SecretID: "sec_gh", Limit: 2}, pick(5, 4)},
		{"before", ActivityQuery{SecretID: "sec_gh", Before: recs[3].ID}, pick(1, 0)},
		{"after oldest first", ActivityQuery{SecretID: "sec_gh", After: recs[1].ID}, pick(3, 4, 5)},
		{"after with limit", ActivityQuery{SecretID: "sec_gh", After: recs[0].ID, Limit: 2}, pick(1, 3)},
		{"after newest", ActivityQuery{SecretID: "sec_gh", After: recs[5].ID}, nil},
		{"combined", ActivityQuery{SecretID: "sec_gh", SandboxName: "web", StatusClass: 2, Since: recs[1].Time}, pick(4)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListActivity(ctx, tc.q)
			if err != nil {
				t.Fatalf("ListActivity(%+v) = %v", tc.q, err)
			}
			if diff := cmp.Diff(tc.want, got, equateEmpty); diff != "" {
				t.Errorf("ListActivity(%+v) mismatch (-want +got):\n%s", tc.q, diff)
			}
		})
	}
	if _, err := s.ListActivity(ctx, ActivityQuery{StatusClass: 10}); err == nil {
		t.Errorf("ListActivity(StatusClass 10) = nil error, want error")
	}
}

func TestActivityLimits(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	recs := make([]Activity, 1200)
	for i := range recs {
		recs[i] = Activity{Time: t0, SecretID: "sec_gh", SecretName: "gh", Status: 200}
	}
	if err := s.AppendActivity(ctx, recs); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		limit, want int
	}{
		{0, DefaultActivityLimit},
		{-1, DefaultActivityLimit},
		{5, 5},
		{5000, MaxActivityLimit},
	}
	for _, tc := range tests {
		got, err := s.ListActivity(ctx, ActivityQuery{SecretID: "sec_gh", Limit: tc.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.want {
			t.Errorf("ListActivity(Limit %d) returned %d records, want %d", tc.limit, len(got), tc.want)
		}
	}
}

func TestActivityCursorWalk(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	var recs []Activity
	for i := range 250 {
		secret := "gh"
		if i%3 == 0 {
			secret = "oa"
		}
		recs = append(recs, Activity{Time: t0.Add(time.Duration(i) * time.Second), SecretID: "sec_" + secret,
			SecretName: secret, Status: 200, Path: fmt.Sprint(i)})
	}
	// Several batches, so ids come from several transactions.
	for i := 0; i < len(recs); i += 64 {
		if err := s.AppendActivity(ctx, recs[i:min(i+64, len(recs))]); err != nil {
			t.Fatal(err)
		}
	}
	var want []int64
	for _, r := range recs {
		if r.SecretID == "sec_gh" {
			want = append(want, r.ID)
		}
	}

	// walk pages through the records from q until a page is empty, moving
	// the cursor with next, and returns the ids in the order seen.
	walk := func(q ActivityQuery, next func(q *ActivityQuery, last int64)) []int64 {
		t.Helper()
		var ids []int64
		for {
			page, err := s.ListActivity(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				return ids
			}
			for _, a := range page {
				ids = append(ids, a.ID)
			}
			next(&q, page[len(page)-1].ID)
		}
	}

	// Backwards with Before.
	back := walk(ActivityQuery{SecretID: "sec_gh", Limit: 7}, func(q *ActivityQuery, last int64) { q.Before = last })
	slices.Reverse(back)
	if diff := cmp.Diff(want, back); diff != "" {
		t.Errorf("Before walk mismatch (-want +got):\n%s", diff)
	}

	// Forwards with After (follow mode), starting from the oldest.
	// Record 0 belongs to "oa", so the oldest "gh" id is at least 2 and
	// After stays > 0 (0 would mean newest first).
	fwd := walk(ActivityQuery{SecretID: "sec_gh", Limit: 9, After: want[0] - 1}, func(q *ActivityQuery, last int64) { q.After = last })
	if diff := cmp.Diff(want, fwd); diff != "" {
		t.Errorf("After walk mismatch (-want +got):\n%s", diff)
	}
}

func TestPruneActivity(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	recs := activityFixture(t, s)
	n, err := s.PruneActivity(ctx, recs[2].Time)
	if err != nil || n != 2 {
		t.Fatalf("PruneActivity = %d, %v; want 2, nil", n, err)
	}
	got, _ := s.ListActivity(ctx, ActivityQuery{})
	if len(got) != 4 || got[len(got)-1].ID != recs[2].ID {
		t.Errorf("after prune: %d records, oldest %d; want 4, oldest %d", len(got), got[len(got)-1].ID, recs[2].ID)
	}
}

// TestAppendActivityBatches: batches around the size of one INSERT
// statement all land, every field intact, with the IDs AppendActivity set
// matching the stored rows, in order.
func TestAppendActivityBatches(t *testing.T) {
	ctx := context.Background()
	sizes := []int{1, activityRowsPerInsert - 1, activityRowsPerInsert, activityRowsPerInsert + 1,
		2*activityRowsPerInsert + 5, 256}
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s, _ := newStore(t)
			// A record before the batch, so ids do not simply start at 1.
			first := []Activity{{Time: t0, SecretID: "sec_x", Path: "/before"}}
			if err := s.AppendActivity(ctx, first); err != nil {
				t.Fatal(err)
			}
			recs := make([]Activity, n)
			for i := range recs {
				recs[i] = Activity{
					Time: t0.Add(time.Duration(i) * time.Millisecond), SecretID: fmt.Sprintf("sec_%d", i%3),
					SecretName: fmt.Sprintf("s%d", i%3), SandboxID: "sb_1", SandboxName: "web", Method: "POST",
					Host: "api.example.com", Path: fmt.Sprintf("/r/%d", i), Status: 200 + i%5, UpstreamStatus: 200,
					Latency: time.Duration(i) * time.Microsecond, BytesIn: int64(i), BytesOut: int64(3 * i),
					Outcome: "swapped", Reason: fmt.Sprintf("reason %d", i),
				}
			}
			if err := s.AppendActivity(ctx, recs); err != nil {
				t.Fatalf("AppendActivity(%d records) = %v", n, err)
			}
			for i, r := range recs {
				if want := first[0].ID + 1 + int64(i); r.ID != want {
					t.Fatalf("record %d: ID %d, want %d", i, r.ID, want)
				}
			}
			got, err := s.ListActivity(ctx, ActivityQuery{After: first[0].ID, Limit: MaxActivityLimit})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(recs, got); diff != "" {
				t.Errorf("stored records (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAppendActivityFailure: a record that fails to insert fails its whole
// batch with an error, stores none of it and sets no IDs, whichever
// statement of the batch it is in.
func TestAppendActivityFailure(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := s.w.ExecContext(ctx, `CREATE TRIGGER activity_fail BEFORE INSERT ON activity
		WHEN NEW.path = '/fail' BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END`); err != nil {
		t.Fatal(err)
	}
	const n = 2*activityRowsPerInsert + 3
	for _, bad := range []int{0, activityRowsPerInsert + 2, n - 1} {
		t.Run(fmt.Sprint(bad), func(t *testing.T) {
			recs := make([]Activity, n)
			for i := range recs {
				recs[i] = Activity{Time: t0, SecretID: "sec_gh", Path: fmt.Sprintf("/r/%d", i)}
			}
			recs[bad].Path = "/fail"
			err := s.AppendActivity(ctx, recs)
			if err == nil || !strings.Contains(err.Error(), "refused by test trigger") {
				t.Fatalf("AppendActivity with record %d failing = %v, want the trigger's error", bad, err)
			}
			for i, r := range recs {
				if r.ID != 0 {
					t.Fatalf("record %d: ID %d after a failed batch, want 0", i, r.ID)
				}
			}
			got, err := s.ListActivity(ctx, ActivityQuery{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 0 {
				t.Errorf("ListActivity after a failed batch: %d records, want 0", len(got))
			}
		})
	}
	// The prepared statements still work after the rollbacks.
	ok := []Activity{{Time: t0, SecretID: "sec_gh", Path: "/ok"}}
	if err := s.AppendActivity(ctx, ok); err != nil {
		t.Fatalf("AppendActivity after failures = %v", err)
	}
}
