// Package vault seals and unseals secret values with envelope encryption.
//
// Each value is encrypted with its own random data key (AES-256-GCM). The
// data key is wrapped (AES-256-GCM) by a master key, named by a key id so the
// master key can be rotated. The additional data binds a ciphertext to its
// secret id and version: a sealed blob copied onto another secret, or onto
// another version of the same secret, does not open.
//
// Invariants: no function here returns, logs or formats a plaintext value
// except Value.Reveal, and only the gateway calls Unseal (a test checks).
package vault

import (
	"errors"
	"io"
)

// Errors callers branch on.
var (
	// ErrSealed: the blob does not open (wrong key, wrong secret id or
	// version, corrupted or truncated data).
	ErrSealed = errors.New("sealed value does not open")
	// ErrUnknownKey: the blob names a master key id the keyring lacks.
	ErrUnknownKey = errors.New("master key not in keyring")
)

// Value holds a plaintext secret. It redacts itself in every formatting
// path (fmt verbs, slog, JSON, encoding.TextMarshaler).
type Value struct{ b []byte }

// NewValue wraps b (not copied).
func NewValue(b []byte) Value { return Value{b: b} }

// Reveal returns the plaintext. Call only where the value is written into
// an outgoing request (the gateway) or sealed.
func (v Value) Reveal() []byte { return v.b }

// Len is the plaintext length, safe to log.
func (v Value) Len() int { return len(v.b) }

// Vault seals and unseals with a keyring.
type Vault struct {
	kr   *Keyring
	rand io.Reader
}

// New returns a Vault using kr. If rand is nil, crypto/rand.Reader is used.
func New(kr *Keyring, rand io.Reader) *Vault { panic("TODO") }

// Seal encrypts v for secret id and version with a fresh data key wrapped by
// the keyring's current master key. The blob is self-describing (format
// version, key id, wrapped data key, nonce, ciphertext).
func (vt *Vault) Seal(secretID string, version int, v Value) ([]byte, error) { panic("TODO") }

// Unseal opens a blob made by Seal for the same secret id and version.
func (vt *Vault) Unseal(secretID string, version int, sealed []byte) (Value, error) {
	panic("TODO")
}

// Rewrap re-encrypts the blob's data key under the current master key; the
// value's ciphertext is unchanged and never decrypted.
func (vt *Vault) Rewrap(sealed []byte) ([]byte, error) { panic("TODO") }

// KeyID returns the master key id a blob names, without opening it.
func KeyID(sealed []byte) (string, error) { panic("TODO") }
