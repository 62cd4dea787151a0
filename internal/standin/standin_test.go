package standin

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/standin/standin/internal/catalog"
)

// testKey is 00 01 02 ... 1f, the key the known answers were computed with
// (independently, in Python: hmac.new(key, msg, hashlib.sha256)).
func testKey() []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

func newMinter(tb testing.TB, key []byte) *Minter {
	tb.Helper()
	m, err := NewMinter(key)
	if err != nil {
		tb.Fatalf("NewMinter: %v", err)
	}
	return m
}

func readN(tb testing.TB, m *Minter, bindingID string, attempt, n int) []byte {
	tb.Helper()
	r, err := m.Stream(bindingID, attempt)
	if err != nil {
		tb.Fatalf("Stream(%q, %d): %v", bindingID, attempt, err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		tb.Fatalf("Stream(%q, %d): read %d bytes: %v", bindingID, attempt, n, err)
	}
	return b
}

func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestNewMinterKeySize(t *testing.T) {
	for _, n := range []int{0, 1, 16, 31, 33, 64} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			m, err := NewMinter(make([]byte, n))
			if err == nil || m != nil {
				t.Fatalf("NewMinter(%d bytes) = %v, %v, want an error", n, m, err)
			}
			if want := fmt.Sprintf("%d bytes, want 32", n); !strings.Contains(err.Error(), want) {
				t.Errorf("NewMinter(%d bytes) error = %q, want it to contain %q", n, err, want)
			}
		})
	}
}

func TestNewMinterCopiesKey(t *testing.T) {
	key := testKey()
	m := newMinter(t, key)
	before := m.Hash([]byte("tok"))
	key[0] ^= 0xff
	if after := m.Hash([]byte("tok")); !bytes.Equal(before, after) {
		t.Errorf("Hash changed after the caller's key slice was modified: the key was not copied")
	}
}

// TestStreamKnownAnswer pins the derivation: stand-ins already handed out
// must come out the same after any refactoring.
func TestStreamKnownAnswer(t *testing.T) {
	m := newMinter(t, testKey())
	tests := []struct {
		name      string
		bindingID string
		attempt   int
		want      string
	}{
		// Block 0 and the first 8 bytes of block 1.
		{"attempt 0", "bnd_123", 0, "bc30b2f48f8e724f50e272c38778015a67a6cdb5585dd7a5774ac0241534b41c8c3b68d567a3ac3e"},
		{"attempt 1", "bnd_123", 1, "10872359e7619315e7dd47448b3112481a2e89d71c00101d3d0d052462af2945"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := unhex(t, tt.want)
			if got := readN(t, m, tt.bindingID, tt.attempt, len(want)); !bytes.Equal(got, want) {
				t.Errorf("Stream(%q, %d) = %x, want %x", tt.bindingID, tt.attempt, got, want)
			}
		})
	}
}

// TestStreamChunking checks Read gives the same bytes whatever the read
// sizes, across block boundaries.
func TestStreamChunking(t *testing.T) {
	m := newMinter(t, testKey())
	want := readN(t, m, "bnd_chunk", 0, 1000)
	for _, size := range []int{1, 7, 31, 32, 33, 100} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			r, err := m.Stream("bnd_chunk", 0)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			buf := make([]byte, size)
			for len(got) < len(want) {
				n, err := r.Read(buf[:min(size, len(want)-len(got))])
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
				got = append(got, buf[:n]...)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("reading in chunks of %d gave different bytes than one read", size)
			}
		})
	}
}

func TestStreamDiffers(t *testing.T) {
	other := testKey()
	other[31] ^= 1
	m, m2 := newMinter(t, testKey()), newMinter(t, other)
	type in struct {
		m         *Minter
		bindingID string
		attempt   int
	}
	inputs := map[string]in{
		"base":             {m, "bnd_1", 0},
		"other id":         {m, "bnd_2", 0},
		"id prefix":        {m, "bnd_", 0},
		"id with nul":      {m, "bnd_1\x00", 0},
		"empty id":         {m, "", 0},
		"attempt 1":        {m, "bnd_1", 1},
		"attempt 256":      {m, "bnd_1", 256},
		"attempt max":      {m, "bnd_1", math.MaxUint32},
		"other key":        {m2, "bnd_1", 0},
		"other key, empty": {m2, "", 0},
	}
	seen := map[string]string{}
	for name, x := range inputs {
		a := readN(t, x.m, x.bindingID, x.attempt, 64)
		b := readN(t, x.m, x.bindingID, x.attempt, 64)
		if !bytes.Equal(a, b) {
			t.Errorf("Stream(%q, %d) is not deterministic", x.bindingID, x.attempt)
		}
		if prev, ok := seen[string(a)]; ok {
			t.Errorf("streams %q and %q are equal", prev, name)
		}
		seen[string(a)] = name
	}
}

// TestStreamBias is a coarse check that the output is not trivially biased
// (a constant, a skewed alphabet, a stuck bit). The input is fixed, so the
// result is deterministic: the thresholds are far from what HMAC-SHA256
// gives (chi-square about 255) and far below what any such bug gives.
func TestStreamBias(t *testing.T) {
	const n = 1 << 16
	b := readN(t, newMinter(t, testKey()), "bnd_bias", 0, n)
	var counts [256]int
	var bits [8]int
	for _, c := range b {
		counts[c]++
		for i := range bits {
			bits[i] += int(c>>i) & 1
		}
	}
	expected := float64(n) / 256
	chi := 0.0
	for _, c := range counts {
		d := float64(c) - expected
		chi += d * d / expected
	}
	// 255 degrees of freedom: P(chi > 400) is about 1e-8.
	if chi > 400 {
		t.Errorf("byte distribution chi-square = %.1f over %d bytes, want < 400", chi, n)
	}
	for i, c := range bits {
		// n/2 = 32768, standard deviation 128: 1024 is 8 sigma.
		if d := c - n/2; d < -1024 || d > 1024 {
			t.Errorf("bit %d set %d times in %d bytes, want about %d", i, c, n, n/2)
		}
	}
}

func TestStreamAttemptRange(t *testing.T) {
	m := newMinter(t, testKey())
	for _, attempt := range []int{-1, math.MinInt, math.MaxUint32 + 1} {
		t.Run(fmt.Sprint(attempt), func(t *testing.T) {
			if _, err := m.Stream("bnd_1", attempt); err == nil {
				t.Errorf("Stream(%q, %d) error = nil, want out of range", "bnd_1", attempt)
			}
			if _, err := m.StandIn("bnd_1", attempt, catalog.Shape{}); err == nil {
				t.Errorf("StandIn(%q, %d) error = nil, want out of range", "bnd_1", attempt)
			}
		})
	}
}

func TestStreamExhausted(t *testing.T) {
	r, err := newMinter(t, testKey()).Stream("bnd_1", 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if !errors.Is(err, ErrStreamExhausted) || len(b) != maxStream {
		t.Errorf("ReadAll(stream) = %d bytes, %v; want %d bytes, ErrStreamExhausted", len(b), err, maxStream)
	}
}

func TestZeroMinter(t *testing.T) {
	var m Minter
	if _, err := m.Stream("bnd_1", 0); err == nil {
		t.Errorf("zero Minter: Stream error = nil, want an error")
	}
	if _, err := m.StandIn("bnd_1", 0, catalog.Shape{}); err == nil {
		t.Errorf("zero Minter: StandIn error = nil, want an error")
	}
	defer func() {
		if recover() == nil {
			t.Errorf("zero Minter: Hash did not panic")
		}
	}()
	m.Hash([]byte("tok"))
}

func TestHash(t *testing.T) {
	m := newMinter(t, testKey())
	tok := []byte("sk-ant-api03-standin")
	want := unhex(t, "742016d7fcae091bd78e4427822b4323ca306bed281861b9dd280ba532cbb19e")
	if got := m.Hash(tok); !bytes.Equal(got, want) {
		t.Errorf("Hash(%q) = %x, want %x", tok, got, want)
	}

	other := testKey()
	other[0] ^= 1
	hashes := map[string]string{
		"base":      string(m.Hash(tok)),
		"other tok": string(m.Hash([]byte("sk-ant-api03-standio"))),
		"empty tok": string(m.Hash(nil)),
		"other key": string(newMinter(t, other).Hash(tok)),
	}
	seen := map[string]string{}
	for name, h := range hashes {
		if len(h) != 32 {
			t.Errorf("%s: Hash length %d, want 32", name, len(h))
		}
		if prev, ok := seen[h]; ok {
			t.Errorf("hashes %q and %q are equal", prev, name)
		}
		seen[h] = name
	}
}

// TestHashSeparatedFromStream checks the labels keep a hash from equalling
// a stream block for a crafted token.
func TestHashSeparatedFromStream(t *testing.T) {
	m := newMinter(t, testKey())
	block := readN(t, m, "bnd_1", 0, 32)
	// The full HMAC input of stream block 0: equal hashes would mean Hash
	// lost its label.
	msg := append([]byte(streamLabel), 0, 0, 0, 5)
	msg = append(msg, "bnd_1\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"...)
	if h := m.Hash(msg); bytes.Equal(h, block) {
		t.Errorf("Hash(stream input) equals the stream block")
	}
}

func TestRedaction(t *testing.T) {
	key := bytes.Repeat([]byte{0xab}, KeySize)
	m := newMinter(t, key)
	type holder struct {
		Name string
		M    *Minter
		V    Minter
	}
	h := holder{"x", m, *m}

	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, m), fmt.Sprintf(verb, *m), fmt.Sprintf(verb, h))
	}
	outs = append(outs, fmt.Sprint(m), fmt.Sprintln(*m), m.String(), m.GoString())

	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	log.Info("minter", "m", m, "v", *m, "h", h)
	log = slog.New(slog.NewTextHandler(&logged, nil))
	log.Info("minter", "m", m, "v", *m)
	outs = append(outs, logged.String())

	leaks := []string{
		hex.EncodeToString(key), strings.ToUpper(hex.EncodeToString(key)),
		string(key), "171 171 171", "0xab", "171,171", "q6urq6ur", // decimal, Go syntax, base64
	}
	for _, out := range outs {
		if !strings.Contains(out, "REDACTED") {
			t.Errorf("output %q does not say REDACTED", out)
		}
		for _, leak := range leaks {
			if strings.Contains(out, leak) {
				t.Errorf("output %q contains the key (%q)", out, leak)
			}
		}
	}
}

// customShape is a shape with no checksum, so the test depends only on
// catalog's generic minting.
var customShape = catalog.Shape{
	Prefix:   "sk-test-",
	Alphabet: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
	Length:   40,
}

func TestStandIn(t *testing.T) {
	m := newMinter(t, testKey())
	tok, err := m.StandIn("bnd_1", 0, customShape)
	if err != nil {
		t.Fatalf("StandIn(%q, 0): %v", "bnd_1", err)
	}
	if !strings.HasPrefix(tok, customShape.Prefix) || !customShape.Valid(tok) {
		t.Errorf("StandIn(%q, 0) = %q, not of shape %+v", "bnd_1", tok, customShape)
	}

	// StandIn is exactly Mint over Stream.
	r, err := m.Stream("bnd_1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if want, err := customShape.Mint(r); err != nil || tok != want {
		t.Errorf("StandIn(%q, 0) = %q; Mint(Stream) = %q, %v", "bnd_1", tok, want, err)
	}

	again, err := m.StandIn("bnd_1", 0, customShape)
	if err != nil || again != tok {
		t.Errorf("StandIn(%q, 0) again = %q, %v, want %q", "bnd_1", again, err, tok)
	}
	for _, other := range []struct {
		id      string
		attempt int
	}{{"bnd_1", 1}, {"bnd_2", 0}} {
		got, err := m.StandIn(other.id, other.attempt, customShape)
		if err != nil {
			t.Fatalf("StandIn(%q, %d): %v", other.id, other.attempt, err)
		}
		if got == tok {
			t.Errorf("StandIn(%q, %d) = StandIn(%q, 0) = %q, want different", other.id, other.attempt, "bnd_1", tok)
		}
	}
}

func BenchmarkStandIn(b *testing.B) {
	m := newMinter(b, testKey())
	for b.Loop() {
		if _, err := m.StandIn("bnd_0123456789abcdef", 0, customShape); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStream64(b *testing.B) {
	m := newMinter(b, testKey())
	buf := make([]byte, 64)
	for b.Loop() {
		r, err := m.Stream("bnd_0123456789abcdef", 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHash(b *testing.B) {
	m := newMinter(b, testKey())
	tok := []byte("sk-ant-api03-" + strings.Repeat("x", 95))
	for b.Loop() {
		m.Hash(tok)
	}
}

// referenceBlock is the derivation written out directly from the doc
// comment, to check the streaming reader against.
func referenceBlock(key []byte, bindingID string, attempt uint32, i uint64) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("standin/v1"))
	mac.Write(binary.BigEndian.AppendUint32(nil, uint32(len(bindingID))))
	mac.Write([]byte(bindingID))
	mac.Write(binary.BigEndian.AppendUint32(nil, attempt))
	mac.Write(binary.BigEndian.AppendUint64(nil, i))
	return mac.Sum(nil)
}

// FuzzStream reads the stream in fuzzer-chosen chunk sizes and compares it
// with the reference derivation.
func FuzzStream(f *testing.F) {
	f.Add("bnd_1", uint32(0), []byte{1, 31, 32, 33})
	f.Add("", uint32(math.MaxUint32), []byte{0, 64, 200})
	f.Fuzz(func(t *testing.T, bindingID string, attempt uint32, chunks []byte) {
		key := testKey()
		m := newMinter(t, key)
		r, err := m.Stream(bindingID, int(attempt))
		if err != nil {
			t.Fatalf("Stream(%q, %d): %v", bindingID, attempt, err)
		}
		var got []byte
		for _, c := range chunks {
			buf := make([]byte, c)
			n, err := r.Read(buf)
			if err != nil || n != len(buf) {
				t.Fatalf("Read(%d bytes) = %d, %v", len(buf), n, err)
			}
			got = append(got, buf...)
		}
		var want []byte
		for i := uint64(0); len(want) < len(got); i++ {
			want = append(want, referenceBlock(key, bindingID, attempt, i)...)
		}
		if !bytes.Equal(got, want[:len(got)]) {
			t.Errorf("Stream(%q, %d) read in chunks %v = %x, want %x", bindingID, attempt, chunks, got, want[:len(got)])
		}
	})
}

// TestStandInCatalogShapes mints a stand-in for every key format in the
// catalog: each must be valid for its shape (checksums included), stable,
// and different per binding.
func TestStandInCatalogShapes(t *testing.T) {
	m := newMinter(t, testKey())
	n := 0
	for _, p := range catalog.Providers() {
		for _, s := range catalog.Shapes(p) {
			n++
			t.Run(p.ID+"/"+s.Format, func(t *testing.T) {
				a, err := m.StandIn("bnd_1", 0, s)
				if err != nil {
					t.Fatalf("StandIn(%q, 0, %+v): %v", "bnd_1", s, err)
				}
				if !s.Valid(a) {
					t.Errorf("StandIn(%q, 0, %+v) = %q, not valid for its shape", "bnd_1", s, a)
				}
				if again, err := m.StandIn("bnd_1", 0, s); err != nil || again != a {
					t.Errorf("StandIn(%q, 0, %+v) again = %q, %v, want %q", "bnd_1", s, again, err, a)
				}
				b, err := m.StandIn("bnd_2", 0, s)
				if err != nil {
					t.Fatalf("StandIn(%q, 0, %+v): %v", "bnd_2", s, err)
				}
				if a == b {
					t.Errorf("StandIn gave %q for two bindings", a)
				}
			})
		}
	}
	if n == 0 {
		t.Fatal("catalog has no key formats")
	}
}
