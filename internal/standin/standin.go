// Package standin mints the per-binding stand-in tokens a sandbox sees in
// place of a real credential, and the keyed hashes the store keeps of them.
//
// A stand-in is derived deterministically from a 32-byte stand-in key (kept
// sealed in the store) and the binding's id, so the daemon can show it again
// (sandbox env) while the store holds only HMAC(key, token).
//
// The derivation is part of the stored data's format: changing a label, the
// encoding or the counter layout changes every stand-in already handed out.
// The known-answer tests pin it.
package standin

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math"

	"github.com/standin/standin/internal/catalog"
)

// KeySize is the length of a stand-in key.
const KeySize = 32

// Domain-separation labels. They start with different bytes, so no stream
// block input can equal a hash input.
const (
	streamLabel = "standin/v1"
	hashLabel   = "hash/v1"
)

// maxStream bounds how much randomness one StandIn call may draw. A shape's
// Mint needs well under a kilobyte; the bound turns a Mint bug (say, rejection
// sampling that never accepts) into an error instead of a hang.
const maxStream = 1 << 20

// ErrStreamExhausted is returned by the stand-in stream's Read after
// maxStream bytes.
var ErrStreamExhausted = errors.New("stand-in randomness exhausted")

// errNoKey guards the zero Minter, whose empty key would make stand-ins
// predictable.
var errNoKey = errors.New("standin: Minter not made by NewMinter has no key")

// Minter derives stand-ins and hashes them. It is safe for concurrent use.
// It never prints its key: String, GoString, Format and LogValue redact.
type Minter struct{ key []byte }

// NewMinter returns a Minter for a 32-byte key. The key is copied.
func NewMinter(key []byte) (*Minter, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("new minter: stand-in key is %d bytes, want %d", len(key), KeySize)
	}
	return &Minter{key: append([]byte(nil), key...)}, nil
}

// StandIn returns the binding's stand-in in shape s. The randomness is
// HMAC-SHA256(key, "standin/v1" || bindingID || counter) in counter mode, fed
// to s.Mint. attempt > 0 derives a different token (used when a token would
// equal the stored value's fingerprint).
//
// Precisely, block i of the stream is
//
//	HMAC-SHA256(key, "standin/v1" || uint32be(len(bindingID)) || bindingID ||
//	            uint32be(attempt) || uint64be(i))
//
// and the stream is the blocks concatenated. The length prefix keeps
// (bindingID, attempt) pairs from sharing an encoding.
func (m *Minter) StandIn(bindingID string, attempt int, s catalog.Shape) (string, error) {
	r, err := m.Stream(bindingID, attempt)
	if err != nil {
		return "", fmt.Errorf("mint stand-in: %w", err)
	}
	tok, err := s.Mint(r)
	if err != nil {
		return "", fmt.Errorf("mint stand-in: %w", err)
	}
	return tok, nil
}

// Stream returns the deterministic random stream StandIn feeds to
// catalog.Shape.Mint for (bindingID, attempt). It is exported for tests and
// for callers that mint something other than a catalog shape. Read fails
// with ErrStreamExhausted after 1 MiB.
func (m *Minter) Stream(bindingID string, attempt int) (io.Reader, error) {
	if m == nil || len(m.key) != KeySize {
		return nil, errNoKey
	}
	if attempt < 0 || attempt > math.MaxUint32 {
		return nil, fmt.Errorf("attempt %d out of range", attempt)
	}
	if uint64(len(bindingID)) > math.MaxUint32 {
		return nil, errors.New("binding id too long")
	}
	msg := make([]byte, 0, len(streamLabel)+4+len(bindingID)+4+8)
	msg = append(msg, streamLabel...)
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(bindingID)))
	msg = append(msg, bindingID...)
	msg = binary.BigEndian.AppendUint32(msg, uint32(attempt))
	return &stream{mac: hmac.New(sha256.New, m.key), prefix: msg, used: sha256.Size}, nil
}

// stream is the HMAC-SHA256 counter-mode reader.
type stream struct {
	mac    hash.Hash
	prefix []byte            // label, bindingID, attempt
	block  [sha256.Size]byte // current block
	used   int               // bytes of block already returned; len(block) when empty
	next   uint64            // counter of the next block
	total  int               // bytes returned so far
	ctr    [8]byte
}

func (s *stream) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if s.total >= maxStream {
			return n, ErrStreamExhausted
		}
		if s.used == len(s.block) {
			s.mac.Reset()
			s.mac.Write(s.prefix)
			binary.BigEndian.PutUint64(s.ctr[:], s.next)
			s.mac.Write(s.ctr[:])
			s.mac.Sum(s.block[:0])
			s.next++
			s.used = 0
		}
		want := p[n:]
		if rem := maxStream - s.total; len(want) > rem {
			want = want[:rem]
		}
		c := copy(want, s.block[s.used:])
		s.used += c
		s.total += c
		n += c
	}
	return n, nil
}

// Hash is HMAC-SHA256(key, "hash/v1" || token): what the store keeps, and
// what the gateway looks a token up by.
//
// It panics on a Minter not made by NewMinter: an empty key would make every
// hash predictable, and the signature has no error to return.
func (m *Minter) Hash(token []byte) []byte {
	if m == nil || len(m.key) != KeySize {
		panic(errNoKey)
	}
	h := hmac.New(sha256.New, m.key)
	h.Write([]byte(hashLabel))
	h.Write(token)
	return h.Sum(nil)
}

// proxyLabel separates proxy credentials from every other use of the key.
const proxyLabel = "proxy/v1"

// ProxyToken is the explicit-proxy password of a sandbox: a sandbox that
// standin does not run names itself to the gateway with
// Proxy-Authorization: Basic base64(<sandbox name>:<token>). Derived, like
// stand-ins, so it is never stored; deleting the sandbox ends it.
func (m *Minter) ProxyToken(sandboxID string) string {
	if m == nil || len(m.key) != KeySize {
		panic(errNoKey)
	}
	h := hmac.New(sha256.New, m.key)
	h.Write([]byte(proxyLabel))
	h.Write([]byte(sandboxID))
	return "stp_" + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

const redacted = "standin.Minter{key: REDACTED}"

// String redacts the key.
func (Minter) String() string { return redacted }

// GoString redacts the key (%#v).
func (Minter) GoString() string { return redacted }

// Format redacts the key for every verb, including %x and %+v, which
// would otherwise print struct fields.
func (Minter) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue redacts the key in slog output.
func (Minter) LogValue() slog.Value { return slog.StringValue(redacted) }
