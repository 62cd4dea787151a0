package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// ScrubPair is a real value and the stand-in that replaces it.
type ScrubPair struct{ Value, StandIn []byte }

// minCore is the shortest base64 core that is scrubbed. A core is the part of
// a value's base64 form that does not depend on the bytes around it; shorter
// than this it matches ordinary base64 text by chance too often, and it
// carries at most a few bytes of the value. Values of 7 bytes or more give
// cores this long at every alignment, 6-byte values only at a 3-byte
// boundary. Raw and percent-encoded forms are scrubbed at any length.
const minCore = 8

// readChunk is the most a scrubbing Reader asks its source for at once: as
// much as the proxy's copy buffer takes.
const readChunk = copyBufSize

// Scrubber removes real secret values from responses (reflection defence):
// the raw value, its common text forms (percent-encoded with upper- or
// lower-case hex, in a JSON string with or without "\/", HTML-escaped: see
// textForms), and its standard and URL-safe base64 forms at each of the
// three byte alignments (so a value inside a larger base64 blob such as
// Basic auth is still found) are replaced by the same encoding of the
// stand-in.
//
// Matching is leftmost-longest and non-overlapping, the same for Bytes and
// for any chunking of a Reader (one whose source pauses or breaks inside a
// value hides the value's start instead: see Reader). It does not catch a
// value split by something inserted into it (a line break in MIME base64;
// WebSocket frame headers are taken out first, see newWSReader) or other
// encodings (hex, upper case), nor part of a value (a prefix the upstream
// cut). In base64 the one or two characters at each end of an
// encoded value that mix its bits with its neighbours' are left as they
// are: they carry a few bits, never the value.
//
// A nil or empty Scrubber changes nothing. It is safe for concurrent use.
type Scrubber struct {
	pats   []pattern
	maxLen int // longest find

	// A prefilter, so one pass over the data serves every pattern: bit k
	// of pair is set when a pattern of two bytes or more starts with the
	// bytes k>>8, k&0xff; byPair lists those patterns, longest first.
	// single[c] is 1 + the index of the one-byte pattern c, if any.
	pair      [1 << 16 / 64]uint64
	byPair    map[uint16][]int
	single    [256]int
	hasSingle bool

	// Wu-Manber skip table over 2-byte blocks: with every pattern at
	// least minLen long, a window of minLen bytes starting at i can only
	// start a match if shift[block ending the window] is 0; otherwise no
	// match starts before i+shift. It lets a scan of data without the
	// value move several bytes per step instead of one.
	minLen int
	shift  []uint8
	// near has bit k set when shift[k] is less than minLen-1: the blocks
	// found near the start of some pattern. It is shift's common case in
	// 8 KiB, which stays in the L1 cache where the 64 KiB table does not.
	near *[1 << 16 / 64]uint64
}

// pattern is one encoded form of a value and its replacement.
type pattern struct{ find, repl []byte }

// NewScrubber returns a Scrubber for pairs. With no pairs it changes nothing.
// Pairs with an empty value are ignored. If two pairs share a form, the
// first pair's stand-in is used.
func NewScrubber(pairs []ScrubPair) *Scrubber {
	s := &Scrubber{}
	seen := make(map[string]bool)
	add := func(find, repl []byte) {
		if len(find) == 0 || seen[string(find)] {
			return
		}
		seen[string(find)] = true
		s.pats = append(s.pats, pattern{find: find, repl: repl})
		s.maxLen = max(s.maxLen, len(find))
	}
	for _, p := range pairs {
		if len(p.Value) == 0 {
			continue
		}
		// Copies, so a caller reusing its buffers cannot change us.
		v, si := string(p.Value), string(p.StandIn)
		add([]byte(v), []byte(si))
		for _, form := range textForms {
			if e := form(v); e != v {
				add([]byte(e), []byte(form(si)))
			}
		}
		// Raw (unpadded) encodings have the same cores as padded ones:
		// a core never reaches the padding.
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			for k := range 3 {
				if c := base64Core(enc, k, p.Value); len(c) >= minCore {
					add(c, base64Core(enc, k, p.StandIn))
				}
			}
		}
	}
	s.byPair = make(map[uint16][]int)
	for i, p := range s.pats {
		if len(p.find) == 1 {
			s.single[p.find[0]] = i + 1
			s.hasSingle = true
			continue
		}
		k := uint16(p.find[0])<<8 | uint16(p.find[1])
		s.pair[k/64] |= 1 << (k % 64)
		s.byPair[k] = append(s.byPair[k], i)
	}
	for _, idx := range s.byPair {
		slices.SortStableFunc(idx, func(a, b int) int { return len(s.pats[b].find) - len(s.pats[a].find) })
	}
	s.buildShift()
	return s
}

// buildShift fills the skip table when every pattern has at least 3 bytes.
func (s *Scrubber) buildShift() {
	if len(s.pats) == 0 || s.hasSingle {
		return
	}
	m := len(s.pats[0].find)
	for _, p := range s.pats {
		m = min(m, len(p.find))
	}
	if m < 3 {
		return
	}
	m = min(m, 256)
	s.minLen = m
	s.shift = make([]uint8, 1<<16)
	for i := range s.shift {
		s.shift[i] = uint8(m - 1)
	}
	s.near = new([1 << 16 / 64]uint64)
	for _, p := range s.pats {
		for q := 0; q+1 < m; q++ {
			k := uint16(p.find[q])<<8 | uint16(p.find[q+1])
			if d := uint8(m - 2 - q); d < s.shift[k] {
				s.shift[k] = d
				s.near[k/64] |= 1 << (k % 64)
			}
		}
	}
}

// textForms are the ways server code commonly writes a value into text,
// besides as it is: percent-encoded by Go (QueryEscape, PathEscape), by
// JavaScript's encodeURIComponent or Python's quote (every byte but the
// unreserved ones, '/' kept or not), each with upper- or lower-case hex
// (html/template writes lower case); in a JSON string (Go escapes <, > and
// &, PHP's json_encode also '/'); and in HTML text (html/template also
// escapes '+'). Most keys hold none of the bytes these change, and then
// they add no pattern.
var textForms = []func(string) string{
	url.QueryEscape,
	url.PathEscape,
	func(v string) string { return percentEncode(v, "", false) },
	func(v string) string { return percentEncode(v, "/", false) },
	func(v string) string { return lowerEscapes(url.QueryEscape(v)) },
	func(v string) string { return lowerEscapes(url.PathEscape(v)) },
	func(v string) string { return percentEncode(v, "", true) },
	func(v string) string { return percentEncode(v, "/", true) },
	jsonString,
	func(v string) string { return strings.ReplaceAll(jsonString(v), "/", `\/`) },
	html.EscapeString,
	htmlTemplateText.Replace,
}

// percentEncode escapes every byte of v but the unreserved ones (RFC 3986)
// and those in keep, with lower-case hex if lower.
func percentEncode(v, keep string, lower bool) string {
	hex := "0123456789ABCDEF"
	if lower {
		hex = "0123456789abcdef"
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("-._~", c) >= 0 || strings.IndexByte(keep, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// lowerEscapes lower-cases the hex digits of the percent escapes in s,
// which escapes all of its '%' bytes.
func lowerEscapes(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1] = lowerASCII(b[i+1])
			b[i+2] = lowerASCII(b[i+2])
		}
	}
	return string(b)
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// jsonString is v inside a JSON string as Go writes it, without the quotes.
func jsonString(v string) string {
	b, err := json.Marshal(v)
	if err != nil || len(b) < 2 {
		return v
	}
	return string(b[1 : len(b)-1])
}

// htmlTemplateText is how html/template escapes text in HTML.
var htmlTemplateText = strings.NewReplacer("\x00", "\uFFFD", `"`, "&#34;", "&", "&amp;", "'", "&#39;",
	"+", "&#43;", "<", "&lt;", ">", "&gt;")

// base64Core returns the characters of the base64 encoding of v, placed k
// bytes (0..2) after a 3-byte boundary, that depend on v alone: the same
// characters appear in the encoding of any text holding v at that alignment.
// Each character encodes 6 bits; the ones mixing v's bits with the k bytes
// before it or the bytes after it are dropped.
func base64Core(enc *base64.Encoding, k int, v []byte) []byte {
	buf := make([]byte, k+len(v))
	copy(buf[k:], v)
	e := enc.EncodeToString(buf)
	lo := (4*k + 2) / 3        // first character after the k prefix bytes' 8k bits
	hi := 4 * (k + len(v)) / 3 // characters wholly inside the data
	if hi <= lo {
		return nil
	}
	return []byte(e[lo:hi])
}

func (s *Scrubber) empty() bool { return s == nil || len(s.pats) == 0 }

// Header scrubs every header value (and name) in place.
func (s *Scrubber) Header(h http.Header) {
	if s.empty() {
		return
	}
	var renamed map[string][]string
	for k, vs := range h {
		for i, v := range vs {
			vs[i] = s.String(v)
		}
		if nk := s.String(k); nk != k {
			if renamed == nil {
				renamed = make(map[string][]string)
			}
			renamed[nk] = append(renamed[nk], vs...)
			delete(h, k)
		}
	}
	for k, vs := range renamed {
		h[k] = append(h[k], vs...)
	}
}

// String returns v scrubbed.
func (s *Scrubber) String(v string) string {
	if s.empty() || len(v) == 0 {
		return v
	}
	out, _, changed := s.scan(nil, []byte(v), 0, true, false)
	if !changed {
		return v
	}
	return string(out)
}

// Bytes returns b scrubbed (b itself if nothing matched).
func (s *Scrubber) Bytes(b []byte) []byte {
	if s.empty() || len(b) == 0 {
		return b
	}
	out, _, changed := s.scan(nil, b, 0, true, false)
	if !changed {
		return b
	}
	return out
}

// LengthPreserving reports whether every replacement is as long as what it
// replaces, so a scrubbed body keeps its Content-Length.
func (s *Scrubber) LengthPreserving() bool {
	if s.empty() {
		return true
	}
	for _, p := range s.pats {
		if len(p.repl) != len(p.find) {
			return false
		}
	}
	return true
}

// MaxGrowth is how much longer than the input the output can be (stand-ins
// may be longer than values): callers that scrub drop Content-Length.
// It returns the most bytes scrubbing n bytes can add.
func (s *Scrubber) MaxGrowth(n int64) int64 {
	if s.empty() {
		return 0
	}
	// Each match consumes len(find) bytes and adds len(repl)-len(find), so
	// the worst case is n bytes of the pattern growing most per byte.
	var most int64
	for _, p := range s.pats {
		extra, l := int64(len(p.repl)-len(p.find)), int64(len(p.find))
		if extra <= 0 {
			continue
		}
		most = max(most, n/l*extra+n%l*extra/l)
	}
	return most
}

// scan appends data scrubbed to out, less its first sent bytes, which an
// earlier call already output (a scrubReader's idle release): they are
// only looked at for a match that started in them.
//
// When final is false, data may continue in a later call, so scan stops at
// the first position where a pattern could start but data ends before it
// can tell, and returns it as keep. With final it outputs everything; with
// cut too, keep is where a tail that is the start of a pattern begins
// (len(data) if there is none, and always without cut: only a cut stream
// needs it, and finding it was most of the cost of scrubbing a header).
// With cut, data was cut off there (its stream broke,
// or went idle while the rest may still come), so that tail is the start
// of a value the upstream sent whole, which the sandbox must not get: if it
// is minPartial bytes or more it is output as the start of the pattern's
// replacement (a shorter one as it is). A tail at the true end of data is
// what the upstream sent, a value cut short by the upstream itself, which
// is left as any partial echo is.
//
// changed is false when nothing was replaced; then out is unchanged and
// the output is data[sent:keep] (data[sent:] with final).
func (s *Scrubber) scan(out, data []byte, sent int, final, cut bool) (_ []byte, keep int, changed bool) {
	undecided := len(data)
	if !final {
		undecided = s.undecided(data, 0)
	}
	pos, emitted := 0, sent
	for {
		// A match starting before undecided is final: no longer pattern
		// can start at or before it, or that position would be undecided.
		at, i := s.match(data, pos, undecided)
		if at < 0 {
			break
		}
		p := s.pats[i]
		if out == nil {
			out = make([]byte, 0, len(data)+max(64, len(p.repl)))
		}
		if at >= emitted {
			out = append(out, data[emitted:at]...)
			out = append(out, p.repl...)
		} else {
			// It started in bytes already output (as they were, or as
			// the start of a replacement): the rest of its replacement.
			out = append(out, p.repl[min(emitted-at, len(p.repl)):]...)
		}
		changed = true
		pos = at + len(p.find)
		emitted = max(emitted, pos)
		if undecided < pos {
			undecided = s.undecided(data, pos)
		}
	}
	if !final {
		if changed && undecided > emitted {
			out = append(out, data[emitted:undecided]...)
		}
		return out, undecided, changed
	}
	keep = len(data)
	if cut {
		keep = s.undecided(data, pos)
	}
	if cut && len(data)-keep >= minPartial {
		if out == nil {
			out = make([]byte, 0, len(data))
		}
		if keep > emitted {
			out = append(out, data[emitted:keep]...)
			emitted = keep
		}
		out = append(out, s.cutShort(data[keep:])[emitted-keep:]...)
		emitted = len(data)
		changed = true
	}
	if changed {
		out = append(out, data[emitted:]...)
	}
	return out, keep, changed
}

// minPartial is the shortest start of a pattern that is replaced when a
// stream is cut off after it. Shorter, it is often a coincidence (a chunk
// ending in the value's first letter), and it carries a few bytes of the
// value at most, as the edges of a base64 form do.
const minPartial = 8

// cutShort returns what replaces tail, a proper prefix of some pattern:
// as many bytes of the longest such pattern's replacement, padded with '*'
// if it is shorter.
func (s *Scrubber) cutShort(tail []byte) []byte {
	var repl []byte
	best := -1
	for _, p := range s.pats {
		if len(p.find) > len(tail) && len(p.find) > best && bytes.HasPrefix(p.find, tail) {
			repl, best = p.repl, len(p.find)
		}
	}
	out := make([]byte, len(tail))
	for i := copy(out, repl); i < len(out); i++ {
		out[i] = '*'
	}
	return out
}

// match returns the leftmost match in data starting in [from, to), the
// longest of those starting there, and its pattern's index; at is -1 if
// there is none.
func (s *Scrubber) match(data []byte, from, to int) (at, pat int) {
	if s.shift != nil {
		return s.matchSkip(data, from, to)
	}
	// Positions with two bytes to look at; the last byte of data can only
	// start a one-byte pattern.
	two := min(to, len(data)-1)
	for i := from; i < two; i++ {
		k := uint16(data[i])<<8 | uint16(data[i+1])
		if s.pair[k/64]&(1<<(k%64)) != 0 {
			for _, j := range s.byPair[k] {
				if bytes.HasPrefix(data[i:], s.pats[j].find) {
					return i, j
				}
			}
		}
		if s.hasSingle && s.single[data[i]] != 0 {
			return i, s.single[data[i]] - 1
		}
	}
	if two >= from && two < to && s.hasSingle && s.single[data[two]] != 0 {
		return two, s.single[data[two]] - 1
	}
	return -1, -1
}

// matchSkip is match with the Wu-Manber skip table: only positions where
// a full window of minLen bytes fits can start a match.
func (s *Scrubber) matchSkip(data []byte, from, to int) (at, pat int) {
	m := s.minLen
	step := m - 1
	near := s.near
	last := min(to-1, len(data)-m) // last possible start
	for i := from; i <= last; {
		// The usual case in data without the value: the windows ending
		// step, 2*step... bytes on all end in blocks no pattern has near
		// its start, so no match starts before i+4*step. Their addresses
		// do not depend on what is loaded, so the four lookups overlap
		// instead of waiting on each other as the shifts below do.
		if i+3*step <= last {
			e := i + m - 1
			k0 := uint16(data[e-1])<<8 | uint16(data[e])
			e += step
			k1 := uint16(data[e-1])<<8 | uint16(data[e])
			e += step
			k2 := uint16(data[e-1])<<8 | uint16(data[e])
			e += step
			k3 := uint16(data[e-1])<<8 | uint16(data[e])
			if near[k0/64]&(1<<(k0%64))|near[k1/64]&(1<<(k1%64))|near[k2/64]&(1<<(k2%64))|near[k3/64]&(1<<(k3%64)) == 0 {
				i += 4 * step
				continue
			}
		}
		e := i + m - 1
		if d := s.shift[uint16(data[e-1])<<8|uint16(data[e])]; d > 0 {
			i += int(d)
			continue
		}
		k := uint16(data[i])<<8 | uint16(data[i+1])
		if s.pair[k/64]&(1<<(k%64)) != 0 {
			for _, j := range s.byPair[k] {
				if bytes.HasPrefix(data[i:], s.pats[j].find) {
					return i, j
				}
			}
		}
		i++
	}
	return -1, -1
}

// undecided returns the first position at or after from where data ends
// with a proper prefix of some pattern (so more data could complete a match
// there), or len(data). It only looks at the last maxLen-1 bytes.
func (s *Scrubber) undecided(data []byte, from int) int {
	best := len(data)
	start := max(from, len(data)-s.maxLen+1)
	for _, p := range s.pats {
		for q := max(start, len(data)-len(p.find)+1); q < best; q++ {
			j := bytes.IndexByte(data[q:best], p.find[0])
			if j < 0 {
				break
			}
			q += j
			if bytes.HasPrefix(p.find, data[q:]) {
				best = q
				break
			}
		}
	}
	return best
}

// Reader scrubs a stream without buffering it: each Read returns what the
// source gave as soon as it is known not to start a match; only a tail that
// could be the beginning of a match split across reads is held back (a
// match split across chunks is still caught). Close closes rc.
//
// With nothing to scrub, Reader returns rc itself. A Read reads the source
// once, or again only while everything it got so far is held back; the
// held tail is shorter than the longest pattern and is released at the
// source's end, error or idleness (see errIdle); at an error or idleness,
// replaced if it is minPartial bytes or more, since the rest of a value may
// be what never came or has not come yet. A tail released because the
// source went idle is remembered: if the rest of the value follows, the
// rest of its replacement is output. Errors whose message quotes a value
// (a transport's parse error quoting a line) come back scrubbed.
func (s *Scrubber) Reader(rc io.ReadCloser) io.ReadCloser {
	if s.empty() {
		return rc
	}
	r := &scrubReader{s: s, src: rc}
	if s.maxLen-1+readChunk <= pooledBufSize {
		r.pooled = scrubBufs.Get().(*[]byte)
		r.buf = (*r.pooled)[:s.maxLen-1+readChunk]
	} else {
		r.buf = make([]byte, s.maxLen-1+readChunk)
	}
	return r
}

// pooledBufSize is the size of the pooled read buffers: a read chunk plus
// room for the longest pattern anyone is likely to scrub.
const pooledBufSize = readChunk + 4<<10

// scrubBufs holds read buffers for scrubReaders: one is needed per
// response, and allocating 32 KiB each time showed up in profiles.
var scrubBufs = sync.Pool{New: func() any { b := make([]byte, pooledBufSize); return &b }}

type scrubReader struct {
	s   *Scrubber
	src io.ReadCloser
	// buf[heldFrom:heldTo] is source data read but not yet scrubbed: a
	// possible start of a match. It moves to the front before each read.
	buf              []byte
	heldFrom, heldTo int
	// sent is how many held bytes were already output: a tail released
	// when the source went idle, kept to finish a match that continues.
	sent int
	// pending is scrubbed output not yet returned; it aliases buf or
	// scratch, so buf is only refilled once pending is empty.
	pending []byte
	scratch []byte
	err     error // the source's error, returned once pending and held are out
	pooled  *[]byte
	// mu keeps Close from recycling buf while a Read uses it.
	mu sync.Mutex
}

func (r *scrubReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	for len(r.pending) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		held := copy(r.buf, r.buf[r.heldFrom:r.heldTo])
		// Read no more than p can take with the held bytes: what comes
		// out then fits p, and no remainder is left for a second, tiny
		// Read. A copy loop that gets full reads writes full TLS
		// records; a stray remainder made it write each chunk as three.
		n, err := r.src.Read(r.buf[held:min(len(r.buf), max(len(p), held+1))])
		data := r.buf[:held+n]
		idle := errors.Is(err, errIdle)
		if idle {
			// The source has nothing more for now: release the held
			// tail rather than stall an interactive stream on it.
			err = nil
		}
		final := err != nil || idle
		cut := idle || err != nil && err != io.EOF
		out, keep, changed := r.s.scan(r.scratch[:0], data, r.sent, final, cut)
		end := keep // data[:end] is output now or was before
		if final {
			end = len(data)
		}
		if changed {
			r.scratch = out
			r.pending = out
		} else {
			r.pending = data[min(r.sent, end):end]
		}
		r.sent = max(r.sent, end) - keep
		r.heldFrom, r.heldTo = keep, len(data)
		if err != nil {
			r.err = r.s.scrubError(err)
		} else if n == 0 && !(idle && len(r.pending) > 0) {
			// The source made no progress; let the caller decide how
			// often to retry rather than spinning here.
			return 0, nil
		}
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}

// Close closes the source and gives the buffer back; no Read may follow.
func (r *scrubReader) Close() error {
	err := r.src.Close() // unblocks a Read waiting on the source
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pooled != nil {
		r.buf, r.pending = nil, nil
		r.err = errors.New("read after close")
		scrubBufs.Put(r.pooled)
		r.pooled = nil
	}
	return err
}

// scrubError returns err, or if its message holds a value, a new error
// with the message scrubbed: a transport's error can quote what the
// upstream sent (a malformed trailer line), and callers log it. It does
// not wrap err, which still holds the value: a caller that unwrapped and
// logged it would print it.
func (s *Scrubber) scrubError(err error) error {
	msg := err.Error()
	if m := s.String(msg); m != msg {
		return errors.New(m)
	}
	return err
}

// errIdle, returned by a source instead of data, tells a scrubReader that
// nothing more is coming for now, so it releases the tail it holds back.
var errIdle = errors.New("source idle")

// Fitted returns a Scrubber with the same patterns whose replacements are
// cut or padded with '*' to the length of what they replace, for streams
// whose framing depends on lengths (WebSocket frames).
func (s *Scrubber) Fitted() *Scrubber {
	if s.empty() || s.LengthPreserving() {
		return s
	}
	f := *s
	f.pats = make([]pattern, len(s.pats))
	for i, p := range s.pats {
		repl := make([]byte, len(p.find))
		n := copy(repl, p.repl)
		for j := n; j < len(repl); j++ {
			repl[j] = '*'
		}
		f.pats[i] = pattern{find: p.find, repl: repl}
	}
	return &f
}

// idleReader reads src in the background and, after handing out data,
// answers one Read with errIdle if nothing more arrives within idle: a
// scrubReader over it holds a possible partial match back for at most
// that long. For upgraded (WebSocket) streams, where the next bytes may
// only come after the client answers.
type idleReader struct {
	ch    chan idleChunk
	idle  time.Duration
	cur   []byte
	err   error
	armed bool
}

type idleChunk struct {
	b   []byte
	err error
}

func newIdleReader(src io.Reader, idle time.Duration) *idleReader {
	r := &idleReader{ch: make(chan idleChunk, 1), idle: idle}
	go func() {
		for {
			b := make([]byte, readChunk)
			n, err := src.Read(b)
			r.ch <- idleChunk{b[:n], err}
			if err != nil {
				return
			}
		}
	}()
	return r
}

func (r *idleReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.armed {
			t := time.NewTimer(r.idle)
			select {
			case c := <-r.ch:
				t.Stop()
				r.cur, r.err = c.b, c.err
			case <-t.C:
				r.armed = false
				return 0, errIdle
			}
		} else {
			c := <-r.ch
			r.cur, r.err = c.b, c.err
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	r.armed = true
	return n, nil
}
