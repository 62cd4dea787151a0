// Package standin mints the per-binding stand-in tokens a sandbox sees in
// place of a real credential, and the keyed hashes the store keeps of them.
//
// A stand-in is derived deterministically from a 32-byte stand-in key (kept
// sealed in the store) and the binding's id, so the daemon can show it again
// (sandbox env) while the store holds only HMAC(key, token).
package standin

import "github.com/standin/standin/internal/catalog"

// Minter derives stand-ins and hashes them.
type Minter struct{ key []byte }

// NewMinter returns a Minter for a 32-byte key.
func NewMinter(key []byte) *Minter { panic("TODO") }

// StandIn returns the binding's stand-in in shape s. The randomness is
// HMAC-SHA256(key, "standin/v1" || bindingID || counter) in counter mode, fed
// to s.Mint. attempt > 0 derives a different token (used when a token would
// equal the stored value's fingerprint).
func (m *Minter) StandIn(bindingID string, attempt int, s catalog.Shape) (string, error) {
	panic("TODO")
}

// Hash is HMAC-SHA256(key, "hash/v1" || token): what the store keeps, and
// what the gateway looks a token up by.
func (m *Minter) Hash(token []byte) []byte { panic("TODO") }
