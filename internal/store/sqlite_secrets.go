package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

const secretColumns = `id, name, provider, description, hosts, shape, version, key_id, sealed, fingerprint, created_at, rotated_at`

func scanSecret(sc scanner) (Secret, error) {
	var (
		sec              Secret
		hosts            string
		created, rotated int64
	)
	if err := sc.Scan(&sec.ID, &sec.Name, &sec.Provider, &sec.Description, &hosts, &sec.Shape,
		&sec.Version, &sec.KeyID, &sec.Sealed, &sec.Fingerprint, &created, &rotated); err != nil {
		return Secret{}, err
	}
	if err := json.Unmarshal([]byte(hosts), &sec.Hosts); err != nil {
		return Secret{}, fmt.Errorf("decode hosts of secret %q: %w", sec.Name, err)
	}
	sec.CreatedAt = fromNanos(created)
	sec.RotatedAt = fromNanos(rotated)
	return sec, nil
}

// CreateSecret stores sec. ErrConflict if its name or id is taken.
func (s *SQLite) CreateSecret(ctx context.Context, sec *Secret) error {
	if sec.ID == "" || sec.Name == "" {
		return fmt.Errorf("create secret %q: empty id or name", sec.Name)
	}
	hosts, err := json.Marshal(sec.Hosts)
	if err != nil {
		return fmt.Errorf("create secret %q: encode hosts: %w", sec.Name, err)
	}
	sealed := sec.Sealed
	if sealed == nil {
		sealed = []byte{}
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO secrets (`+secretColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		sec.ID, sec.Name, sec.Provider, sec.Description, string(hosts), sec.Shape,
		sec.Version, sec.KeyID, sealed, sec.Fingerprint, nanos(sec.CreatedAt), nanos(sec.RotatedAt))
	switch {
	case err == nil:
		return nil
	case isUnique(err, "secrets.name"):
		return fmt.Errorf("secret name %q: %w", sec.Name, ErrConflict)
	case isUnique(err, "secrets.id"):
		return fmt.Errorf("secret id %q: %w", sec.ID, ErrConflict)
	}
	return fmt.Errorf("create secret %q: %w", sec.Name, err)
}

// GetSecret returns the secret called name.
func (s *SQLite) GetSecret(ctx context.Context, name string) (*Secret, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+secretColumns+` FROM secrets WHERE name = ?`, name)
	return getRow(row, scanSecret, "secret", name)
}

// GetSecretByID returns the secret with id.
func (s *SQLite) GetSecretByID(ctx context.Context, id string) (*Secret, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+secretColumns+` FROM secrets WHERE id = ?`, id)
	return getRow(row, scanSecret, "secret id", id)
}

// ListSecrets returns all secrets ordered by name.
func (s *SQLite) ListSecrets(ctx context.Context) ([]Secret, error) {
	out, err := queryAll(ctx, s.r, scanSecret, `SELECT `+secretColumns+` FROM secrets ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return out, nil
}

// RotateSecret stores sec's new Sealed, KeyID, Fingerprint, Version and
// RotatedAt (and Shape, unless empty: the new value may have another
// format) if the stored version is sec.Version-1. Name, provider, hosts
// and description are left alone. ErrStale if the version moved on,
// ErrNotFound if the secret is gone.
func (s *SQLite) RotateSecret(ctx context.Context, sec *Secret) error {
	var shape []byte // nil keeps the stored shape
	if len(sec.Shape) > 0 {
		shape = sec.Shape
	}
	sealed := sec.Sealed
	if sealed == nil {
		sealed = []byte{}
	}
	n, err := execCount(ctx, s.w, `UPDATE secrets
		SET sealed = ?, key_id = ?, fingerprint = ?, shape = COALESCE(?, shape), version = ?, rotated_at = ?
		WHERE id = ? AND version = ?`,
		sealed, sec.KeyID, sec.Fingerprint, shape, sec.Version, nanos(sec.RotatedAt), sec.ID, sec.Version-1)
	if err != nil {
		return fmt.Errorf("rotate secret id %q: %w", sec.ID, err)
	}
	if n == 1 {
		return nil
	}
	var cur int
	err = s.w.QueryRowContext(ctx, `SELECT version FROM secrets WHERE id = ?`, sec.ID).Scan(&cur)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("secret id %q: %w", sec.ID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("rotate secret id %q: %w", sec.ID, err)
	}
	return fmt.Errorf("rotate secret id %q to version %d: stored version is %d: %w", sec.ID, sec.Version, cur, ErrStale)
}

// DeleteSecret removes the secret, its bindings (by cascade) and its
// activity records. Activity goes too because a secret's history is only
// reachable through the secret; sandbox deletion, by contrast, keeps it.
func (s *SQLite) DeleteSecret(ctx context.Context, id string) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete secret id %q: %w", id, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, insertRevoked+` WHERE b.secret_id = ?`, nanos(time.Now()), id); err != nil {
		return fmt.Errorf("delete secret id %q: remember revoked bindings: %w", id, err)
	}
	if n, err := execCount(ctx, tx, `DELETE FROM secrets WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete secret id %q: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("secret id %q: %w", id, ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM activity WHERE secret_id = ?`, id); err != nil {
		return fmt.Errorf("delete secret id %q: activity: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete secret id %q: %w", id, err)
	}
	return nil
}
