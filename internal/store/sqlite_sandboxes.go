package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/standin/standin/client"
)

const sandboxColumns = `id, name, state, network, created_at`

func scanSandbox(sc scanner) (Sandbox, error) {
	var (
		sb      Sandbox
		network string
		created int64
	)
	if err := sc.Scan(&sb.ID, &sb.Name, &sb.State, &network, &created); err != nil {
		return Sandbox{}, err
	}
	if err := json.Unmarshal([]byte(network), &sb.Network); err != nil {
		return Sandbox{}, fmt.Errorf("decode network of sandbox %q: %w", sb.Name, err)
	}
	sb.CreatedAt = fromNanos(created)
	return sb, nil
}

// CreateSandbox stores sb and bs in one transaction. A binding with an
// empty SandboxID gets sb.ID.
func (s *SQLite) CreateSandbox(ctx context.Context, sb *Sandbox, bs []Binding) error {
	if sb.ID == "" || sb.Name == "" {
		return fmt.Errorf("create sandbox %q: empty id or name", sb.Name)
	}
	for i := range bs {
		if bs[i].SandboxID == "" {
			bs[i].SandboxID = sb.ID
		}
		if bs[i].SandboxID != sb.ID {
			return fmt.Errorf("create sandbox %q: binding %q is for sandbox id %q", sb.Name, bs[i].EnvVar, bs[i].SandboxID)
		}
	}
	network, err := json.Marshal(sb.Network)
	if err != nil {
		return fmt.Errorf("create sandbox %q: encode network: %w", sb.Name, err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create sandbox %q: %w", sb.Name, err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, `INSERT INTO sandboxes (`+sandboxColumns+`) VALUES (?, ?, ?, ?, ?)`,
		sb.ID, sb.Name, sb.State, string(network), nanos(sb.CreatedAt))
	switch {
	case err == nil:
	case isUnique(err, "sandboxes.name"):
		return fmt.Errorf("sandbox name %q: %w", sb.Name, ErrConflict)
	case isUnique(err, "sandboxes.id"):
		return fmt.Errorf("sandbox id %q: %w", sb.ID, ErrConflict)
	default:
		return fmt.Errorf("create sandbox %q: %w", sb.Name, err)
	}
	for i := range bs {
		if err := insertBinding(ctx, tx, &bs[i]); err != nil {
			return fmt.Errorf("create sandbox %q: %w", sb.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create sandbox %q: %w", sb.Name, err)
	}
	return nil
}

// GetSandbox returns the sandbox called name.
func (s *SQLite) GetSandbox(ctx context.Context, name string) (*Sandbox, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+sandboxColumns+` FROM sandboxes WHERE name = ?`, name)
	return getRow(row, scanSandbox, "sandbox", name)
}

// GetSandboxByID returns the sandbox with id.
func (s *SQLite) GetSandboxByID(ctx context.Context, id string) (*Sandbox, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+sandboxColumns+` FROM sandboxes WHERE id = ?`, id)
	return getRow(row, scanSandbox, "sandbox id", id)
}

// ListSandboxes returns all sandboxes ordered by name.
func (s *SQLite) ListSandboxes(ctx context.Context) ([]Sandbox, error) {
	out, err := queryAll(ctx, s.r, scanSandbox, `SELECT `+sandboxColumns+` FROM sandboxes ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	return out, nil
}

// SetSandboxNetwork replaces the sandbox's network rules.
func (s *SQLite) SetSandboxNetwork(ctx context.Context, id string, n client.NetworkRules) error {
	network, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("set network of sandbox id %q: %w", id, err)
	}
	return s.updateSandbox(ctx, id, "set network of", `UPDATE sandboxes SET network = ? WHERE id = ?`, string(network), id)
}

// SetSandboxState records the sandbox's state.
func (s *SQLite) SetSandboxState(ctx context.Context, id, state string) error {
	return s.updateSandbox(ctx, id, "set state of", `UPDATE sandboxes SET state = ? WHERE id = ?`, state, id)
}

// DeleteSandbox removes the sandbox and, by cascade, its bindings. Its
// activity records stay (they carry the sandbox name).
func (s *SQLite) DeleteSandbox(ctx context.Context, id string) error {
	return s.updateSandbox(ctx, id, "delete", `DELETE FROM sandboxes WHERE id = ?`, id)
}

// updateSandbox runs a one-row statement on sandbox id; no row is
// ErrNotFound.
func (s *SQLite) updateSandbox(ctx context.Context, id, what, query string, args ...any) error {
	n, err := execCount(ctx, s.w, query, args...)
	if err != nil {
		return fmt.Errorf("%s sandbox id %q: %w", what, id, err)
	}
	if n == 0 {
		return fmt.Errorf("sandbox id %q: %w", id, ErrNotFound)
	}
	return nil
}

func insertBinding(ctx context.Context, ex execer, b *Binding) error {
	if b.ID == "" || b.SandboxID == "" || b.SecretID == "" || b.EnvVar == "" {
		return fmt.Errorf("create binding %q: empty id, sandbox id, secret id or env var", b.EnvVar)
	}
	if len(b.StandInHash) == 0 {
		return fmt.Errorf("create binding %q: empty stand-in hash", b.EnvVar)
	}
	_, err := ex.ExecContext(ctx, `INSERT INTO bindings
		(id, sandbox_id, env_var, secret_id, shape, attempt, standin_hash, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		b.ID, b.SandboxID, b.EnvVar, b.SecretID, b.Shape, b.Attempt, b.StandInHash, nanos(b.CreatedAt))
	switch {
	case err == nil:
		return nil
	case isUnique(err, "bindings.env_var"):
		return fmt.Errorf("env var %q in sandbox id %q: %w", b.EnvVar, b.SandboxID, ErrConflict)
	case isUnique(err, "bindings.standin_hash"):
		// Only a stand-in collision gets here; the minter retries with
		// the next attempt.
		return fmt.Errorf("binding %q: stand-in hash: %w", b.EnvVar, ErrConflict)
	case isUnique(err, "bindings.id"):
		return fmt.Errorf("binding id %q: %w", b.ID, ErrConflict)
	case isForeignKey(err):
		return fmt.Errorf("binding %q: sandbox id %q or secret id %q: %w", b.EnvVar, b.SandboxID, b.SecretID, ErrNotFound)
	}
	return fmt.Errorf("create binding %q: %w", b.EnvVar, err)
}

// CreateBinding stores b. ErrConflict if the env var is taken in that
// sandbox (or the stand-in hash is taken), ErrNotFound if the sandbox or
// secret does not exist.
func (s *SQLite) CreateBinding(ctx context.Context, b *Binding) error {
	return insertBinding(ctx, s.w, b)
}

// DeleteBinding removes the binding of envVar in the sandbox.
func (s *SQLite) DeleteBinding(ctx context.Context, sandboxID, envVar string) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete binding %q of sandbox id %q: %w", envVar, sandboxID, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, insertRevoked+` WHERE b.sandbox_id = ? AND b.env_var = ?`,
		nanos(time.Now()), sandboxID, envVar); err != nil {
		return fmt.Errorf("delete binding %q of sandbox id %q: remember revoked: %w", envVar, sandboxID, err)
	}
	n, err := execCount(ctx, tx, `DELETE FROM bindings WHERE sandbox_id = ? AND env_var = ?`, sandboxID, envVar)
	if err != nil {
		return fmt.Errorf("delete binding %q of sandbox id %q: %w", envVar, sandboxID, err)
	}
	if n == 0 {
		return fmt.Errorf("binding %q in sandbox id %q: %w", envVar, sandboxID, ErrNotFound)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete binding %q of sandbox id %q: %w", envVar, sandboxID, err)
	}
	return nil
}

// insertRevoked copies bindings (b, joined with their secret s) into
// revoked_bindings; the caller adds the WHERE clause. Its first parameter
// is the revocation time.
const insertRevoked = `INSERT OR REPLACE INTO revoked_bindings
	(standin_hash, sandbox_id, secret_id, secret_name, hosts, shape, revoked_at)
	SELECT b.standin_hash, b.sandbox_id, s.id, s.name, s.hosts, b.shape, ?
	FROM bindings b JOIN secrets s ON s.id = b.secret_id`

// ListRevoked returns every remembered revoked binding.
func (s *SQLite) ListRevoked(ctx context.Context) ([]Revoked, error) {
	out, err := queryAll(ctx, s.r, scanRevoked, `SELECT standin_hash, sandbox_id, secret_id, secret_name, hosts, shape, revoked_at FROM revoked_bindings`)
	if err != nil {
		return nil, fmt.Errorf("list revoked bindings: %w", err)
	}
	return out, nil
}

func scanRevoked(sc scanner) (Revoked, error) {
	var (
		r     Revoked
		hosts string
		at    int64
	)
	if err := sc.Scan(&r.StandInHash, &r.SandboxID, &r.SecretID, &r.SecretName, &hosts, &r.Shape, &at); err != nil {
		return Revoked{}, err
	}
	if err := json.Unmarshal([]byte(hosts), &r.Hosts); err != nil {
		return Revoked{}, fmt.Errorf("hosts: %w", err)
	}
	r.RevokedAt = fromNanos(at)
	return r, nil
}

const bindingSelect = `SELECT b.id, b.sandbox_id, b.env_var, b.secret_id, b.shape, b.attempt, b.standin_hash, b.created_at,
	sb.name, se.name
	FROM bindings b
	JOIN sandboxes sb ON sb.id = b.sandbox_id
	JOIN secrets se ON se.id = b.secret_id`

func scanBinding(sc scanner) (Binding, error) {
	var (
		b       Binding
		created int64
	)
	if err := sc.Scan(&b.ID, &b.SandboxID, &b.EnvVar, &b.SecretID, &b.Shape, &b.Attempt, &b.StandInHash, &created,
		&b.SandboxName, &b.SecretName); err != nil {
		return Binding{}, err
	}
	b.CreatedAt = fromNanos(created)
	return b, nil
}

// ListBindings returns the bindings of a sandbox or of a secret (both set:
// the one binding matching both; neither: all bindings), ordered by
// sandbox name then env var, with names filled in.
func (s *SQLite) ListBindings(ctx context.Context, sandboxID, secretID string) ([]Binding, error) {
	query := bindingSelect
	var args []any
	switch {
	case sandboxID != "" && secretID != "":
		query += ` WHERE b.sandbox_id = ? AND b.secret_id = ?`
		args = append(args, sandboxID, secretID)
	case sandboxID != "":
		query += ` WHERE b.sandbox_id = ?`
		args = append(args, sandboxID)
	case secretID != "":
		query += ` WHERE b.secret_id = ?`
		args = append(args, secretID)
	}
	query += ` ORDER BY sb.name, b.env_var`
	out, err := queryAll(ctx, s.r, scanBinding, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list bindings: %w", err)
	}
	return out, nil
}

// BindingByHash returns the binding whose stand-in hashes to hash, with
// names filled in.
func (s *SQLite) BindingByHash(ctx context.Context, hash []byte) (*Binding, error) {
	if len(hash) == 0 {
		return nil, fmt.Errorf("binding by stand-in hash: %w", ErrNotFound)
	}
	b, err := scanBinding(s.r.QueryRowContext(ctx, bindingSelect+` WHERE b.standin_hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("binding by stand-in hash: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("binding by stand-in hash: %w", err)
	}
	return &b, nil
}
