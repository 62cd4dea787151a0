package gateway

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
)

// Frame-aware scrubbing of what a WebSocket upstream sends (RFC 6455
// section 5). Scrubbing the upgraded stream as raw bytes misses a value
// that the upstream sends in two fragments (or two messages) split inside
// the value: the frame header between the parts breaks the match, and the
// sandbox's WebSocket library joins the parts back together. So the
// payloads of all data frames are scrubbed as one continuous stream, frame
// headers pass through unchanged, and each control frame's payload is
// scrubbed on its own. The scrubber is fitted (length-preserving), so every
// header's payload length stays true.
//
// The pieces: wsFrames parses the raw stream and hands the data payloads,
// unmasked, to a Scrubber's Reader (which holds back a possible partial
// match and releases it when the source goes idle, as for raw streams); it
// also queues a plan of what goes around them (headers, scrubbed control
// frames). wsReader follows the plan, taking payload bytes from the
// scrubbed stream, and re-masks them where the frame was masked.
//
// Latency: payload bytes go out as the scrubber releases them, so a tail
// that could start the value waits for more data or for the source to go
// idle, as in a raw stream, and so does what follows it (a ping between
// two fragments; at most wsMaxAhead bytes of it). A frame header (at most
// 14 bytes) and a control frame (at most 139) go out once complete: a
// client can do nothing with part of one. Memory: a few KiB of buffers
// and the plan, whatever the frames' lengths.

// upgradedToWebSocket reports whether a 101 response switched to
// WebSocket: its Upgrade header names "websocket" (case-insensitive, with
// or without a version). Go's ReverseProxy only lets a 101 through whose
// Upgrade equals the client's request's, so the sandbox expects WebSocket
// frames too.
func upgradedToWebSocket(h http.Header) bool {
	for _, v := range h.Values("Upgrade") {
		for _, p := range strings.Split(v, ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(p), "/")
			if asciiEqualFold(name, "websocket") {
				return true
			}
		}
	}
	return false
}

const (
	// wsMaxHeader is the longest frame header: 2 bytes, a 64-bit length,
	// a masking key.
	wsMaxHeader = 2 + 8 + 4
	// wsMaxControl is the longest control-frame payload (section 5.5).
	wsMaxControl = 125
	// wsMaxAhead bounds the headers and control frames parsed while the
	// data before them is still held back (the end of a payload that could
	// start a value): past it the held tail is released as if the source
	// had gone idle. Without it a stream of pings with no pause would be
	// queued, and the tail held, for ever.
	wsMaxAhead = 4 << 10
	// wsRawBuf is the read buffer for headers and small frames; a payload
	// read while nothing else is buffered goes straight to the scrubber.
	wsRawBuf = 4 << 10
	// wsStageBuf holds scrubbed payload bytes read before their frame's
	// header was parsed; once it is, payloads are scrubbed straight into
	// the reader's buffer.
	wsStageBuf = 4 << 10
)

// newWSReader returns src, the server-to-client side of a WebSocket
// connection, scrubbed by s frame by frame (see the comment at the top of
// this file). src may answer a Read with errIdle (see idleReader). Close
// closes src.
//
// Frames a client must reject (reserved bits set, as by an extension such
// as compression, which the gateway never lets the client negotiate;
// reserved opcodes; a control frame that is fragmented or longer than 125
// bytes) end the frame parsing: from the first such frame on, the rest of
// the stream is scrubbed as raw bytes, as for any other upgrade. An honest
// upstream, the one scrubbing guards against (a reflection of the value it
// was sent), does not send them whatever the sandbox asks it to echo, and
// a stream that is not WebSocket at all falls back at its first byte.
//
// A masked frame (servers must not mask, section 5.1) is unmasked for
// scrubbing and masked again with its own key, so the bytes are what a
// client that accepts it would unmask; whether to accept it stays the
// client's call, as it would be without the gateway.
func newWSReader(s *Scrubber, src io.ReadCloser) io.ReadCloser {
	s = s.Fitted()
	if s.empty() {
		return src
	}
	f := &wsFrames{src: src, s: s, rawBuf: make([]byte, wsRawBuf)}
	return &wsReader{f: f, data: s.Reader(f)}
}

// wsSegment is one step of the plan: a data frame's header hdr[off:n],
// then data bytes of the scrubbed data stream, masked with key from
// offset pos of its frame's payload if masked; or a whole control frame
// ctl, its payload scrubbed. The header is kept inline: a stream of small
// frames would otherwise allocate one for each.
type wsSegment struct {
	hdr    [wsMaxHeader]byte
	n, off uint8
	ctl    []byte
	data   uint64
	key    [4]byte
	masked bool
	pos    uint64
}

// wsFrames is the source of a Scrubber's Reader: it reads the raw stream
// and returns only the payloads of data frames, unmasked, appending
// everything else to plan.
type wsFrames struct {
	src    io.ReadCloser
	s      *Scrubber // fitted, for control-frame payloads
	rawBuf []byte
	raw    []byte // read from src, not parsed yet
	err    error  // from src, returned once raw is parsed
	idle   bool   // src went idle after the data in raw

	hdr  [wsMaxHeader]byte
	hlen int // bytes of the frame header being read, in hdr

	// ctl is the control frame being read (header, then payload), and
	// ctlLen its full length; nil between control frames.
	ctl    []byte
	ctlLen int

	// left bytes of the current data frame's payload are still to come,
	// masked with key from offset pos if masked. After a frame a client
	// must reject, left is "all of it": the rest is scrubbed raw.
	left   uint64
	key    [4]byte
	masked bool
	pos    uint64
	carry  []byte // bytes to return before raw: a rejected frame's header

	// plan[first:] is what wsReader has yet to place.
	plan  []wsSegment
	first int
	// ahead counts the header and control-frame bytes queued since the
	// last data byte (see wsMaxAhead); parsed counts all parsed bytes, so
	// wsReader can tell a Read that made progress.
	ahead  int
	parsed int64
}

func (f *wsFrames) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := 0 // payload bytes in p
	progressed := false
	for {
		if n < len(p) && f.left > 0 && (len(f.carry) > 0 || len(f.raw) > 0) {
			room := p[n:]
			if uint64(len(room)) > f.left {
				room = room[:f.left]
			}
			c := copy(room, f.carry)
			f.carry = f.carry[c:]
			m := copy(room[c:], f.raw)
			f.raw = f.raw[m:]
			n += f.payload(room[:c+m])
			continue
		}
		// Buffered headers are parsed, so the payloads of several small
		// frames go to the scrubber at once.
		if len(f.raw) > 0 && f.left == 0 && f.ahead <= wsMaxAhead {
			f.parse()
			progressed = true
			continue
		}
		if n > 0 {
			return n, nil
		}
		if f.ahead > wsMaxAhead {
			// Release what the scrubber holds so that what was parsed
			// can go out (see wsMaxAhead).
			f.ahead = 0
			return 0, errIdle
		}
		if progressed {
			// The reader can now send what was parsed (a ping, say);
			// reading on could block with it queued.
			return 0, nil
		}
		if f.idle {
			f.idle = false
			return 0, errIdle
		}
		if f.err != nil {
			return 0, f.err
		}
		var got int
		var err error
		if f.left > 0 {
			// Inside a payload with nothing buffered: read it straight
			// into the scrubber's buffer.
			got, err = f.src.Read(p[:min(uint64(len(p)), f.left)])
			if got > 0 {
				f.readErr(err)
				return f.payload(p[:got]), nil
			}
		} else {
			got, err = f.src.Read(f.rawBuf)
			f.raw = f.rawBuf[:got]
		}
		if got == 0 && err == nil {
			return 0, nil // no progress: let the caller retry
		}
		f.readErr(err)
	}
}

// readErr keeps what src returned with the bytes of a Read: idleness and
// errors are passed on once those bytes are handled.
func (f *wsFrames) readErr(err error) {
	switch {
	case err == nil:
	case errors.Is(err, errIdle):
		f.idle = true
	default:
		f.err = err
	}
}

// payload unmasks b, the next bytes of the current data frame's payload.
func (f *wsFrames) payload(b []byte) int {
	if f.masked {
		wsMask(b, f.key, f.pos)
	}
	f.pos += uint64(len(b))
	if f.left != math.MaxUint64 {
		f.left -= uint64(len(b))
	}
	f.ahead = 0
	return len(b)
}

// parse consumes raw up to the next data payload byte: header bytes and
// control frames, queued in plan as they complete.
func (f *wsFrames) parse() {
	for len(f.raw) > 0 && f.left == 0 && f.ahead <= wsMaxAhead {
		if f.ctl != nil {
			n := copy(f.ctl[len(f.ctl):f.ctlLen], f.raw)
			f.ctl = f.ctl[:len(f.ctl)+n]
			f.take(n)
			if len(f.ctl) == f.ctlLen {
				f.control()
			}
			continue
		}
		need := 2
		if f.hlen >= 2 {
			need = wsHeaderLen(f.hdr[1])
		}
		n := copy(f.hdr[f.hlen:need], f.raw)
		f.hlen += n
		f.take(n)
		if !wsValid(f.hdr[:f.hlen]) {
			f.reject()
			return
		}
		if f.hlen == 2 {
			need = wsHeaderLen(f.hdr[1])
		}
		if f.hlen == need {
			f.frame()
		}
	}
}

func (f *wsFrames) take(n int) {
	f.raw = f.raw[n:]
	f.parsed += int64(n)
}

// frame starts the frame whose header is complete in hdr.
func (f *wsFrames) frame() {
	h := f.hdr[:f.hlen]
	f.hlen = 0
	var length uint64
	switch l := h[1] & 0x7f; l {
	case 126:
		length = uint64(binary.BigEndian.Uint16(h[2:]))
	case 127:
		length = binary.BigEndian.Uint64(h[2:])
	default:
		length = uint64(l)
	}
	if h[0]&0x08 != 0 { // control frame: read it whole
		f.ctl = make([]byte, len(h), len(h)+int(length))
		copy(f.ctl, h)
		f.ctlLen = len(h) + int(length)
		if length == 0 {
			f.control()
		}
		return
	}
	seg := wsSegment{data: length}
	seg.n = uint8(copy(seg.hdr[:], h))
	if h[1]&0x80 != 0 {
		seg.masked = true
		copy(seg.key[:], h[len(h)-4:])
	}
	f.queue(seg)
	f.ahead += len(h)
	f.left, f.key, f.masked, f.pos = length, seg.key, seg.masked, 0
}

// control queues the complete control frame in ctl with its payload
// scrubbed on its own: clients never join it to anything.
func (f *wsFrames) control() {
	c := f.ctl
	f.ctl = nil
	hl := wsHeaderLen(c[1])
	payload := c[hl:]
	var key [4]byte
	masked := c[1]&0x80 != 0
	if masked {
		copy(key[:], c[hl-4:hl])
		wsMask(payload, key, 0)
	}
	copy(payload, f.s.Bytes(payload)) // fitted: the same length
	if masked {
		wsMask(payload, key, 0)
	}
	f.queue(wsSegment{ctl: c})
	f.ahead += len(c)
}

// reject ends frame parsing at a frame a client must reject: its header
// bytes read so far and everything after go to the scrubber as raw bytes.
func (f *wsFrames) reject() {
	f.carry = append([]byte(nil), f.hdr[:f.hlen]...)
	f.hlen = 0
	f.left, f.masked, f.pos = math.MaxUint64, false, 0
	f.queue(wsSegment{data: math.MaxUint64})
}

// queue appends seg to the plan, reusing the room of placed segments
// once the plan's array is full (the plan stays short: see wsMaxAhead).
func (f *wsFrames) queue(seg wsSegment) {
	if f.first > 0 && len(f.plan) == cap(f.plan) {
		n := copy(f.plan, f.plan[f.first:])
		clear(f.plan[n:])
		f.plan, f.first = f.plan[:n], 0
	}
	f.plan = append(f.plan, seg)
}

// placed drops the plan's first segment.
func (f *wsFrames) placed() {
	f.plan[f.first] = wsSegment{}
	if f.first++; f.first == len(f.plan) {
		f.plan, f.first = f.plan[:0], 0
	}
}

func (f *wsFrames) Close() error { return f.src.Close() }

// wsHeaderLen is the length of a frame header whose second byte is b1.
func wsHeaderLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// wsValid reports whether h, the start of a frame header, is one a client
// accepts from a server that negotiated no extension: no reserved bits, a
// defined opcode, and for a control frame FIN set and at most 125 bytes
// (RFC 6455 sections 5.2 and 5.5). The mask bit is not checked: see
// newWSReader.
func wsValid(h []byte) bool {
	if len(h) == 0 {
		return true
	}
	if h[0]&0x70 != 0 {
		return false
	}
	switch op := h[0] & 0x0f; op {
	case 0, 1, 2:
		return true
	case 8, 9, 10:
		return h[0]&0x80 != 0 && (len(h) < 2 || int(h[1]&0x7f) <= wsMaxControl)
	default:
		return false
	}
}

// wsMask XORs b with key, b starting at offset pos of its payload
// (section 5.3); masking twice unmasks.
func wsMask(b []byte, key [4]byte, pos uint64) {
	k := int(pos & 3)
	for i := range b {
		b[i] ^= key[(k+i)&3]
	}
}

// errWSLength reports scrubbed payload bytes with no frame to put them in:
// the scrubber changed a length, which a fitted one never does.
var errWSLength = errors.New("websocket scrub: payload length changed")

// wsReader puts the stream back together: plan's headers and control
// frames, with the scrubbed data stream's bytes where their payloads were.
type wsReader struct {
	f    *wsFrames
	data io.ReadCloser // the scrubbed data payloads
	buf  []byte        // see wsStageBuf
	out  []byte        // scrubbed payload bytes not yet placed
	err  error
}

func (r *wsReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if n := r.place(p); n > 0 {
			return n, nil
		}
		if r.err != nil {
			return 0, r.err
		}
		if len(r.out) > 0 {
			r.err = errWSLength
			return 0, r.err
		}
		before := r.f.parsed
		var n int
		var err error
		if r.f.first < len(r.f.plan) && r.f.plan[r.f.first].data >= wsStageBuf {
			// place left a long payload whose header is out: the
			// scrubbed stream's next bytes are its own, so they go
			// straight to p.
			seg := &r.f.plan[r.f.first]
			q := p
			if uint64(len(q)) > seg.data {
				q = q[:seg.data]
			}
			n, err = r.data.Read(q)
			// The read may have queued frames, moving the plan.
			r.payload(&r.f.plan[r.f.first], q[:n])
			if n > 0 {
				r.err = err
				return n, nil
			}
		} else {
			// The next bytes may be those of a frame whose header is
			// not parsed yet, or of several short frames: they wait in
			// buf for place to put the headers between them.
			if r.buf == nil {
				r.buf = make([]byte, wsStageBuf)
			}
			n, err = r.data.Read(r.buf[:min(len(p), len(r.buf))])
			r.out = r.buf[:n]
		}
		if err != nil {
			r.err = err
		} else if n == 0 && r.f.parsed == before {
			return 0, nil // no progress: let the caller retry
		}
	}
}

// place copies into p what the plan allows now: headers and control
// frames, and payload bytes as far as out has them.
func (r *wsReader) place(p []byte) int {
	n := 0
	for n < len(p) && r.f.first < len(r.f.plan) {
		seg := &r.f.plan[r.f.first]
		if seg.off < seg.n {
			c := copy(p[n:], seg.hdr[seg.off:seg.n])
			seg.off += uint8(c)
			n += c
			continue
		}
		if len(seg.ctl) > 0 {
			c := copy(p[n:], seg.ctl)
			seg.ctl = seg.ctl[c:]
			n += c
			continue
		}
		if seg.data == 0 {
			r.f.placed()
			continue
		}
		if len(r.out) == 0 {
			break
		}
		c := int(min(uint64(len(p)-n), uint64(len(r.out)), seg.data))
		copy(p[n:n+c], r.out)
		r.payload(seg, p[n:n+c])
		r.out = r.out[c:]
		n += c
	}
	return n
}

// payload masks b, the next scrubbed bytes of seg's payload, as the frame
// was masked.
func (r *wsReader) payload(seg *wsSegment, b []byte) {
	if seg.masked {
		wsMask(b, seg.key, seg.pos)
	}
	seg.pos += uint64(len(b))
	if seg.data != math.MaxUint64 {
		seg.data -= uint64(len(b))
	}
}

// Close closes the source.
func (r *wsReader) Close() error { return r.data.Close() }
