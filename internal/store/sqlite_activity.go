package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Limits of ActivityQuery.Limit.
const (
	DefaultActivityLimit = 100
	MaxActivityLimit     = 1000
)

const activityColumns = `id, time, secret_id, secret_name, sandbox_id, sandbox_name, method, host, path,
	status, upstream_status, latency_ns, bytes_in, bytes_out, outcome, reason`

// activityRowsPerInsert is how many records one INSERT statement carries.
// The gateway's audit writer hands over batches of up to 256, and the
// store was 8 % of the gateway's CPU on keep-alive (issue 3), much of it
// per statement: database/sql, the driver, starting SQLite's program.
// With 16 rows a statement and the statements prepared once, a batch of
// 256 costs about 37 % less CPU per record than one statement per record
// prepared per batch (BenchmarkAppendActivity). 64 or 256 rows measured no
// better: SQLite keeps a statement journal for a statement of many rows.
const activityRowsPerInsert = 16

const activityInsertColumns = `INSERT INTO activity (time, secret_id, secret_name, sandbox_id, sandbox_name,
	method, host, path, status, upstream_status, latency_ns, bytes_in, bytes_out, outcome, reason) VALUES `

// activityParams is the number of values one record binds.
const activityParams = 15

// activityInsert returns an INSERT of n records.
func activityInsert(n int) string {
	const row = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	return activityInsertColumns + strings.Repeat(row+`, `, n-1) + row
}

// activityStmts are the writer's prepared inserts, kept for the life of
// the store rather than prepared for every batch. The writer pool has one
// connection that never expires, so Tx.StmtContext finds them prepared on
// it (on another connection it would prepare them again, still correct).
type activityStmts struct {
	many *sql.Stmt // activityRowsPerInsert records
	one  *sql.Stmt // one record: the rest of a batch
}

func prepareActivity(ctx context.Context, w *sql.DB) (activityStmts, error) {
	many, err := w.PrepareContext(ctx, activityInsert(activityRowsPerInsert))
	if err != nil {
		return activityStmts{}, fmt.Errorf("prepare activity insert: %w", err)
	}
	one, err := w.PrepareContext(ctx, activityInsert(1))
	if err != nil {
		many.Close()
		return activityStmts{}, fmt.Errorf("prepare activity insert: %w", err)
	}
	return activityStmts{many: many, one: one}, nil
}

func (a activityStmts) close() error {
	if a.many == nil {
		return nil
	}
	return errors.Join(a.many.Close(), a.one.Close())
}

// appendActivityArgs appends the values rec binds, in activityInsert's
// column order.
func appendActivityArgs(args []any, a *Activity) []any {
	return append(args, nanos(a.Time), a.SecretID, a.SecretName, a.SandboxID, a.SandboxName,
		a.Method, a.Host, a.Path, a.Status, a.UpstreamStatus, int64(a.Latency), a.BytesIn, a.BytesOut,
		a.Outcome, a.Reason)
}

// AppendActivity stores recs in one transaction and sets each record's ID.
// IDs follow the order of recs and never go back (the table is
// AUTOINCREMENT), which is what lets a follower read on from the last id
// it saw.
func (s *SQLite) AppendActivity(ctx context.Context, recs []Activity) error {
	if len(recs) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append activity: %w", err)
	}
	defer tx.Rollback()
	many := tx.StmtContext(ctx, s.act.many)
	defer many.Close()
	one := tx.StmtContext(ctx, s.act.one)
	defer one.Close()

	ids := make([]int64, len(recs))
	args := make([]any, 0, activityParams*min(len(recs), activityRowsPerInsert))
	for i := 0; i < len(recs); {
		st, n := many, activityRowsPerInsert
		if len(recs)-i < n {
			st, n = one, 1
		}
		args = args[:0]
		for j := i; j < i+n; j++ {
			args = appendActivityArgs(args, &recs[j])
		}
		res, err := st.ExecContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("append activity: %w", err)
		}
		last, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("append activity: %w", err)
		}
		// SQLite gives a new AUTOINCREMENT row the largest rowid the table
		// ever had plus one, and this transaction holds the write lock:
		// the n rows of one statement got consecutive ids ending at last.
		// TestAppendActivityBatches checks them against the stored rows.
		for j := range n {
			ids[i+j] = last - int64(n-1-j)
		}
		i += n
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append activity: %w", err)
	}
	// Only now: a rolled-back batch must not look stored.
	for i := range recs {
		recs[i].ID = ids[i]
	}
	return nil
}

// ListActivity returns the records matching q: newest first, or, with
// q.After set, oldest first starting after that id. An empty q.SecretID
// matches every secret.
func (s *SQLite) ListActivity(ctx context.Context, q ActivityQuery) ([]Activity, error) {
	if q.StatusClass < 0 || q.StatusClass > 9 {
		return nil, fmt.Errorf("list activity: status class %d: want 0 (any) or 1 to 9", q.StatusClass)
	}
	var (
		where []string
		args  []any
	)
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
	}
	if q.SecretID != "" {
		add("secret_id = ?", q.SecretID)
	}
	if q.SandboxName != "" {
		add("sandbox_name = ?", q.SandboxName)
	}
	if q.StatusClass != 0 {
		// A range rather than status/100 so SQLite can compare directly.
		add("status >= ? AND status < ?", q.StatusClass*100, (q.StatusClass+1)*100)
	}
	if !q.Since.IsZero() {
		add("time >= ?", q.Since.UnixNano())
	}
	if !q.Until.IsZero() {
		add("time < ?", q.Until.UnixNano())
	}
	if q.Before > 0 {
		add("id < ?", q.Before)
	}
	order := "id DESC"
	if q.After > 0 {
		add("id > ?", q.After)
		order = "id ASC"
	}
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = DefaultActivityLimit
	case limit > MaxActivityLimit:
		limit = MaxActivityLimit
	}

	query := `SELECT ` + activityColumns + ` FROM activity`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY ` + order + ` LIMIT ?`
	args = append(args, limit)

	out, err := queryAll(ctx, s.r, scanActivity, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list activity: %w", err)
	}
	return out, nil
}

func scanActivity(sc scanner) (Activity, error) {
	var (
		a            Activity
		t, latencyNS int64
	)
	if err := sc.Scan(&a.ID, &t, &a.SecretID, &a.SecretName, &a.SandboxID, &a.SandboxName,
		&a.Method, &a.Host, &a.Path, &a.Status, &a.UpstreamStatus, &latencyNS, &a.BytesIn, &a.BytesOut,
		&a.Outcome, &a.Reason); err != nil {
		return Activity{}, err
	}
	a.Time = fromNanos(t)
	a.Latency = time.Duration(latencyNS)
	return a, nil
}

// PruneActivity deletes records older than before (retention) and returns
// how many it deleted.
func (s *SQLite) PruneActivity(ctx context.Context, before time.Time) (int64, error) {
	n, err := execCount(ctx, s.w, `DELETE FROM activity WHERE time < ?`, nanos(before))
	if err != nil {
		return 0, fmt.Errorf("prune activity: %w", err)
	}
	return n, nil
}
