package vault

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"testing"
)

// testKey returns a fixed 32-byte master key; different seeds give
// different keys.
func testKey(seed byte) []byte {
	return bytes.Repeat([]byte{seed}, keyLen)
}

// b64 is key as an operator would put it in STANDIN_MASTER_KEY.
func b64(key []byte) string { return base64.StdEncoding.EncodeToString(key) }

// newTestKeyring returns an in-memory keyring holding testKey(seed).
func newTestKeyring(tb testing.TB, seed byte) *Keyring {
	tb.Helper()
	kr, err := NewKeyring(testKey(seed))
	if err != nil {
		tb.Fatalf("NewKeyring: %v", err)
	}
	return kr
}

// newTestVault returns a vault over an in-memory keyring with a
// deterministic random source, so that failures reproduce.
func newTestVault(tb testing.TB) *Vault {
	tb.Helper()
	return New(newTestKeyring(tb, 1), rand.NewChaCha8([32]byte{7}))
}

// mustSeal seals value for id and version or fails the test.
func mustSeal(tb testing.TB, vt *Vault, id string, version int, value string) []byte {
	tb.Helper()
	blob, err := vt.Seal(id, version, NewValue([]byte(value)))
	if err != nil {
		tb.Fatalf("Seal(%q, %d): %v", id, version, err)
	}
	return blob
}

// mustUnseal unseals or fails the test, returning the plaintext.
func mustUnseal(tb testing.TB, vt *Vault, id string, version int, blob []byte) string {
	tb.Helper()
	v, err := vt.Unseal(id, version, blob)
	if err != nil {
		tb.Fatalf("Unseal(%q, %d): %v", id, version, err)
	}
	return string(v.Reveal())
}
