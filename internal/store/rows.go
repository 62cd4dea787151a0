package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// scanner is *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// querier is *sql.DB or *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// execer is *sql.DB or *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// execCount runs a statement and returns how many rows it changed.
func execCount(ctx context.Context, ex execer, query string, args ...any) (int64, error) {
	res, err := ex.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// queryAll runs query and returns every row it selects, each read by scan.
// The caller adds what it was doing to the error.
func queryAll[T any](ctx context.Context, db querier, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// getRow reads row with scan. No row is ErrNotFound. The errors name the
// row by what and key: `sandbox id "sbx_1": not found`,
// `get sandbox id "sbx_1": <cause>`.
func getRow[T any](row *sql.Row, scan func(scanner) (T, error), what, key string) (*T, error) {
	v, err := scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s %q: %w", what, key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s %q: %w", what, key, err)
	}
	return &v, nil
}
