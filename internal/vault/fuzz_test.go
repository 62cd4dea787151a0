package vault

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzUnseal feeds arbitrary blobs, secret ids and versions to Unseal,
// Rewrap and KeyID: they must return an error, never panic, and only the
// untouched seed blobs may open, for their own secret.
func FuzzUnseal(f *testing.F) {
	vt := newTestVault(f)
	type seed struct {
		id      string
		version int
		value   string
		blob    []byte
	}
	var seeds []seed
	for i, value := range []string{"", "x", testValue, strings.Repeat("y", 300)} {
		id := "sec_" + string(rune('a'+i))
		seeds = append(seeds, seed{id, i, value, mustSeal(f, vt, id, i, value)})
	}
	for _, s := range seeds {
		f.Add(s.blob, s.id, s.version)
		f.Add(s.blob, s.id, s.version+1)
		for _, n := range []int{0, 1, offWrapNonce, offValueNonce, minBlobLen - 1, len(s.blob) - 1} {
			if n < len(s.blob) {
				f.Add(s.blob[:n], s.id, s.version)
			}
		}
	}
	key, err := vt.SealKey("hmac", testKey(3))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(key, "hmac", 0)

	f.Fuzz(func(t *testing.T, blob []byte, id string, version int) {
		in := bytes.Clone(blob)
		v, err := vt.Unseal(id, version, blob)
		if !bytes.Equal(in, blob) {
			t.Fatalf("Unseal modified its input")
		}
		if err == nil {
			ok := false
			for _, s := range seeds {
				if bytes.Equal(blob, s.blob) && id == s.id && version == s.version && string(v.Reveal()) == s.value {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("Unseal(%q, %d, %x) opened a blob that Seal never made for it", id, version, blob)
			}
		} else if !errors.Is(err, ErrSealed) && !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("Unseal error = %v, want ErrSealed or ErrUnknownKey", err)
		}
		if _, err := vt.OpenKey(id, blob); err == nil && !bytes.Equal(blob, key) {
			t.Fatalf("OpenKey(%q, %x) opened a blob that SealKey never made", id, blob)
		}
		re, err := vt.Rewrap(blob)
		if err == nil {
			if !bytes.Equal(re[offValueNonce:], blob[offValueNonce:]) {
				t.Fatalf("Rewrap changed the ciphertext")
			}
		}
		if id, err := KeyID(blob); err == nil && len(id) != 2*keyIDLen {
			t.Fatalf("KeyID = %q, want %d hex digits", id, 2*keyIDLen)
		}
	})
}

// FuzzRoundTrip checks that every value opens for its own secret, and only
// for it, before and after Rewrap.
func FuzzRoundTrip(f *testing.F) {
	vt := newTestVault(f)
	f.Add([]byte(testValue), "sec_a", 1)
	f.Add([]byte{}, "", 0)
	f.Add([]byte{0, 0xff}, "a\x00b", -5)
	f.Fuzz(func(t *testing.T, value []byte, id string, version int) {
		blob, err := vt.Seal(id, version, NewValue(bytes.Clone(value)))
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		for _, b := range [][]byte{blob, mustRewrap(t, vt, blob)} {
			got, err := vt.Unseal(id, version, b)
			if err != nil {
				t.Fatalf("Unseal(%q, %d): %v", id, version, err)
			}
			if !bytes.Equal(got.Reveal(), value) {
				t.Fatalf("Unseal(%q, %d) = %x, want %x", id, version, got.Reveal(), value)
			}
			if _, err := vt.Unseal(id+"x", version, b); !errors.Is(err, ErrSealed) {
				t.Fatalf("Unseal(%q, %d) error = %v, want ErrSealed", id+"x", version, err)
			}
			if _, err := vt.Unseal(id, version^1, b); !errors.Is(err, ErrSealed) {
				t.Fatalf("Unseal(%q, %d) error = %v, want ErrSealed", id, version^1, err)
			}
			if _, err := vt.OpenKey(id, b); !errors.Is(err, ErrSealed) {
				t.Fatalf("OpenKey(%q) of a secret blob: error = %v, want ErrSealed", id, err)
			}
		}
		kb, err := vt.SealKey(id, value)
		if err != nil {
			t.Fatalf("SealKey: %v", err)
		}
		got, err := vt.OpenKey(id, kb)
		if err != nil || !bytes.Equal(got, value) {
			t.Fatalf("OpenKey(%q) = %x, %v; want %x", id, got, err, value)
		}
	})
}

func mustRewrap(tb testing.TB, vt *Vault, blob []byte) []byte {
	tb.Helper()
	re, err := vt.Rewrap(blob)
	if err != nil {
		tb.Fatalf("Rewrap: %v", err)
	}
	return re
}
