// Package store persists secrets (already sealed by the vault), sandboxes,
// bindings and activity records. The default implementation is SQLite (pure
// Go, WAL, synchronous=FULL so an acknowledged write survives kill -9);
// the Store interface is what a PostgreSQL implementation would satisfy.
//
// Secret values never arrive here in clear: Secret.Sealed is the vault's
// blob. Stand-ins are kept only as keyed hashes.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/standin/standin/client"
)

// Errors callers branch on (wrapped with detail).
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
	// ErrStale: an update lost a race (e.g. rotate with an old version).
	ErrStale = errors.New("changed concurrently")
)

// Secret is a stored secret.
type Secret struct {
	ID          string
	Name        string
	Provider    string // catalog id or "custom"
	Description string
	Hosts       []client.HostAuth
	Shape       []byte // catalog.Shape as JSON, for new bindings
	Version     int
	KeyID       string // master key id wrapping the data key
	Sealed      []byte // vault blob
	// Fingerprint is HMAC(stand-in key, value): lets a mint refuse a
	// stand-in equal to the value without unsealing it.
	Fingerprint []byte
	CreatedAt   time.Time
	RotatedAt   time.Time
}

// Sandbox is a stored sandbox.
type Sandbox struct {
	ID        string
	Name      string
	State     string
	Network   client.NetworkRules
	CreatedAt time.Time
}

// Binding attaches a secret to a sandbox under an env var.
type Binding struct {
	ID          string
	SandboxID   string
	EnvVar      string
	SecretID    string
	Shape       []byte // catalog.Shape JSON fixed at bind time
	Attempt     int    // stand-in derivation attempt (see standin.Minter), or ImportedStandIn
	StandInHash []byte // unique
	CreatedAt   time.Time
	// Filled by reads:
	SandboxName string
	SecretName  string
}

// ImportedStandIn is Binding.Attempt for a stand-in the caller chose
// instead of a derived one: only its hash is known.
const ImportedStandIn = -1

// Revoked is a binding that was removed while its sandbox lives on.
type Revoked struct {
	StandInHash []byte
	SandboxID   string
	SecretID    string
	SecretName  string
	Hosts       []client.HostAuth // the secret's hosts when it was revoked
	Shape       []byte            // catalog.Shape JSON of the stand-in
	RevokedAt   time.Time
}

// Activity is one request record.
type Activity struct {
	ID             int64
	Time           time.Time
	SecretID       string
	SecretName     string
	SandboxID      string
	SandboxName    string
	Method         string
	Host           string
	Path           string
	Status         int
	UpstreamStatus int
	Latency        time.Duration
	BytesIn        int64
	BytesOut       int64
	Outcome        string
	Reason         string
}

// ActivityQuery filters a secret's activity, newest first.
type ActivityQuery struct {
	SecretID    string
	SandboxName string    // optional
	StatusClass int       // 0 any, else 2 for 2xx, 4 for 4xx, ...
	Since       time.Time // optional, inclusive
	Until       time.Time // optional, exclusive
	// Before returns records older than this id (cursor paging); 0: newest.
	Before int64
	// After returns records newer than this id, oldest first (follow mode).
	After int64
	Limit int // default 100, max 1000
}

// Store is the persistence interface.
type Store interface {
	CreateSecret(ctx context.Context, s *Secret) error // ErrConflict on name
	GetSecret(ctx context.Context, name string) (*Secret, error)
	GetSecretByID(ctx context.Context, id string) (*Secret, error)
	ListSecrets(ctx context.Context) ([]Secret, error)
	// RotateSecret stores a new sealed value; s.Version must be the stored
	// version + 1, else ErrStale.
	RotateSecret(ctx context.Context, s *Secret) error
	// DeleteSecret removes the secret and its bindings.
	DeleteSecret(ctx context.Context, id string) error

	// CreateSandbox stores the sandbox and its first bindings atomically.
	CreateSandbox(ctx context.Context, sb *Sandbox, bs []Binding) error
	GetSandbox(ctx context.Context, name string) (*Sandbox, error)
	ListSandboxes(ctx context.Context) ([]Sandbox, error)
	SetSandboxNetwork(ctx context.Context, id string, n client.NetworkRules) error
	SetSandboxState(ctx context.Context, id, state string) error
	// DeleteSandbox removes the sandbox and its bindings.
	DeleteSandbox(ctx context.Context, id string) error

	// CreateBinding: ErrConflict if the env var is taken in that sandbox.
	CreateBinding(ctx context.Context, b *Binding) error
	DeleteBinding(ctx context.Context, sandboxID, envVar string) error
	// ListBindings by sandbox id or secret id (one of them set).
	ListBindings(ctx context.Context, sandboxID, secretID string) ([]Binding, error)
	// BindingByHash is the gateway's lookup of a presented stand-in.
	BindingByHash(ctx context.Context, hash []byte) (*Binding, error)
	// ListRevoked returns what removed bindings were (DeleteBinding and
	// DeleteSecret remember them until their sandbox is deleted), so the
	// gateway refuses their stand-ins, restart or not.
	ListRevoked(ctx context.Context) ([]Revoked, error)

	AppendActivity(ctx context.Context, recs []Activity) error
	ListActivity(ctx context.Context, q ActivityQuery) ([]Activity, error)

	// Meta is a small key/value table for internal state (the sealed
	// stand-in key, the schema canary).
	GetMeta(ctx context.Context, key string) ([]byte, error) // ErrNotFound
	PutMeta(ctx context.Context, key string, val []byte) error

	// KeyIDs lists the distinct master key ids data is wrapped by
	// (secrets and sealed meta values registered with SealedMeta).
	KeyIDs(ctx context.Context) ([]string, error)
	// Rewrap calls fn for every sealed blob (secrets and sealed meta
	// values) and stores the results, all in one transaction.
	Rewrap(ctx context.Context, fn func(sealed []byte) (newSealed []byte, keyID string, err error)) error
	// PutSealedMeta stores a sealed internal value (rewrapped like secrets).
	PutSealedMeta(ctx context.Context, key string, sealed []byte, keyID string) error
	GetSealedMeta(ctx context.Context, key string) ([]byte, error)

	Close() error
}
