package gateway

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Test values: a GitHub-like token, and one with bytes that URL and base64
// encodings change ('/', '+', ' ', and bytes giving '+' and '/' in base64).
const (
	scrubValue   = "ghp_R3alV4lueAbCdEfGhIjKlMnOpQrStUvWx"
	scrubStandIn = "ghp_St4ndInZyXwVuTsRqPoNmLkJiHgFeDcBa"
	oddValue     = "s3cr3t/v+l ue?=&\xfb\xff\xfe~END"
	oddStandIn   = "STANDIN-odd-value-replacement"
)

func scrubPairs() []ScrubPair {
	return []ScrubPair{
		{Value: []byte(scrubValue), StandIn: []byte(scrubStandIn)},
		{Value: []byte(oddValue), StandIn: []byte(oddStandIn)},
	}
}

func TestScrubBytes(t *testing.T) {
	s := NewScrubber(scrubPairs())
	b64 := func(enc *base64.Encoding, s string) string { return enc.EncodeToString([]byte(s)) }
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"no match", "hello world", "hello world"},
		{"raw alone", scrubValue, scrubStandIn},
		{"raw in json", `{"token":"` + scrubValue + `","n":1}`, `{"token":"` + scrubStandIn + `","n":1}`},
		{"raw twice adjacent", scrubValue + scrubValue, scrubStandIn + scrubStandIn},
		{"raw prefix only", scrubValue[:20] + "!", scrubValue[:20] + "!"},
		{"both pairs", "a=" + scrubValue + "&b=" + oddValue, "a=" + scrubStandIn + "&b=" + oddStandIn},
		{"query escaped", "?k=" + url.QueryEscape(oddValue) + "&x=1", "?k=" + url.QueryEscape(oddStandIn) + "&x=1"},
		{"path escaped", "/v1/" + url.PathEscape(oddValue) + "/x", "/v1/" + url.PathEscape(oddStandIn) + "/x"},
		{"base64 std", b64(base64.StdEncoding, scrubValue), b64Swap(base64.StdEncoding, scrubValue, scrubStandIn)},
		{"base64 url", b64(base64.URLEncoding, scrubValue), b64Swap(base64.URLEncoding, scrubValue, scrubStandIn)},
		{"base64 raw std", b64(base64.RawStdEncoding, scrubValue), b64Swap(base64.RawStdEncoding, scrubValue, scrubStandIn)},
		{"base64 raw url", b64(base64.RawURLEncoding, scrubValue), b64Swap(base64.RawURLEncoding, scrubValue, scrubStandIn)},
		{"basic whole", "Basic " + b64(base64.StdEncoding, "u:"+scrubValue), "Basic " + b64(base64.StdEncoding, "u:"+scrubStandIn)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(s.Bytes([]byte(tt.in))); got != tt.want {
				t.Errorf("Bytes(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := s.String(tt.in); got != tt.want {
				t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := scrubAll(t, s, []byte(tt.in), 1, 1); string(got) != tt.want {
				t.Errorf("Reader(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// b64Swap is enc(v) with the characters that depend on v alone replaced by
// those of enc(si), v and si of the same length: the last character, which
// mixes v's last bits with padding, stays.
func b64Swap(enc *base64.Encoding, v, si string) string {
	hi := 4 * len(v) / 3
	return enc.EncodeToString([]byte(si))[:hi] + enc.EncodeToString([]byte(v))[hi:]
}

func TestScrubBytesUnchangedIsSame(t *testing.T) {
	s := NewScrubber(scrubPairs())
	in := []byte("nothing to see here, not even ghp_")
	if out := s.Bytes(in); &out[0] != &in[0] {
		t.Errorf("Bytes(%q) returned a copy, want b itself", in)
	}
}

func TestScrubEmpty(t *testing.T) {
	for _, s := range []*Scrubber{nil, NewScrubber(nil), NewScrubber([]ScrubPair{{Value: nil, StandIn: []byte("x")}})} {
		in := []byte("anything " + scrubValue)
		if got := s.Bytes(in); !bytes.Equal(got, in) {
			t.Errorf("empty Bytes(%q) = %q", in, got)
		}
		rc := io.NopCloser(bytes.NewReader(in))
		if got := s.Reader(rc); got != rc {
			t.Errorf("empty Reader(rc) = %T, want rc itself", got)
		}
		h := http.Header{"X": {scrubValue}}
		s.Header(h)
		if h.Get("X") != scrubValue {
			t.Errorf("empty Header changed %q", h.Get("X"))
		}
		if g := s.MaxGrowth(100); g != 0 {
			t.Errorf("empty MaxGrowth(100) = %d, want 0", g)
		}
	}
}

// TestScrubBase64Alignments puts each value at every byte alignment inside
// longer base64 text, in every alphabet, with and without padding: the
// value's core must be gone, and the stand-in's bytes (less the boundary
// bytes that share characters with the context) must decode out of it.
func TestScrubBase64Alignments(t *testing.T) {
	s := NewScrubber(scrubPairs())
	encs := []struct {
		name string
		enc  *base64.Encoding
	}{
		{"std", base64.StdEncoding},
		{"url", base64.URLEncoding},
		{"rawstd", base64.RawStdEncoding},
		{"rawurl", base64.RawURLEncoding},
	}
	contexts := []struct{ name, pre, post string }{
		{"basic", "Authorization: Basic ", "\r\n"},
		{"git", "x-access-token:", ""},
		{"json", `{"key":"`, `","more":"data follows"}`},
	}
	for _, p := range scrubPairs() {
		for _, e := range encs {
			for _, c := range contexts {
				for k := range 3 {
					pre := strings.Repeat("p", k) + c.pre
					name := fmt.Sprintf("%s/%s/%q/+%d", e.name, c.name, p.Value[:4], k)
					t.Run(name, func(t *testing.T) {
						in := e.enc.EncodeToString([]byte(pre + string(p.Value) + c.post))
						out := string(s.Bytes([]byte(in)))
						for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
							for k := range 3 {
								if core := base64Core(enc, k, p.Value); len(core) > 0 && strings.Contains(out, string(core)) {
									t.Errorf("Bytes(%q) = %q, still holds core %q", in, out, core)
								}
							}
						}
						if len(p.Value) != len(p.StandIn) {
							return // decoding past a length change is garbage
						}
						dec, err := e.enc.DecodeString(out)
						if err != nil {
							t.Fatalf("decode scrubbed %q: %v", out, err)
						}
						if bytes.Contains(dec, p.Value) {
							t.Errorf("decoded %q holds the value", dec)
						}
						mid := p.StandIn[1 : len(p.StandIn)-1]
						if !bytes.Contains(dec, mid) {
							t.Errorf("decoded %q does not hold stand-in %q", dec, mid)
						}
						want := pre + string(p.StandIn) + c.post
						if i := len(pre); len(dec) != len(want) || string(dec[:i]) != pre || string(dec[i+len(p.Value):]) != c.post {
							t.Errorf("decoded %q, want context kept as in %q", dec, want)
						}
					})
				}
			}
		}
	}
}

func TestScrubBase64Core(t *testing.T) {
	// A core is the part of the encoding that depends on v alone: it must
	// appear whatever bytes are around v.
	v := []byte(oddValue)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for k := range 3 {
			core := base64Core(enc, k, v)
			for _, around := range []byte{0x00, 0xff, 0x55} {
				for after := range 4 {
					data := append(bytes.Repeat([]byte{around}, k), v...)
					data = append(data, bytes.Repeat([]byte{around}, after)...)
					if e := enc.EncodeToString(data); !strings.Contains(e, string(core)) {
						t.Errorf("base64Core(%d) = %q, not in %q", k, core, e)
					}
				}
			}
		}
	}
	for _, tt := range []struct{ k, n, want int }{{0, 0, 0}, {2, 0, 0}, {2, 1, 1}, {1, 4, 4}, {2, 4, 5}, {0, 4, 5}, {0, 6, 8}, {1, 6, 7}, {2, 6, 7}} {
		if got := len(base64Core(base64.StdEncoding, tt.k, []byte("abcdefgh")[:tt.n])); got != tt.want {
			t.Errorf("len(base64Core(%d, %d bytes)) = %d, want %d", tt.k, tt.n, got, tt.want)
		}
	}
	// A 6-byte value has a core of 8 characters only when aligned.
	if got := len(NewScrubber([]ScrubPair{{Value: []byte("abcdef"), StandIn: []byte("ABCDEF")}}).pats); got != 2 {
		t.Errorf("patterns of a 6-byte value = %d, want 2 (raw, aligned core)", got)
	}
}

func TestScrubHeader(t *testing.T) {
	s := NewScrubber(scrubPairs())
	h := http.Header{
		"Content-Type":    {"application/json"},
		"X-Echo":          {"Bearer " + scrubValue, "plain"},
		"Www-Basic":       {"Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+scrubValue))},
		"X-" + scrubValue: {"name leak"},
	}
	s.Header(h)
	want := http.Header{
		"Content-Type":      {"application/json"},
		"X-Echo":            {"Bearer " + scrubStandIn, "plain"},
		"Www-Basic":         {"Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+scrubStandIn))},
		"X-" + scrubStandIn: {"name leak"},
	}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("Header: (-want +got)\n%s", diff)
	}
	s.Header(nil) // a response without trailers
}

func TestScrubMaxGrowth(t *testing.T) {
	v, si := "abcdefghij", "0123456789ABCDEFGHIJ" // 10 -> 20 bytes
	s := NewScrubber([]ScrubPair{{Value: []byte(v), StandIn: []byte(si)}})
	for _, n := range []int{0, 9, 10, 35, 100} {
		for _, in := range []string{
			strings.Repeat(v, n/len(v)) + strings.Repeat("z", n%len(v)),
			base64.StdEncoding.EncodeToString([]byte("." + strings.Repeat(v, n))),
		} {
			got := int64(len(s.Bytes([]byte(in))) - len(in))
			if max := s.MaxGrowth(int64(len(in))); got > max || got <= 0 && len(in) >= len(v) {
				t.Errorf("%d bytes grew by %d, MaxGrowth(%d) = %d", len(in), got, len(in), max)
			}
		}
	}
}

// chunkReader returns data in chunks of the given sizes, cycling.
type chunkReader struct {
	data  []byte
	sizes []int
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(c.sizes[c.i%len(c.sizes)], len(p), len(c.data))
	c.i++
	n = copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func (c *chunkReader) Close() error { return nil }

// scrubAll reads in through s.Reader with source chunks of chunk bytes and
// Read buffers of readSize bytes.
func scrubAll(tb testing.TB, s *Scrubber, in []byte, chunk, readSize int) []byte {
	tb.Helper()
	return scrubChunks(tb, s, in, []int{chunk}, []int{readSize})
}

func scrubChunks(tb testing.TB, s *Scrubber, in []byte, chunks, readSizes []int) []byte {
	tb.Helper()
	r := s.Reader(&chunkReader{data: in, sizes: chunks})
	var out []byte
	for i := 0; ; i++ {
		p := make([]byte, readSizes[i%len(readSizes)])
		n, err := r.Read(p)
		out = append(out, p[:n]...)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			tb.Fatalf("Read: %v", err)
		}
		if i > 10*len(in)+100 {
			tb.Fatalf("Read made no progress")
		}
	}
}

// TestScrubReaderSplits checks that a match split at any point, or spread
// one byte per read, is still caught, and that small Read buffers get
// every byte of output longer than the input.
func TestScrubReaderSplits(t *testing.T) {
	pairs := append(scrubPairs(), ScrubPair{Value: []byte("short-value"), StandIn: []byte("a-much-longer-stand-in-value")})
	s := NewScrubber(pairs)
	inputs := []string{
		"x" + scrubValue + "y",
		scrubValue[:10] + scrubValue + scrubValue[10:],
		"short-valueshort-value;short-valu",
		"q=" + url.QueryEscape(oddValue),
		"Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+scrubValue)),
		"P" + base64.URLEncoding.EncodeToString([]byte("ab"+oddValue+"cd")),
	}
	for _, in := range inputs {
		want := string(s.Bytes([]byte(in)))
		if want == in {
			t.Fatalf("Bytes(%q) changed nothing; bad test input", in)
		}
		t.Run(in[:8], func(t *testing.T) {
			for _, rs := range []int{1, 3, 4096} {
				if got := string(scrubAll(t, s, []byte(in), 1, rs)); got != want {
					t.Errorf("1-byte chunks, %d-byte reads: %q, want %q", rs, got, want)
				}
			}
			for i := 0; i <= len(in); i++ {
				got := string(scrubChunks(t, s, []byte(in), []int{i, len(in)}, []int{4096}))
				if got != want {
					t.Errorf("split at %d: %q, want %q", i, got, want)
				}
			}
		})
	}
}

func TestScrubReaderCloseAndErrors(t *testing.T) {
	s := NewScrubber(scrubPairs())
	errBoom := errors.New("boom")
	src := &scriptReader{steps: []scriptStep{{data: "ok " + scrubValue[:5]}, {err: errBoom}}}
	r := s.Reader(src)
	got, err := io.ReadAll(r)
	if !errors.Is(err, errBoom) {
		t.Errorf("ReadAll error = %v, want %v", err, errBoom)
	}
	// The held-back tail is released at the error: it is not a value.
	if want := "ok " + scrubValue[:5]; string(got) != want {
		t.Errorf("ReadAll = %q, want %q", got, want)
	}
	if err := r.Close(); err != nil || !src.closed {
		t.Errorf("Close = %v, source closed %v; want nil, true", err, src.closed)
	}
}

type scriptStep struct {
	data string
	err  error
}

// scriptReader returns one step per Read.
type scriptReader struct {
	steps  []scriptStep
	closed bool
}

func (s *scriptReader) Read(p []byte) (int, error) {
	if len(s.steps) == 0 {
		return 0, io.EOF
	}
	st := s.steps[0]
	s.steps = s.steps[1:]
	return copy(p, st.data), st.err
}

func (s *scriptReader) Close() error { s.closed = true; return nil }

// TestScrubReaderStreams feeds events through a pipe that blocks after each
// one: every event (less a tail that could start a value) must come out of
// the next Read, without the scrubber waiting for more data.
func TestScrubReaderStreams(t *testing.T) {
	s := NewScrubber(scrubPairs())
	pr, pw := io.Pipe()
	defer pw.Close()
	r := s.Reader(pr)
	defer r.Close()
	events := []struct{ in, want string }{
		{"event: a\ndata: hello\n\n", "event: a\ndata: hello\n\n"},
		{"data: " + scrubValue + "\n\n", "data: " + scrubStandIn + "\n\n"},
		// Ends with the value's first bytes: those wait for the next event.
		{"data: {\"k\":\"" + scrubValue[:12], "data: {\"k\":\""},
		{scrubValue[12:] + "\"}\n\n", scrubStandIn + "\"}\n\n"},
		{"data: [DONE]\n\n", "data: [DONE]\n\n"},
	}
	for i, ev := range events {
		go func() { pw.Write([]byte(ev.in)) }()
		got := make(chan string, 1)
		go func() {
			p := make([]byte, 4096)
			n, err := r.Read(p)
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			got <- string(p[:n])
		}()
		select {
		case g := <-got:
			if g != ev.want {
				t.Fatalf("event %d: Read = %q, want %q", i, g, ev.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d: Read did not return the event: the scrubber waits for more data", i)
		}
	}
}

// scrubWatch is a source that checks, at every Read, that the scrubbing
// reader around it holds no more than a pattern's length and keeps its
// buffers' size.
type scrubWatch struct {
	tb      testing.TB
	r       *scrubReader
	block   []byte
	off     int
	left    int
	bufCap  int
	maxHeld int
	maxOut  int
}

func (w *scrubWatch) Read(p []byte) (int, error) {
	if w.r != nil {
		if held := w.r.heldTo - w.r.heldFrom; held >= w.r.s.maxLen {
			w.tb.Fatalf("scrubber holds %d bytes, longest pattern is %d", held, w.r.s.maxLen)
		}
		w.maxHeld = max(w.maxHeld, w.r.heldTo-w.r.heldFrom)
		w.maxOut = max(w.maxOut, cap(w.r.scratch))
		if cap(w.r.buf) != w.bufCap {
			w.tb.Fatalf("scrubber buffer grew from %d to %d bytes", w.bufCap, cap(w.r.buf))
		}
	}
	if w.left == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), w.left)], w.block[w.off:])
	w.off = (w.off + n) % len(w.block)
	w.left -= n
	return n, nil
}

func (w *scrubWatch) Close() error { return nil }

// TestScrubReaderLargeStream copies 64 MiB holding many values through the
// scrubber and checks its memory stays bounded by the pattern length.
func TestScrubReaderLargeStream(t *testing.T) {
	const total = 64 << 20
	pairs := []ScrubPair{{Value: []byte(scrubValue), StandIn: []byte(scrubStandIn + "+4by")}}
	s := NewScrubber(pairs)
	block := scrubText(1<<20, 1000, pairs[0].Value, 1)
	perBlock := bytes.Count(block, pairs[0].Value)
	w := &scrubWatch{tb: t, block: block, left: total}
	r := s.Reader(w).(*scrubReader)
	w.r, w.bufCap = r, cap(r.buf)
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		t.Fatalf("io.Copy: %v", err)
	}
	if want := int64(total + 64*perBlock*4); n != want {
		t.Errorf("io.Copy = %d bytes, want %d (%d values each 4 bytes longer)", n, want, 64*perBlock)
	}
	// append may round the output buffer up to twice a chunk's output.
	if limit := 2 * (readChunk + s.maxLen) * (len(scrubValue) + 4) / len(scrubValue); w.maxOut > limit {
		t.Errorf("output buffer grew to %d bytes, want at most %d", w.maxOut, limit)
	}
	t.Logf("held at most %d bytes, output buffer %d bytes", w.maxHeld, w.maxOut)
}

// scrubText returns n bytes of text-like data with value inserted about
// every `every` bytes, deterministically.
func scrubText(n, every int, value []byte, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	const alphabet = `abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-":{},` + "\n"
	out := make([]byte, 0, n)
	for len(out) < n {
		if every > 0 && rng.IntN(every) == 0 && n-len(out) > len(value) {
			out = append(out, value...)
			continue
		}
		out = append(out, alphabet[rng.IntN(len(alphabet))])
	}
	return out
}

// FuzzScrubReader inserts a value into random data at random places and
// reads it back in random chunks through random Read sizes: the output never
// holds the value, equals Bytes of the input, and equals the input when the
// input holds no pattern.
func FuzzScrubReader(f *testing.F) {
	f.Add([]byte("some data here"), []byte(scrubValue), []byte{3, 1, 7}, []byte{1, 2, 3}, []byte{5, 1})
	f.Add([]byte("no value"), []byte(oddValue), []byte{}, []byte{1}, []byte{1})
	f.Add([]byte(scrubValue[:30]+"Basic "), []byte(scrubValue), []byte{0, 30, 30}, []byte{1, 200}, []byte{100})
	f.Fuzz(func(t *testing.T, data, value, places, chunks, reads []byte) {
		if len(value) == 0 || len(value) > 64 || len(data) > 4096 || len(places) > 16 {
			return
		}
		// A stand-in whose every form shares no byte with the value, so a
		// replacement cannot complete a value with its neighbours.
		var s *Scrubber
		for _, c := range []byte{0x00, 0xff, '~', 'A', 'z'} {
			cand := NewScrubber([]ScrubPair{{Value: value, StandIn: bytes.Repeat([]byte{c}, len(value)+3)}})
			if !scrubReplShares(cand, value) {
				s = cand
				break
			}
		}
		if s == nil {
			return
		}
		in := append([]byte(nil), data...)
		for _, pl := range places {
			i := int(pl) * 16 % (len(in) + 1)
			in = append(in[:i], append(append([]byte(nil), value...), in[i:]...)...)
		}
		sizes := scrubSizes(chunks)
		rsizes := scrubSizes(reads)
		out := scrubChunks(t, s, in, sizes, rsizes)
		if bytes.Contains(out, value) {
			t.Fatalf("Reader(%q) = %q, holds value %q", in, out, value)
		}
		if want := s.Bytes(in); !bytes.Equal(out, want) {
			t.Fatalf("Reader(%q) = %q, Bytes = %q", in, out, want)
		}
		hasPattern := false
		for _, p := range s.pats {
			hasPattern = hasPattern || bytes.Contains(in, p.find)
		}
		if !hasPattern && !bytes.Equal(out, in) {
			t.Fatalf("Reader(%q) = %q, want it unchanged", in, out)
		}
	})
}

func scrubReplShares(s *Scrubber, value []byte) bool {
	for _, p := range s.pats {
		if bytes.ContainsAny(value, string(p.repl)) || bytes.ContainsAny(p.repl, string(value)) {
			return true
		}
	}
	return false
}

func scrubSizes(b []byte) []int {
	sizes := []int{1}
	for _, c := range b {
		sizes = append(sizes, int(c)+1)
	}
	return sizes
}

// benchScrubReader measures copying data through s.Reader.
func benchScrubReader(b *testing.B, s *Scrubber, data []byte) {
	b.SetBytes(int64(len(data)))
	b.ResetTimer() // b.Loop would too; setting up the data is not measured
	for b.Loop() {
		if _, err := io.Copy(io.Discard, s.Reader(io.NopCloser(bytes.NewReader(data)))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScrubReader scrubs 10 MB of text holding two values here and
// there.
func BenchmarkScrubReader(b *testing.B) {
	s := NewScrubber(scrubPairs())
	data := scrubText(10<<20, 100000, []byte(scrubValue), 2)
	benchScrubReader(b, s, data)
}

// BenchmarkScrubBytes is the one-shot form over the same data.
func BenchmarkScrubBytes(b *testing.B) {
	s := NewScrubber(scrubPairs())
	data := scrubText(10<<20, 100000, []byte(scrubValue), 2)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		s.Bytes(data)
	}
}

// BenchmarkScrubReader16 is BenchmarkScrubReader with 16 pairs, none of
// which occurs: the cost of the search does not grow with the pairs.
func BenchmarkScrubReader16(b *testing.B) {
	var pairs []ScrubPair
	for i := range 16 {
		pairs = append(pairs, ScrubPair{
			Value:   fmt.Appendf(nil, "sk-%02d-R3alV4lue/AbCdEf+GhIjKlMnOpQ", i),
			StandIn: fmt.Appendf(nil, "sk-%02d-St4ndInZyXwVuTsRqPoNmLkJiHgF", i),
		})
	}
	s := NewScrubber(pairs)
	data := scrubText(10<<20, 100000, []byte(scrubValue), 2)
	benchScrubReader(b, s, data)
}

// BenchmarkNewScrubber is the per-request cost of building a Scrubber.
func BenchmarkNewScrubber(b *testing.B) {
	pairs := scrubPairs()
	for b.Loop() {
		NewScrubber(pairs)
	}
}

// BenchmarkScrubReaderRandom scrubs 10 MB of random bytes (a download of
// compressed or binary data) for one value shaped like an API key: the
// common case of a body that never holds the value.
func BenchmarkScrubReaderRandom(b *testing.B) {
	s := NewScrubber([]ScrubPair{{Value: []byte("sk-real-0123456789abcdef01234567"), StandIn: []byte("STANDIN-REDACTED-STANDIN-REDACTE")}})
	data := make([]byte, 10<<20)
	rand.NewChaCha8([32]byte{1}).Read(data)
	benchScrubReader(b, s, data)
}

// TestScrubSkipMatchesNaive checks the skip search against a plain
// leftmost-longest scan, on random bytes and on text, with a form of the
// value (or a prefix of one) placed at every offset in turn.
func TestScrubSkipMatchesNaive(t *testing.T) {
	value := []byte("sk-real-0123456789abcdef01234567")
	s := NewScrubber([]ScrubPair{{Value: value, StandIn: []byte("STANDIN-REDACTED-STANDIN-REDACTE-x")}})
	if s.shift == nil {
		t.Fatal("no skip table for a 32-byte value")
	}
	forms := [][]byte{value, value[:len(value)-1], []byte(base64.StdEncoding.EncodeToString(value))}
	for n := range 12 {
		base := make([]byte, 200+n*37)
		if n%2 == 0 {
			rand.NewChaCha8([32]byte{byte(n)}).Read(base)
		} else {
			base = scrubText(len(base), 0, nil, uint64(n))
		}
		f := forms[n%len(forms)]
		for at := range len(base) + 1 {
			data := append(append(append([]byte(nil), base[:at]...), f...), base[at:]...)
			if got, want := s.Bytes(data), scrubNaive(s, data); !bytes.Equal(got, want) {
				t.Fatalf("Bytes(%q) = %q, want %q", data, got, want)
			}
		}
	}
}

// scrubNaive replaces, at each position from the left, the longest
// pattern starting there.
func scrubNaive(s *Scrubber, data []byte) []byte {
	var out []byte
	for i := 0; i < len(data); {
		best := -1
		for j, p := range s.pats {
			if bytes.HasPrefix(data[i:], p.find) && (best < 0 || len(p.find) > len(s.pats[best].find)) {
				best = j
			}
		}
		if best < 0 {
			out = append(out, data[i])
			i++
			continue
		}
		out = append(out, s.pats[best].repl...)
		i += len(s.pats[best].find)
	}
	return out
}

// BenchmarkScrubHeader: the header values of a typical response, scrubbed
// as every response from a secret's host has them.
func BenchmarkScrubHeader(b *testing.B) {
	s := NewScrubber(scrubPairs())
	h := http.Header{"Content-Type": {"application/json"}, "Date": {"Fri, 27 Nov 2026 04:50:03 GMT"},
		"Server": {"nginx"}, "X-Request-Id": {"req_0123456789abcdef"}, "Cache-Control": {"no-store"},
		"Strict-Transport-Security": {"max-age=31536000; includeSubDomains"}}
	b.ReportAllocs()
	for b.Loop() {
		s.Header(h)
	}
}
