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
	"crypto/aes"
	"crypto/cipher"
	cryptorand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// Errors callers branch on.
var (
	// ErrSealed: the blob does not open (wrong key, wrong secret id or
	// version, corrupted or truncated data).
	ErrSealed = errors.New("sealed value does not open")
	// ErrUnknownKey: the blob names a master key id the keyring lacks.
	ErrUnknownKey = errors.New("master key not in keyring")
)

// Blob format, version 1. All fields are fixed size except the ciphertext:
//
//	offset  size  field
//	0       1     format version (1)
//	1       8     master key id (first 8 bytes of SHA-256, see keyIDOf)
//	9       12    nonce of the wrapped data key
//	21      48    data key (32) sealed by the master key, with GCM tag (16)
//	69      12    nonce of the value
//	81      n+16  value sealed by the data key, with GCM tag
//
// Rewrap replaces bytes 1..69 and leaves the rest alone.
const (
	formatV1   byte = 1
	keyLen          = 32
	keyIDLen        = 8
	nonceLen        = 12
	tagLen          = 16
	wrappedLen      = keyLen + tagLen

	offKeyID      = 1
	offWrapNonce  = offKeyID + keyIDLen
	offWrapped    = offWrapNonce + nonceLen
	offValueNonce = offWrapped + wrappedLen
	offCiphertext = offValueNonce + nonceLen
	minBlobLen    = offCiphertext + tagLen
)

// Domain strings for the additional data. Each use of AES-GCM gets its own,
// so a ciphertext made for one purpose never opens as another: a secret
// value is not an internal key, whatever the secret id and key name.
const (
	adDomainWrap   = "standin vault v1 wrapped data key"
	adDomainSecret = "standin vault v1 secret value"
	adDomainKey    = "standin vault v1 internal key"
)

// Value holds a plaintext secret. It redacts itself in every formatting
// path (fmt verbs, slog, JSON, encoding.TextMarshaler).
//
// The bytes sit behind a closure because fmt prints a struct's unexported
// fields by reflection, without calling their methods: a struct holding a
// Value in an unexported field would print the plaintext. fmt prints a func
// as its address for every verb, while a slice or a pointer to one is printed
// in full by some paths (%v at the top level, a bad verb such as %s on a
// pointer).
type Value struct{ get func() []byte }

// redacted is what every formatting path of a Value prints.
const redacted = "[REDACTED]"

// NewValue wraps b (not copied).
func NewValue(b []byte) Value { return Value{get: func() []byte { return b }} }

// Reveal returns the plaintext. Call only where the value is written into
// an outgoing request (the gateway) or sealed.
func (v Value) Reveal() []byte {
	if v.get == nil {
		return nil
	}
	return v.get()
}

// Len is the plaintext length, safe to log.
func (v Value) Len() int { return len(v.Reveal()) }

// Wipe zeroes the plaintext. Copies of v share the bytes and see zeros too.
func (v Value) Wipe() { clear(v.Reveal()) }

// String returns [REDACTED].
func (v Value) String() string { return redacted }

// GoString returns [REDACTED], for %#v.
func (v Value) GoString() string { return redacted }

// Format prints [REDACTED] for every verb, including %x and %q, which would
// otherwise print the bytes of a []byte-like value.
func (v Value) Format(f fmt.State, verb rune) { io.WriteString(f, redacted) }

// LogValue redacts the value in log/slog.
func (v Value) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON returns "[REDACTED]".
func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns [REDACTED].
func (v Value) MarshalText() ([]byte, error) { return []byte(redacted), nil }

var (
	_ fmt.Stringer   = Value{}
	_ fmt.GoStringer = Value{}
	_ fmt.Formatter  = Value{}
	_ slog.LogValuer = Value{}
)

// Vault seals and unseals with a keyring.
type Vault struct {
	kr   *Keyring
	rand io.Reader
}

// New returns a Vault using kr. If rand is nil, crypto/rand.Reader is used.
// A Vault is safe for concurrent use if rand is.
func New(kr *Keyring, rand io.Reader) *Vault {
	if kr == nil {
		panic("vault: New with nil keyring")
	}
	if rand == nil {
		rand = cryptorand.Reader
	}
	return &Vault{kr: kr, rand: rand}
}

// Seal encrypts v for secret id and version with a fresh data key wrapped by
// the keyring's current master key. The blob is self-describing (format
// version, key id, wrapped data key, nonce, ciphertext).
func (vt *Vault) Seal(secretID string, version int, v Value) ([]byte, error) {
	blob, err := vt.seal(secretAD(secretID, version), v.Reveal())
	if err != nil {
		return nil, fmt.Errorf("seal secret %q version %d: %w", secretID, version, err)
	}
	return blob, nil
}

// Unseal opens a blob made by Seal for the same secret id and version.
func (vt *Vault) Unseal(secretID string, version int, sealed []byte) (Value, error) {
	b, err := vt.open(secretAD(secretID, version), sealed)
	if err != nil {
		return Value{}, fmt.Errorf("unseal secret %q version %d: %w", secretID, version, err)
	}
	return NewValue(b), nil
}

// SealKey seals one of standin's own keys (such as the stand-in HMAC key)
// under name, in the blob format of Seal. Its additional data lives in a
// namespace of its own, so a key blob never opens as a secret value or the
// other way round. It exists so that code other than the gateway never
// needs Unseal.
func (vt *Vault) SealKey(name string, key []byte) ([]byte, error) {
	blob, err := vt.seal(keyAD(name), key)
	if err != nil {
		return nil, fmt.Errorf("seal key %q: %w", name, err)
	}
	return blob, nil
}

// OpenKey opens a blob made by SealKey for the same name.
func (vt *Vault) OpenKey(name string, sealed []byte) ([]byte, error) {
	key, err := vt.open(keyAD(name), sealed)
	if err != nil {
		return nil, fmt.Errorf("open key %q: %w", name, err)
	}
	return key, nil
}

// Rewrap re-encrypts the blob's data key under the current master key; the
// value's ciphertext is unchanged and never decrypted.
func (vt *Vault) Rewrap(sealed []byte) ([]byte, error) {
	dek, err := vt.unwrap(sealed)
	if err != nil {
		return nil, fmt.Errorf("rewrap: %w", err)
	}
	defer clear(dek)
	out := make([]byte, len(sealed))
	copy(out[offValueNonce:], sealed[offValueNonce:])
	if err := vt.wrap(out, dek); err != nil {
		return nil, fmt.Errorf("rewrap: %w", err)
	}
	return out, nil
}

// KeyID returns the master key id a blob names, without opening it.
func KeyID(sealed []byte) (string, error) {
	if err := checkHeader(sealed); err != nil {
		return "", fmt.Errorf("key id: %w", err)
	}
	return hex.EncodeToString(sealed[offKeyID:offWrapNonce]), nil
}

// seal makes a blob of plaintext with additional data ad.
func (vt *Vault) seal(ad, plaintext []byte) ([]byte, error) {
	out := make([]byte, offCiphertext, offCiphertext+len(plaintext)+tagLen)
	// One read for the data key and both nonces.
	var rnd [keyLen + nonceLen]byte
	defer clear(rnd[:])
	if _, err := io.ReadFull(vt.rand, rnd[:]); err != nil {
		return nil, fmt.Errorf("read random: %w", err)
	}
	dek := rnd[:keyLen]
	copy(out[offValueNonce:offCiphertext], rnd[keyLen:])
	aead, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	if err := vt.wrap(out, dek); err != nil {
		return nil, err
	}
	return aead.Seal(out, out[offValueNonce:offCiphertext], plaintext, ad), nil
}

// wrap fills out[:offValueNonce]: format version, current key id, a fresh
// nonce and dek sealed by the current master key.
func (vt *Vault) wrap(out, dek []byte) error {
	mk := vt.kr.currentKey()
	out[0] = formatV1
	copy(out[offKeyID:offWrapNonce], mk.rawID[:])
	nonce := out[offWrapNonce:offWrapped]
	if _, err := io.ReadFull(vt.rand, nonce); err != nil {
		return fmt.Errorf("read random: %w", err)
	}
	mk.aead.Seal(out[offWrapped:offWrapped], nonce, dek, wrapAD(mk.rawID))
	return nil
}

// unwrap checks the header of sealed and returns its data key. The caller
// clears it.
func (vt *Vault) unwrap(sealed []byte) ([]byte, error) {
	if err := checkHeader(sealed); err != nil {
		return nil, err
	}
	var rawID [keyIDLen]byte
	copy(rawID[:], sealed[offKeyID:offWrapNonce])
	mk := vt.kr.key(hex.EncodeToString(rawID[:]))
	if mk == nil {
		return nil, fmt.Errorf("key id %s: %w", hex.EncodeToString(rawID[:]), ErrUnknownKey)
	}
	dek, err := mk.aead.Open(make([]byte, 0, keyLen), sealed[offWrapNonce:offWrapped], sealed[offWrapped:offValueNonce], wrapAD(rawID))
	if err != nil {
		return nil, fmt.Errorf("data key does not open with key id %s: %w", mk.id, ErrSealed)
	}
	return dek, nil
}

// open opens a blob made by seal with the same additional data.
func (vt *Vault) open(ad, sealed []byte) ([]byte, error) {
	dek, err := vt.unwrap(sealed)
	if err != nil {
		return nil, err
	}
	defer clear(dek)
	aead, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	b, err := aead.Open(nil, sealed[offValueNonce:offCiphertext], sealed[offCiphertext:], ad)
	if err != nil {
		// Most likely the wrong secret id or version: the data key opened,
		// so the master key is right.
		return nil, fmt.Errorf("ciphertext does not open for this secret: %w", ErrSealed)
	}
	return b, nil
}

// checkHeader reports whether sealed is long enough and of a known format.
func checkHeader(sealed []byte) error {
	if len(sealed) < minBlobLen {
		return fmt.Errorf("blob is %d bytes, shorter than the minimum %d: %w", len(sealed), minBlobLen, ErrSealed)
	}
	if sealed[0] != formatV1 {
		return fmt.Errorf("unknown blob format version %d: %w", sealed[0], ErrSealed)
	}
	return nil
}

// newGCM returns AES-256-GCM with key. The cipher keeps an expanded copy of
// the key that cannot be cleared; clearing the caller's copy is the best
// the standard library allows.
func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// wrapAD binds a wrapped data key to the format version and the master key
// id. It has no secret id: Rewrap works without one. Binding the value to
// its secret is the job of the value's own additional data.
func wrapAD(keyID [keyIDLen]byte) []byte {
	ad := appendField(nil, []byte(adDomainWrap))
	ad = append(ad, formatV1)
	return append(ad, keyID[:]...)
}

// secretAD is the additional data of a secret value: domain, secret id and
// version, each length-prefixed so that ("a", "1b") and ("a1", "b") differ.
func secretAD(secretID string, version int) []byte {
	ad := appendField(nil, []byte(adDomainSecret))
	ad = appendField(ad, []byte(secretID))
	return binary.BigEndian.AppendUint64(ad, uint64(int64(version)))
}

// keyAD is the additional data of an internal key.
func keyAD(name string) []byte {
	ad := appendField(nil, []byte(adDomainKey))
	return appendField(ad, []byte(name))
}

// appendField appends b with a 4-byte big-endian length prefix.
func appendField(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}
