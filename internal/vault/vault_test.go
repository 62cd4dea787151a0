package vault

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

const testValue = "sk-ant-api03-THIS-IS-THE-REAL-VALUE"

func TestRoundTrip(t *testing.T) {
	vt := newTestVault(t)
	tests := []struct {
		name    string
		id      string
		version int
		value   string
	}{
		{"typical", "sec_123", 1, testValue},
		{"empty value", "sec_123", 2, ""},
		{"empty id", "", 0, "x"},
		{"negative version", "sec_1", -1, "x"},
		{"large value", "sec_big", 7, strings.Repeat("v", 1<<16)},
		{"binary value", "sec_bin", 1, "\x00\xff\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blob := mustSeal(t, vt, tt.id, tt.version, tt.value)
			if got := mustUnseal(t, vt, tt.id, tt.version, blob); got != tt.value {
				t.Errorf("Unseal(%q, %d) = %q, want %q", tt.id, tt.version, got, tt.value)
			}
			if want := minBlobLen + len(tt.value); len(blob) != want {
				t.Errorf("len(blob) = %d, want %d", len(blob), want)
			}
			if bytes.Contains(blob, []byte(tt.value)) && tt.value != "" {
				t.Errorf("blob contains the plaintext")
			}
		})
	}
}

func TestUnsealWrongBinding(t *testing.T) {
	vt := newTestVault(t)
	blob := mustSeal(t, vt, "sec_a", 3, testValue)
	tests := []struct {
		name    string
		id      string
		version int
	}{
		{"other secret", "sec_b", 3},
		{"other version", "sec_a", 4},
		{"version zero", "sec_a", 0},
		{"prefix of id", "sec_", 3},
		{"id with suffix", "sec_a ", 3},
		{"empty id", "", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := vt.Unseal(tt.id, tt.version, blob)
			if !errors.Is(err, ErrSealed) {
				t.Fatalf("Unseal(%q, %d) error = %v, want ErrSealed", tt.id, tt.version, err)
			}
			if v.Len() != 0 {
				t.Errorf("Unseal(%q, %d) returned %d bytes with an error", tt.id, tt.version, v.Len())
			}
			if !strings.Contains(err.Error(), tt.id) {
				t.Errorf("error %q does not name secret %q", err, tt.id)
			}
		})
	}
}

// TestAdditionalData checks that different bindings never encode to the same
// additional data: fields are length-prefixed or fixed width, and each use
// has its own domain.
func TestAdditionalData(t *testing.T) {
	tests := []struct {
		name string
		a, b []byte
	}{
		{"id/version boundary", secretAD("a", 12), secretAD("a1", 2)},
		{"version digits", secretAD("sec_1", 23), secretAD("sec_12", 3)},
		{"empty id", secretAD("", 1), secretAD("\x00", 1)},
		{"secret vs key", secretAD("a", 0), keyAD("a")},
		{"key names", keyAD("a"), keyAD("a\x00")},
		{"wrap vs key", wrapAD([keyIDLen]byte{}), keyAD("")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if bytes.Equal(tt.a, tt.b) {
				t.Errorf("additional data %q == %q", tt.a, tt.b)
			}
		})
	}
	// Length prefixes make field splits unambiguous.
	if bytes.Equal(appendField(appendField(nil, []byte("a")), []byte("1b")), appendField(appendField(nil, []byte("a1")), []byte("b"))) {
		t.Errorf(`fields ("a", "1b") and ("a1", "b") encode the same`)
	}
}

func TestBlobCopiedToOtherSecret(t *testing.T) {
	vt := newTestVault(t)
	a := mustSeal(t, vt, "sec_a", 1, "value-a")
	b := mustSeal(t, vt, "sec_b", 1, "value-b")
	// An attacker with write access to the store swaps the rows.
	if _, err := vt.Unseal("sec_b", 1, a); !errors.Is(err, ErrSealed) {
		t.Errorf("Unseal(sec_b, blob of sec_a) error = %v, want ErrSealed", err)
	}
	// Or splices a's wrapped data key onto b's ciphertext.
	spliced := append(append([]byte{}, a[:offValueNonce]...), b[offValueNonce:]...)
	if _, err := vt.Unseal("sec_b", 1, spliced); !errors.Is(err, ErrSealed) {
		t.Errorf("Unseal(spliced blob) error = %v, want ErrSealed", err)
	}
}

func TestUnsealByteFlips(t *testing.T) {
	vt := newTestVault(t)
	blob := mustSeal(t, vt, "sec_a", 1, testValue)
	for i := range blob {
		for _, mask := range []byte{0x01, 0x80} {
			bad := bytes.Clone(blob)
			bad[i] ^= mask
			_, err := vt.Unseal("sec_a", 1, bad)
			switch {
			case err == nil:
				t.Fatalf("Unseal with byte %d ^ %#x: no error", i, mask)
			case i >= offKeyID && i < offWrapNonce:
				if !errors.Is(err, ErrUnknownKey) {
					t.Errorf("Unseal with key id byte %d ^ %#x: error = %v, want ErrUnknownKey", i, mask, err)
				}
			case !errors.Is(err, ErrSealed):
				t.Errorf("Unseal with byte %d ^ %#x: error = %v, want ErrSealed", i, mask, err)
			}
		}
	}
}

func TestUnsealTruncatedAndExtended(t *testing.T) {
	vt := newTestVault(t)
	blob := mustSeal(t, vt, "sec_a", 1, testValue)
	for n := range len(blob) {
		if _, err := vt.Unseal("sec_a", 1, blob[:n]); !errors.Is(err, ErrSealed) {
			t.Errorf("Unseal(blob[:%d]) error = %v, want ErrSealed", n, err)
		}
	}
	if _, err := vt.Unseal("sec_a", 1, append(bytes.Clone(blob), 0)); !errors.Is(err, ErrSealed) {
		t.Errorf("Unseal(blob + 1 byte) error = %v, want ErrSealed", err)
	}
	if _, err := vt.Unseal("sec_a", 1, nil); !errors.Is(err, ErrSealed) {
		t.Errorf("Unseal(nil) error = %v, want ErrSealed", err)
	}
}

func TestSealIsRandomized(t *testing.T) {
	vt := New(newTestKeyring(t, 1), nil) // crypto/rand
	a := mustSeal(t, vt, "sec_a", 1, testValue)
	b := mustSeal(t, vt, "sec_a", 1, testValue)
	if bytes.Equal(a, b) {
		t.Fatalf("two Seals of the same value are equal")
	}
	if bytes.Equal(a[offCiphertext:], b[offCiphertext:]) {
		t.Errorf("two Seals of the same value have the same ciphertext")
	}
	if bytes.Equal(a[offWrapped:offValueNonce], b[offWrapped:offValueNonce]) {
		t.Errorf("two Seals share a data key")
	}
}

func TestSealUsesGivenRandomness(t *testing.T) {
	kr := newTestKeyring(t, 1)
	a := mustSeal(t, New(kr, rand.NewChaCha8([32]byte{1})), "s", 1, "v")
	b := mustSeal(t, New(kr, rand.NewChaCha8([32]byte{1})), "s", 1, "v")
	if !bytes.Equal(a, b) {
		t.Errorf("Seal with the same random stream gave different blobs")
	}
}

func TestSealRandomFailure(t *testing.T) {
	vt := New(newTestKeyring(t, 1), iotest.ErrReader(errors.New("entropy exhausted")))
	if _, err := vt.Seal("s", 1, NewValue([]byte(testValue))); err == nil {
		t.Fatalf("Seal with a failing random source: no error")
	} else if strings.Contains(err.Error(), testValue) {
		t.Errorf("Seal error %q contains the value", err)
	}
	if _, err := vt.SealKey("k", []byte(testValue)); err == nil {
		t.Errorf("SealKey with a failing random source: no error")
	}
}

func TestUnknownKey(t *testing.T) {
	blob := mustSeal(t, newTestVault(t), "sec_a", 1, testValue)
	other := New(newTestKeyring(t, 2), nil)
	_, err := other.Unseal("sec_a", 1, blob)
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Unseal with another keyring: error = %v, want ErrUnknownKey", err)
	}
	if _, err := other.Rewrap(blob); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Rewrap with another keyring: error = %v, want ErrUnknownKey", err)
	}
	// A blob that claims the other keyring's key id still does not open:
	// the id is bound into the wrapped data key.
	forged := bytes.Clone(blob)
	id, _ := hex.DecodeString(other.kr.CurrentID())
	copy(forged[offKeyID:], id)
	if _, err := other.Unseal("sec_a", 1, forged); !errors.Is(err, ErrSealed) {
		t.Errorf("Unseal of blob with forged key id: error = %v, want ErrSealed", err)
	}
}

func TestKeyID(t *testing.T) {
	kr := newTestKeyring(t, 1)
	blob := mustSeal(t, New(kr, nil), "s", 1, "v")
	got, err := KeyID(blob)
	if err != nil {
		t.Fatalf("KeyID: %v", err)
	}
	if want := kr.CurrentID(); got != want {
		t.Errorf("KeyID(blob) = %q, want %q", got, want)
	}
	if len(got) != 2*keyIDLen {
		t.Errorf("KeyID(blob) = %q, want %d hex digits", got, 2*keyIDLen)
	}
	if _, err := KeyID(blob[:minBlobLen-1]); !errors.Is(err, ErrSealed) {
		t.Errorf("KeyID(truncated) error = %v, want ErrSealed", err)
	}
	bad := bytes.Clone(blob)
	bad[0] = 2
	if _, err := KeyID(bad); !errors.Is(err, ErrSealed) {
		t.Errorf("KeyID(format 2) error = %v, want ErrSealed", err)
	}
	// Ids are derived from the key: stable, and different per key.
	if a, b := newTestKeyring(t, 1).CurrentID(), newTestKeyring(t, 2).CurrentID(); a != kr.CurrentID() || a == b {
		t.Errorf("key ids: same key %q vs %q, other key %q", kr.CurrentID(), a, b)
	}
}

func TestRewrap(t *testing.T) {
	kr := newTestKeyring(t, 1)
	vt := New(kr, nil)
	blob := mustSeal(t, vt, "sec_a", 5, testValue)
	oldID := kr.CurrentID()

	r, err := kr.BeginRotation(t.TempDir(), b64(testKey(2)))
	if err != nil {
		t.Fatalf("BeginRotation: %v", err)
	}
	re, err := vt.Rewrap(blob)
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	if got, _ := KeyID(re); got != r.NewID() || got == oldID {
		t.Errorf("KeyID(rewrapped) = %q, want new key %q (old %q)", got, r.NewID(), oldID)
	}
	if !bytes.Equal(re[offValueNonce:], blob[offValueNonce:]) {
		t.Errorf("Rewrap changed the value ciphertext")
	}
	if got := mustUnseal(t, vt, "sec_a", 5, re); got != testValue {
		t.Errorf("Unseal(rewrapped) = %q, want %q", got, testValue)
	}
	if _, err := vt.Unseal("sec_a", 6, re); !errors.Is(err, ErrSealed) {
		t.Errorf("Unseal(rewrapped, wrong version) error = %v, want ErrSealed", err)
	}
	if err := r.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got := mustUnseal(t, vt, "sec_a", 5, re); got != testValue {
		t.Errorf("after Commit: Unseal(rewrapped) = %q, want %q", got, testValue)
	}
	if _, err := vt.Unseal("sec_a", 5, blob); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("after Commit: Unseal(old blob) error = %v, want ErrUnknownKey", err)
	}
	if _, err := vt.Rewrap(re[:minBlobLen-1]); !errors.Is(err, ErrSealed) {
		t.Errorf("Rewrap(truncated) error = %v, want ErrSealed", err)
	}
	bad := bytes.Clone(re)
	bad[offWrapped] ^= 1
	if _, err := vt.Rewrap(bad); !errors.Is(err, ErrSealed) {
		t.Errorf("Rewrap(corrupt data key) error = %v, want ErrSealed", err)
	}
}

func TestSealKey(t *testing.T) {
	vt := newTestVault(t)
	key := testKey(9)
	blob, err := vt.SealKey("standin-hmac", key)
	if err != nil {
		t.Fatalf("SealKey: %v", err)
	}
	got, err := vt.OpenKey("standin-hmac", blob)
	if err != nil {
		t.Fatalf("OpenKey: %v", err)
	}
	if !bytes.Equal(got, key) {
		t.Errorf("OpenKey = %x, want %x", got, key)
	}
	if _, err := vt.OpenKey("other", blob); !errors.Is(err, ErrSealed) {
		t.Errorf("OpenKey(other name) error = %v, want ErrSealed", err)
	}
	// Key blobs and secret blobs live in separate namespaces, whatever the
	// names.
	if _, err := vt.Unseal("standin-hmac", 0, blob); !errors.Is(err, ErrSealed) {
		t.Errorf("Unseal(key blob) error = %v, want ErrSealed", err)
	}
	sec := mustSeal(t, vt, "standin-hmac", 0, testValue)
	if _, err := vt.OpenKey("standin-hmac", sec); !errors.Is(err, ErrSealed) {
		t.Errorf("OpenKey(secret blob) error = %v, want ErrSealed", err)
	}
}

func TestValueWipe(t *testing.T) {
	b := []byte(testValue)
	v := NewValue(b)
	c := v // copies share the bytes
	v.Wipe()
	if !bytes.Equal(c.Reveal(), make([]byte, len(testValue))) {
		t.Errorf("after Wipe, copy holds %q, want zeros", c.Reveal())
	}
	if c.Len() != len(testValue) {
		t.Errorf("after Wipe, Len() = %d, want %d", c.Len(), len(testValue))
	}
	var zero Value
	zero.Wipe() // must not panic
	if zero.Reveal() != nil || zero.Len() != 0 {
		t.Errorf("zero Value: Reveal() = %v, Len() = %d", zero.Reveal(), zero.Len())
	}
}
