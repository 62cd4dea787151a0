package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrSchemaTooNew is returned by OpenSQLite for a database written by a
// newer standin: an older binary must not guess at tables it does not know.
var ErrSchemaTooNew = errors.New("database schema is newer than this binary")

// SQLite is the embedded Store. It keeps two pools on one file: a single
// writer connection, so writes are serialized in Go instead of failing with
// SQLITE_BUSY, and a few query-only readers, which WAL lets run alongside
// the writer.
type SQLite struct {
	w   *sql.DB
	r   *sql.DB
	act activityStmts // prepared on w
}

var _ Store = (*SQLite)(nil)

//go:embed migrations/*.sql
var migrationFS embed.FS

// dsn builds the driver name for path. The _pragma parameters are run on
// every new connection, so no pooled connection ever runs without them:
// synchronous=FULL makes a commit wait for the WAL fsync, which is what lets
// the API acknowledge a write that then survives kill -9 or power loss.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		// Take the write lock at BEGIN: a deferred transaction that reads
		// then writes can fail with SQLITE_BUSY without waiting if another
		// process wrote in between.
		q.Set("_txlock", "immediate")
	}
	// A file: URI (not a bare path) so a '?' or '#' in the path is escaped
	// instead of being taken for the start of the parameters.
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	return u.String()
}

// OpenSQLite opens (creating it 0600 if needed) the database at path and
// applies pending migrations.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	if path == "" {
		return nil, errors.New("open store: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	if err := createPrivate(abs); err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}

	w, err := sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}

	// Readers are opened after the writer has switched the file to WAL.
	r, err := sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	act, err := prepareActivity(ctx, w)
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	return &SQLite{w: w, r: r, act: act}, nil
}

// createPrivate makes sure the database file exists with mode 0600 before
// SQLite opens it. SQLite gives the -wal and -shm files the database file's
// mode, so they are private too.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err == nil && fi.Mode().Perm() != 0o600 {
		// Also corrects a file created by hand or under a loose umask:
		// it holds sealed secrets and stand-in hashes.
		err = f.Chmod(0o600)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close closes the database.
func (s *SQLite) Close() error {
	return errors.Join(s.act.close(), s.r.Close(), s.w.Close())
}

type migration struct {
	version int
	name    string
	sql     string
}

// migrations reads the embedded migration files, named NNNN_what.sql and
// numbered from 1 without gaps.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %q: name must start with a positive number and '_'", e.Name())
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %q: version %d, want %d", m.name, m.version, i+1)
		}
	}
	return ms, nil
}

// SchemaVersion is the schema version this binary creates and understands.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// migrate applies pending migrations in one transaction: either the
// database is brought fully up to date or it is left as it was.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	latest := ms[len(ms)-1].version

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var cur int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if cur > latest {
		return fmt.Errorf("schema version %d, this binary knows up to %d: %w (upgrade standin)", cur, latest, ErrSchemaTooNew)
	}
	for _, m := range ms[cur:] {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("migrate %q: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.version, m.name, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("migrate %q: %w", m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// sqliteCode returns the extended result code of err, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation on
// column (as "table.column", matched against SQLite's message, which names
// the columns of the violated constraint).
func isUnique(err error, column string) bool {
	switch sqliteCode(err) {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return strings.Contains(err.Error(), column)
	}
	return false
}

func isForeignKey(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// nanos and fromNanos store times as unix nanoseconds UTC, 0 meaning the
// zero time (whose UnixNano is not representable).
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// GetMeta returns a plain (unsealed) meta value.
func (s *SQLite) GetMeta(ctx context.Context, key string) ([]byte, error) {
	return s.getMeta(ctx, key, false)
}

// GetSealedMeta returns a sealed meta value stored with PutSealedMeta.
func (s *SQLite) GetSealedMeta(ctx context.Context, key string) ([]byte, error) {
	return s.getMeta(ctx, key, true)
}

func (s *SQLite) getMeta(ctx context.Context, key string, sealed bool) ([]byte, error) {
	var v []byte
	err := s.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ? AND sealed = ?`, key, sealed).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("meta %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get meta %q: %w", key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// PutMeta stores a plain meta value, replacing any value under key.
func (s *SQLite) PutMeta(ctx context.Context, key string, val []byte) error {
	return s.putMeta(ctx, key, val, false, "")
}

// PutSealedMeta stores a sealed meta value, replacing any value under key.
// Rewrap and KeyIDs include it.
func (s *SQLite) PutSealedMeta(ctx context.Context, key string, sealed []byte, keyID string) error {
	return s.putMeta(ctx, key, sealed, true, keyID)
}

func (s *SQLite) putMeta(ctx context.Context, key string, val []byte, sealed bool, keyID string) error {
	if key == "" {
		return errors.New("put meta: empty key")
	}
	if val == nil {
		val = []byte{} // the driver binds nil as NULL
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO meta (key, value, sealed, key_id) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, sealed = excluded.sealed, key_id = excluded.key_id`,
		key, val, sealed, keyID)
	if err != nil {
		return fmt.Errorf("put meta %q: %w", key, err)
	}
	return nil
}

// KeyIDs lists, sorted, the distinct non-empty master key ids of secrets
// and sealed meta values.
func (s *SQLite) KeyIDs(ctx context.Context) ([]string, error) {
	ids, err := queryAll(ctx, s.r, func(sc scanner) (id string, err error) {
		err = sc.Scan(&id)
		return id, err
	}, `SELECT key_id FROM secrets WHERE key_id != ''
		UNION SELECT key_id FROM meta WHERE sealed = 1 AND key_id != ''
		ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list key ids: %w", err)
	}
	return ids, nil
}

// Rewrap replaces every sealed blob (secrets, then sealed meta values, each
// in key order) by fn's result in one transaction. If fn or a write fails,
// nothing is changed: a half-rewrapped store would need both master keys.
func (s *SQLite) Rewrap(ctx context.Context, fn func(sealed []byte) (newSealed []byte, keyID string, err error)) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("rewrap: %w", err)
	}
	defer tx.Rollback()

	type blob struct {
		key    string // secret id or meta key
		label  string // for errors: secret name or meta key
		sealed []byte
	}
	// Read everything first: the rows are rewritten while we go.
	read := func(query string) ([]blob, error) {
		return queryAll(ctx, tx, func(sc scanner) (b blob, err error) {
			err = sc.Scan(&b.key, &b.label, &b.sealed)
			return b, err
		}, query)
	}
	secrets, err := read(`SELECT id, name, sealed FROM secrets ORDER BY id`)
	if err != nil {
		return fmt.Errorf("rewrap: read secrets: %w", err)
	}
	metas, err := read(`SELECT key, key, value FROM meta WHERE sealed = 1 ORDER BY key`)
	if err != nil {
		return fmt.Errorf("rewrap: read meta: %w", err)
	}

	for _, b := range secrets {
		out, keyID, err := fn(b.sealed)
		if err != nil {
			return fmt.Errorf("rewrap secret %q: %w", b.label, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE secrets SET sealed = ?, key_id = ? WHERE id = ?`, out, keyID, b.key); err != nil {
			return fmt.Errorf("rewrap secret %q: %w", b.label, err)
		}
	}
	for _, b := range metas {
		out, keyID, err := fn(b.sealed)
		if err != nil {
			return fmt.Errorf("rewrap meta %q: %w", b.label, err)
		}
		if out == nil {
			out = []byte{}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE meta SET value = ?, key_id = ? WHERE key = ?`, out, keyID, b.key); err != nil {
			return fmt.Errorf("rewrap meta %q: %w", b.label, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("rewrap: commit: %w", err)
	}
	return nil
}

// ReadKeyIDs returns KeyIDs of the database at path opened read-only, so a
// server can check its master key against the data before it opens the
// store for writing (and so, on a mismatch, changes nothing: no migration,
// no checkpoint, no new file). A missing file or an empty database has no
// key ids. The caller must have the database to itself (the data
// directory's lock): a cleanly closed database is read as an immutable
// file.
func ReadKeyIDs(ctx context.Context, path string) ([]string, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("read key ids: %w", err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "query_only(1)")
	// Closed cleanly, the database is all in its file, with no -wal beside
	// it; even read-only, SQLite would create a -wal and a -shm to read it.
	if _, err := os.Stat(path + "-wal"); errors.Is(err, os.ErrNotExist) {
		q.Set("immutable", "1")
	}
	u := url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("read key ids: %w", err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('secrets', 'meta')`).Scan(&n); err != nil {
		return nil, fmt.Errorf("read key ids: %w", err)
	}
	if n < 2 {
		return nil, nil
	}
	s := &SQLite{r: db}
	return s.KeyIDs(ctx)
}
