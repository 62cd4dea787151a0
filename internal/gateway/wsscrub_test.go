package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// wsStandIn is shorter than realA, so the fitted scrubber pads it.
const wsStandIn = "sk-live-STANDIN-0000"

func wsTestScrubber() *Scrubber {
	return NewScrubber([]ScrubPair{{Value: []byte(realA), StandIn: []byte(wsStandIn)}})
}

// wsTestFrame is a frame as a test builds it: its payload unmasked.
type wsTestFrame struct {
	b0      byte   // FIN, RSV bits, opcode
	payload []byte // unmasked
	key     []byte // masking key, or nil
	enc     int    // payload length encoding: 0 the shortest, or 7, 16, 64
}

func wsData(fin bool, op byte, payload string) wsTestFrame {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	return wsTestFrame{b0: b0, payload: []byte(payload)}
}

func (f wsTestFrame) op() byte { return f.b0 & 0x0f }

// bytes is the frame on the wire.
func (f wsTestFrame) bytes() []byte {
	n := len(f.payload)
	enc := f.enc
	if enc == 0 {
		switch {
		case n <= 125:
			enc = 7
		case n < 1<<16:
			enc = 16
		default:
			enc = 64
		}
	}
	b := []byte{f.b0, 0}
	switch enc {
	case 7:
		b[1] = byte(n)
	case 16:
		b[1] = 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	case 64:
		b[1] = 127
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if f.key != nil {
		b[1] |= 0x80
		b = append(b, f.key...)
	}
	start := len(b)
	b = append(b, f.payload...)
	for i := range b[start:] {
		if f.key != nil {
			b[start+i] ^= f.key[i%4]
		}
	}
	return b
}

func wsStream(frames []wsTestFrame, rest []byte) []byte {
	var b []byte
	for _, f := range frames {
		b = append(b, f.bytes()...)
	}
	return append(b, rest...)
}

// wsWant is what the sandbox must get for frames followed by rest (raw
// bytes after a frame a client rejects): the same frames, the data
// payloads and rest scrubbed as one stream by the fitted scrubber, each
// control payload on its own. It is a reference written without the code
// under test's streaming.
func wsWant(s *Scrubber, frames []wsTestFrame, rest []byte) []byte {
	fs := s.Fitted()
	var data []byte
	for _, f := range frames {
		if f.op() < 8 {
			data = append(data, f.payload...)
		}
	}
	data = fs.Bytes(append(data, rest...))
	var out []byte
	off := 0
	for _, f := range frames {
		if f.op() >= 8 {
			f.payload = fs.Bytes(f.payload)
		} else {
			f.payload, off = data[off:off+len(f.payload)], off+len(f.payload)
		}
		out = append(out, f.bytes()...)
	}
	return append(out, data[off:]...)
}

// wsParsed is a frame read back from a stream.
type wsParsed struct {
	head    []byte
	payload []byte // unmasked
}

// wsParse splits b into frames up to the first one a client rejects (or
// that is cut short) and returns them and the bytes from there on. It
// does not share code with the parser under test.
func wsParse(b []byte) (frames []wsParsed, rest []byte) {
	for len(b) >= 2 {
		op := b[0] & 0x0f
		ok := b[0]&0x70 == 0 && (op <= 2 || op >= 8 && op <= 10 && b[0]&0x80 != 0 && b[1]&0x7f <= 125)
		if !ok {
			break
		}
		h := 2
		n := uint64(b[1] & 0x7f)
		switch n {
		case 126:
			if len(b) < 4 {
				return frames, b
			}
			n, h = uint64(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			if len(b) < 10 {
				return frames, b
			}
			n, h = binary.BigEndian.Uint64(b[2:]), 10
		}
		var key []byte
		if b[1]&0x80 != 0 {
			if len(b) < h+4 {
				return frames, b
			}
			key, h = b[h:h+4], h+4
		}
		if uint64(len(b)-h) < n {
			break
		}
		p := append([]byte(nil), b[h:h+int(n)]...)
		for i := range p {
			if key != nil {
				p[i] ^= key[i%4]
			}
		}
		frames = append(frames, wsParsed{head: b[:h], payload: p})
		b = b[h+int(n):]
	}
	return frames, b
}

// wsRead reads everything newWSReader gives for steps, in reads of size
// bytes, and calls at(i) when the source reaches step i.
func wsRead(tb testing.TB, s *Scrubber, steps []scriptStep, size int, at func(step int, got []byte)) []byte {
	tb.Helper()
	src := &hookedSteps{steps: steps}
	r := newWSReader(s, src)
	var got []byte
	src.at = func(i int) {
		if at != nil {
			at(i, got)
		}
	}
	p := make([]byte, size)
	total := 0
	for _, st := range steps {
		total += len(st.data) + 1
	}
	for range 4*total + 100 {
		n, err := r.Read(p)
		got = append(got, p[:n]...)
		if err == io.EOF {
			if err := r.Close(); err != nil || !src.closed {
				tb.Errorf("Close = %v, source closed %v; want nil, true", err, src.closed)
			}
			return got
		}
		if err != nil {
			tb.Fatalf("Read: %v", err)
		}
	}
	tb.Fatalf("Read made no progress")
	return nil
}

// hookedSteps is a stepReader that calls at when it gets to a step.
type hookedSteps struct {
	steps  []scriptStep
	i      int
	at     func(step int)
	closed bool
	inStep bool
}

func (h *hookedSteps) Read(p []byte) (int, error) {
	if h.i == len(h.steps) {
		return 0, io.EOF
	}
	if !h.inStep {
		h.inStep = true
		h.at(h.i)
	}
	st := &h.steps[h.i]
	if st.err != nil {
		h.i++
		h.inStep = false
		return 0, st.err
	}
	n := copy(p, st.data)
	if st.data = st.data[n:]; st.data == "" {
		h.i++
		h.inStep = false
	}
	return n, nil
}

func (h *hookedSteps) Close() error { h.closed = true; return nil }

// chunks makes one step of each part.
func chunks(parts ...[]byte) []scriptStep {
	var steps []scriptStep
	for _, p := range parts {
		steps = append(steps, scriptStep{data: string(p)})
	}
	return steps
}

// bytewise makes a step of each byte of b: every header split everywhere.
func bytewise(b []byte) []scriptStep {
	steps := make([]scriptStep, len(b))
	for i := range b {
		steps[i] = scriptStep{data: string(b[i : i+1])}
	}
	return steps
}

// checkWS fails unless got is want, saying where they differ without
// printing the value.
func checkWS(tb testing.TB, name string, got, want []byte) {
	tb.Helper()
	if bytes.Contains(got, []byte(realA)) {
		tb.Errorf("%s: the real value reached the output", name)
	}
	if !bytes.Equal(got, want) {
		tb.Errorf("%s: output differs (-want +got):\n%s", name,
			cmp.Diff(hideReal(fmt.Sprintf("%q", want), realA), hideReal(fmt.Sprintf("%q", got), realA)))
	}
}

// TestWSScrubSplit: a value split at every byte across two fragments of a
// message, across two messages, and across fragments with a ping between
// them, masked or not, read in one piece, per frame, or a byte at a time.
func TestWSScrubSplit(t *testing.T) {
	s := wsTestScrubber()
	msg := "key=" + realA + ";"
	key := []byte{0x37, 0xfa, 0x21, 0x3d}
	for i := 1; i < len(realA); i++ {
		a, b := msg[:len("key=")+i], msg[len("key=")+i:]
		layouts := []struct {
			name   string
			frames []wsTestFrame
		}{
			{"fragments", []wsTestFrame{wsData(false, 1, a), wsData(true, 0, b)}},
			{"messages", []wsTestFrame{wsData(true, 1, a), wsData(true, 2, b)}},
			{"ping between", []wsTestFrame{wsData(false, 1, a), wsData(true, 9, "are you there"), wsData(true, 0, b)}},
			{"empty fragment between", []wsTestFrame{wsData(false, 1, a), wsData(false, 0, ""), wsData(true, 0, b)}},
		}
		for _, l := range layouts {
			for _, masked := range []bool{false, true} {
				frames := l.frames
				if masked {
					frames = append([]wsTestFrame(nil), frames...)
					for j := range frames {
						frames[j].key = key
					}
				}
				want := wsWant(s, frames, nil)
				var joined []byte
				parsed, _ := wsParse(want)
				for _, f := range parsed {
					if f.head[0]&0x08 == 0 {
						joined = append(joined, f.payload...)
					}
				}
				if string(joined) != s.Fitted().String(msg) {
					t.Fatalf("%s split at %d: the reference does not scrub", l.name, i)
				}
				var perFrame [][]byte
				for _, f := range frames {
					perFrame = append(perFrame, f.bytes())
				}
				reads := map[string][]scriptStep{
					"one read":       chunks(wsStream(frames, nil)),
					"read per frame": chunks(perFrame...),
					"byte per read":  bytewise(wsStream(frames, nil)),
				}
				for rname, steps := range reads {
					name := fmt.Sprintf("%s masked=%v split at %d, %s", l.name, masked, i, rname)
					checkWS(t, name, wsRead(t, s, steps, 4096, nil), want)
				}
			}
		}
	}
}

// TestWSScrubLengths: 16-bit and 64-bit payload lengths, shortest and
// longer than needed, with the value split across two such fragments.
func TestWSScrubLengths(t *testing.T) {
	s := wsTestScrubber()
	pad := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name   string
		frames []wsTestFrame
	}{{
		name: "16-bit",
		frames: []wsTestFrame{
			wsData(false, 2, pad(200)+realA[:10]),
			wsData(true, 0, realA[10:]+pad(300)),
		},
	}, {
		name: "64-bit",
		frames: []wsTestFrame{
			wsData(false, 2, pad(70000)+realA[:30]),
			wsData(true, 0, realA[30:]+pad(70000)),
		},
	}, {
		name: "16-bit encoding of a short length",
		frames: []wsTestFrame{
			{b0: 0x01, payload: []byte("a=" + realA[:5]), enc: 16},
			{b0: 0x80, payload: []byte(realA[5:]), enc: 16},
		},
	}, {
		name: "64-bit encoding of a short length",
		frames: []wsTestFrame{
			{b0: 0x01, payload: []byte("a=" + realA[:25]), enc: 64},
			{b0: 0x80, payload: []byte(realA[25:]), enc: 64, key: []byte{1, 2, 3, 4}},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := wsStream(tt.frames, nil)
			want := wsWant(s, tt.frames, nil)
			for _, size := range []int{1 << 16, 1000, 7} {
				got := wsRead(t, s, chunks(in), size, nil)
				checkWS(t, fmt.Sprintf("reads of %d", size), got, want)
			}
			// In pieces that end anywhere in a header or payload.
			var steps []scriptStep
			for b := in; len(b) > 0; {
				n := min(len(b), 1+len(steps)*997%4099)
				steps = append(steps, scriptStep{data: string(b[:n])})
				b = b[n:]
			}
			checkWS(t, "uneven pieces", wsRead(t, s, steps, 4096, nil), want)
		})
	}
}

// TestWSScrubHeaderSplit: a stream of frames of every kind of header, in
// two reads split at every byte.
func TestWSScrubHeaderSplit(t *testing.T) {
	s := wsTestScrubber()
	frames := []wsTestFrame{
		wsData(false, 1, "first "+realA[:12]),
		{b0: 0x89, payload: []byte("ping " + realA), key: []byte{9, 8, 7, 6}},
		{b0: 0x00, payload: []byte(realA[12:] + strings.Repeat("-", 130))},
		{b0: 0x00, payload: []byte(realA), enc: 64, key: []byte{0xff, 0, 0xff, 0}},
		wsData(true, 0, ""),
		{b0: 0x88, payload: append([]byte{0x03, 0xe8}, "bye "+realA[:20]...)},
	}
	in := wsStream(frames, nil)
	want := wsWant(s, frames, nil)
	for i := range len(in) + 1 {
		checkWS(t, fmt.Sprintf("split at %d", i), wsRead(t, s, chunks(in[:i], in[i:]), 4096, nil), want)
	}
}

// TestWSScrubControl: a value in a control frame's payload is scrubbed on
// its own; frames around it are not affected.
func TestWSScrubControl(t *testing.T) {
	s := wsTestScrubber()
	b64 := base64.StdEncoding.EncodeToString([]byte(realA))
	tests := []struct {
		name   string
		frames []wsTestFrame
	}{
		{"ping", []wsTestFrame{wsData(true, 9, realA)}},
		{"pong", []wsTestFrame{wsData(true, 10, "pong:"+realA+":"+b64)}},
		{"close", []wsTestFrame{{b0: 0x88, payload: append([]byte{0x0f, 0xa0}, realA...)}}},
		{"masked ping", []wsTestFrame{{b0: 0x89, payload: []byte(realA), key: []byte{0xde, 0xad, 0xbe, 0xef}}}},
		{"between fragments", []wsTestFrame{
			wsData(false, 1, "a"), wsData(true, 9, realA), wsData(true, 0, "b"),
		}},
		{"value split across a ping and data", []wsTestFrame{
			wsData(true, 9, realA[:20]), wsData(true, 1, realA[20:]),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := wsStream(tt.frames, nil)
			want := wsWant(s, tt.frames, nil)
			got := wsRead(t, s, chunks(in), 4096, nil)
			checkWS(t, tt.name, got, want)
			frames, rest := wsParse(got)
			if len(frames) != len(tt.frames) || len(rest) != 0 {
				t.Fatalf("output parses to %d frames and %d bytes, want %d frames", len(frames), len(rest), len(tt.frames))
			}
			for i, f := range frames {
				if bytes.Contains(f.payload, []byte(realA)) {
					t.Errorf("frame %d still holds the value", i)
				}
			}
		})
	}
}

// TestWSScrubRejected: from a frame a client must reject (reserved bits,
// as compression sets them; reserved opcodes; a long or fragmented control
// frame) the rest of the stream is scrubbed as raw bytes, continuing the
// data stream, and a stream that is not WebSocket at all is scrubbed raw
// from its first byte.
func TestWSScrubRejected(t *testing.T) {
	s := wsTestScrubber()
	tests := []struct {
		name   string
		frames []wsTestFrame
		rest   []byte
	}{
		{"not websocket", nil, []byte("hello; echo " + realA + ";")},
		{"compressed frame", []wsTestFrame{wsData(false, 1, "v="+realA[:9])},
			append([]byte{0xc0, 32}, realA[9:]+" and "+realA...)},
		{"reserved data opcode", []wsTestFrame{wsData(true, 1, "ok")}, append([]byte{0x83, 41}, realA...)},
		{"reserved control opcode", nil, append([]byte{0x8b, 41}, realA...)},
		{"long control frame", nil, append([]byte{0x89, 126, 0, 41}, realA...)},
		{"fragmented ping", nil, append([]byte{0x09, 41}, realA...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := wsStream(tt.frames, tt.rest)
			want := wsWant(s, tt.frames, tt.rest)
			checkWS(t, "one read", wsRead(t, s, chunks(in), 4096, nil), want)
			checkWS(t, "byte per read", wsRead(t, s, bytewise(in), 4096, nil), want)
		})
	}
}

// TestWSScrubHolds: what comes out before the reader needs more from its
// source. A complete frame comes out whole; only a payload's tail that
// could start the value is held, until the source goes idle (or more
// control frames than wsMaxAhead allows queue up behind it).
func TestWSScrubHolds(t *testing.T) {
	s := wsTestScrubber()
	var pings []wsTestFrame
	for range wsMaxAhead/127 + 2 {
		pings = append(pings, wsData(true, 9, strings.Repeat("p", 125)))
	}
	tail := realA[:12]
	tests := []struct {
		name   string
		frames []wsTestFrame
		held   int // bytes still held when the source is read again
	}{
		{"text frame", []wsTestFrame{wsData(true, 1, "hello")}, 0},
		{"ping", []wsTestFrame{wsData(true, 9, "hi")}, 0},
		{"fragments and a ping", []wsTestFrame{wsData(false, 1, "a"), wsData(true, 9, "hi"), wsData(true, 0, "b")}, 0},
		{"tail that could start the value", []wsTestFrame{wsData(true, 1, "v="+tail)}, len(tail)},
		{"ping behind such a tail", []wsTestFrame{wsData(true, 1, "v="+tail), wsData(true, 9, "hi")}, len(tail) + 4},
		{"many pings behind such a tail", append([]wsTestFrame{wsData(true, 1, "v="+tail)}, pings...), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := wsStream(tt.frames, nil)
			delivered := -1
			got := wsRead(t, s, []scriptStep{{data: string(in)}, {err: errIdle}}, 4096, func(step int, got []byte) {
				if step == 1 {
					delivered = len(got)
				}
			})
			if want := len(in) - tt.held; delivered != want {
				t.Errorf("%d bytes out before the source was read again, want %d", delivered, want)
			}
			if len(got) != len(in) || bytes.Contains(got, []byte(tail)) {
				t.Errorf("after idleness got %q, want %d bytes with the tail released as a replacement", got, len(in))
			}
			if frames, rest := wsParse(got); len(frames) != len(tt.frames) || len(rest) != 0 {
				t.Errorf("output parses to %d frames and %d bytes, want %d frames", len(frames), len(rest), len(tt.frames))
			}
		})
	}
}

// TestWSScrubPause: the source goes idle at every byte of a message whose
// value is split across fragments: the held start of the value is
// released, and the rest of it replaced when it follows; the sandbox never
// gets probeRun bytes of the value.
func TestWSScrubPause(t *testing.T) {
	s := NewScrubber([]ScrubPair{{Value: []byte(realA), StandIn: bytes.Repeat([]byte("#"), len(realA)+3)}})
	frames := []wsTestFrame{wsData(false, 1, "key="+realA[:17]), wsData(true, 9, "ping"), wsData(true, 0, realA[17:]+";")}
	in := wsStream(frames, nil)
	for i := range len(in) + 1 {
		got := wsRead(t, s, []scriptStep{{data: string(in[:i])}, {err: errIdle}, {data: string(in[i:])}}, 4096, nil)
		if n := longestRun(got, realA); n >= probeRun {
			t.Errorf("pause at %d: %d bytes of the value reached the output", i, n)
		}
		out, rest := wsParse(got)
		if len(out) != len(frames) || len(rest) != 0 {
			t.Fatalf("pause at %d: output parses to %d frames and %d bytes, want %d frames", i, len(out), len(rest), len(frames))
		}
		for j, f := range out {
			if !bytes.Equal(f.head, frames[j].bytes()[:len(f.head)]) || len(f.payload) != len(frames[j].payload) {
				t.Errorf("pause at %d: frame %d changed shape", i, j)
			}
		}
	}
}

func TestUpgradedToWebSocket(t *testing.T) {
	tests := []struct {
		upgrade []string
		want    bool
	}{
		{[]string{"websocket"}, true},
		{[]string{"WebSocket"}, true},
		{[]string{"websocket/13"}, true},
		{[]string{"foo, websocket"}, true},
		{[]string{"h2c"}, false},
		{[]string{"websockets"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		h := http.Header{}
		for _, v := range tt.upgrade {
			h.Add("Upgrade", v)
		}
		if got := upgradedToWebSocket(h); got != tt.want {
			t.Errorf("upgradedToWebSocket(%q) = %v, want %v", tt.upgrade, got, tt.want)
		}
	}
}

// FuzzWSScrub builds a stream from text (with the value in it) and shape
// (the frames, their kinds, length encodings and masks, then the reads
// and pauses), and checks that the output keeps every frame's header and
// length, holds the value in no data or control payload, and, without
// pauses, is exactly the frames with payloads scrubbed as one stream.
func FuzzWSScrub(f *testing.F) {
	f.Add([]byte("hello world, here is some text"), []byte{3, 10, 4, 20, 0, 5, 0x85, 30, 1, 0})
	f.Add([]byte("x"), []byte{0, 0x24, 40, 0x64, 45, 2, 9, 0x41, 3, 4})
	f.Add(bytes.Repeat([]byte("abc"), 100), []byte{17, 0x23, 200, 0xc2, 130, 0x01, 5, 0x07, 0, 7, 1, 1, 1})
	f.Add([]byte("text"), []byte{2, 0x13, 3, 0x80, 0, 0x27, 1})
	f.Fuzz(func(t *testing.T, text, shape []byte) {
		if len(text) > 1<<12 || len(shape) > 1<<10 {
			return
		}
		s := wsTestScrubber()
		next := func() byte {
			if len(shape) == 0 {
				return 0
			}
			c := shape[0]
			shape = shape[1:]
			return c
		}
		// The data stream: text with the value (as it is or in base64)
		// somewhere in it.
		at := int(next()) % (len(text) + 1)
		value := []byte(realA)
		if at%3 == 2 {
			value = []byte(base64.StdEncoding.EncodeToString([]byte("x:" + realA)))
		}
		data := append(append(append([]byte(nil), text[:at]...), value...), text[at:]...)
		ctlPool := append([]byte("ctl "+realA+" "), text...)

		// Frames until the data runs out, or (if rejectAt is odd) until
		// a frame with a reserved bit, after which the data follows raw.
		rejectAt := next()
		maxFrames := 64
		if rejectAt&1 == 1 {
			maxFrames = int(rejectAt>>1) % 8
		}
		var frames []wsTestFrame
		inMessage, controls := false, 0
		for len(data) > 0 && len(frames) < maxFrames {
			c, l := next(), next()
			var fr wsTestFrame
			if c&7 == 0 && controls < 8 {
				controls++
				fr.b0 = 0x80 | (8 + (c>>3)%3) // close, ping, pong
				fr.payload = ctlPool[:min(len(ctlPool), int(l)%126)]
			} else {
				n := min(len(data), int(l)*(1+int((c>>3)&3)*3))
				fr.payload, data = data[:n], data[n:]
				if !inMessage {
					fr.b0 = 1 + (c>>5)&1 // text or binary; else continuation
				}
				if inMessage = c&0x40 == 0; !inMessage {
					fr.b0 |= 0x80
				}
			}
			fr.enc = []int{0, 0, 16, 64}[(c>>6)&1|(c>>1)&2]
			if fr.enc == 16 && len(fr.payload) >= 1<<16 {
				fr.enc = 0
			}
			if c&0x18 == 0x18 {
				fr.key = []byte{c, l, c ^ l, 0x5a}
			}
			frames = append(frames, fr)
		}
		var rest []byte
		if len(data) > 0 {
			if rejectAt&1 == 1 {
				rest = append([]byte{0xc1, 5}, data...)
			} else {
				frames = append(frames, wsTestFrame{b0: 0x80, payload: data})
			}
		}
		in := wsStream(frames, rest)

		// Reads of the source: sizes from shape, some after a pause.
		var steps []scriptStep
		paused := false
		for b := in; len(b) > 0; {
			c := next()
			if c&0x80 != 0 && len(steps) > 0 {
				steps = append(steps, scriptStep{err: errIdle})
				paused = true
			}
			n := len(b)
			if c != 0 {
				n = min(n, 1+int(c&0x7f)*int(c&0x7f))
			}
			steps = append(steps, scriptStep{data: string(b[:n])})
			b = b[n:]
		}
		size := []int{1, 7, 4096, 1 << 16}[int(next())%4]
		got := wsRead(t, s, steps, size, nil)

		if len(got) != len(in) {
			t.Fatalf("%d bytes out, want %d", len(got), len(in))
		}
		outFrames, outRest := wsParse(got)
		inFrames, inRest := wsParse(in)
		if len(outFrames) != len(inFrames) || len(outRest) != len(inRest) {
			t.Fatalf("output parses to %d frames and %d bytes, input to %d and %d",
				len(outFrames), len(outRest), len(inFrames), len(inRest))
		}
		var joined []byte
		for i, fr := range outFrames {
			if !bytes.Equal(fr.head, inFrames[i].head) || len(fr.payload) != len(inFrames[i].payload) {
				t.Fatalf("frame %d: header %x, %d bytes; want %x, %d bytes", i, fr.head, len(fr.payload), inFrames[i].head, len(inFrames[i].payload))
			}
			if fr.head[0]&0x08 != 0 {
				if want := s.Fitted().Bytes(inFrames[i].payload); !bytes.Equal(fr.payload, want) {
					t.Errorf("control frame %d: payload %q, want %q", i, hideReal(string(fr.payload), realA), hideReal(string(want), realA))
				}
				continue
			}
			joined = append(joined, fr.payload...)
		}
		joined = append(joined, outRest...)
		if bytes.Contains(joined, []byte(realA)) || bytes.Contains(joined, base64Core(base64.StdEncoding, 2, []byte(realA))) {
			t.Errorf("the value reached the joined data payloads")
		}
		if !paused {
			checkWS(t, "output", got, wsWant(s, frames, rest))
		}
	})
}

// BenchmarkWSScrub: scrubbing 4 MiB that the upstream sends as WebSocket
// frames of several sizes, frame by frame; "raw" is the same bytes
// through the raw (fitted) scrubbing reader that other upgrades get.
func BenchmarkWSScrub(b *testing.B) {
	s := wsTestScrubber()
	const total = 4 << 20
	payload := []byte(strings.Repeat("some JSON-ish {\"text\":\"hello world\"} ", 1<<10))
	for _, tt := range []struct {
		name string
		size int // payload bytes per frame; 0: raw scrubbing
	}{{"raw", 0}, {"frames of 64 KiB", 64 << 10}, {"frames of 1 KiB", 1 << 10}, {"frames of 100 B", 100}} {
		b.Run(tt.name, func(b *testing.B) {
			var in []byte
			for len(in) < total {
				if tt.size == 0 {
					in = append(in, payload...)
					continue
				}
				for p := payload; len(p) > 0; {
					n := min(len(p), tt.size)
					in = append(in, wsData(true, 2, string(p[:n])).bytes()...)
					p = p[n:]
				}
			}
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			buf := make([]byte, copyBufSize)
			for b.Loop() {
				src := io.NopCloser(bytes.NewReader(in))
				var r io.Reader
				if tt.size > 0 {
					r = newWSReader(s, src)
				} else {
					r = s.Fitted().Reader(src)
				}
				n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf)
				if err != nil || n != int64(len(in)) {
					b.Fatalf("copied %d bytes, %v; want %d", n, err, len(in))
				}
			}
		})
	}
}
