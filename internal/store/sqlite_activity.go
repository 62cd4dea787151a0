package store

import (
	"context"
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

// AppendActivity stores recs in one transaction and sets each record's ID.
func (s *SQLite) AppendActivity(ctx context.Context, recs []Activity) error {
	if len(recs) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append activity: %w", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT INTO activity (time, secret_id, secret_name, sandbox_id, sandbox_name,
		method, host, path, status, upstream_status, latency_ns, bytes_in, bytes_out, outcome, reason)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("append activity: %w", err)
	}
	defer st.Close()
	ids := make([]int64, len(recs))
	for i := range recs {
		a := &recs[i]
		res, err := st.ExecContext(ctx, nanos(a.Time), a.SecretID, a.SecretName, a.SandboxID, a.SandboxName,
			a.Method, a.Host, a.Path, a.Status, a.UpstreamStatus, int64(a.Latency), a.BytesIn, a.BytesOut,
			a.Outcome, a.Reason)
		if err != nil {
			return fmt.Errorf("append activity: %w", err)
		}
		if ids[i], err = res.LastInsertId(); err != nil {
			return fmt.Errorf("append activity: %w", err)
		}
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

	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list activity: %w", err)
	}
	defer rows.Close()
	var out []Activity
	for rows.Next() {
		var (
			a            Activity
			t, latencyNS int64
		)
		if err := rows.Scan(&a.ID, &t, &a.SecretID, &a.SecretName, &a.SandboxID, &a.SandboxName,
			&a.Method, &a.Host, &a.Path, &a.Status, &a.UpstreamStatus, &latencyNS, &a.BytesIn, &a.BytesOut,
			&a.Outcome, &a.Reason); err != nil {
			return nil, fmt.Errorf("list activity: %w", err)
		}
		a.Time = fromNanos(t)
		a.Latency = time.Duration(latencyNS)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list activity: %w", err)
	}
	return out, nil
}

// PruneActivity deletes records older than before (retention) and returns
// how many it deleted.
func (s *SQLite) PruneActivity(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM activity WHERE time < ?`, nanos(before))
	if err != nil {
		return 0, fmt.Errorf("prune activity: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune activity: %w", err)
	}
	return n, nil
}
