package agent

// The daemon's side of the protocol against an agent that lies: code in a
// sandbox may replace the agent, so every frame the Client reads is
// hostile input. These tests play the agent over a net.Pipe; no sandbox,
// no child process.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/standin/standin/internal/testutil"
)

// liveness bounds how long a test waits for something that must happen;
// reaching it means the Client hung, not that it was slow.
const liveness = 20 * time.Second

// fakeAgent is the agent's end of a Client's pipe.
type fakeAgent struct {
	tb   testing.TB
	conn net.Conn

	mu     sync.Mutex
	frames []frame // read from the daemon, if reading
	more   chan struct{}
}

type frame struct {
	typ     byte
	id      uint32
	payload []byte
}

// newFakeAgent returns a Client talking to a fake agent; read says whether
// the agent reads what the daemon writes (or leaves it blocked).
func newFakeAgent(tb testing.TB, read bool) (*Client, *fakeAgent) {
	tb.Helper()
	daemon, agent := net.Pipe()
	fa := &fakeAgent{tb: tb, conn: agent, more: make(chan struct{}, 1)}
	c := NewClient(daemon, daemon)
	tb.Cleanup(func() {
		agent.Close()
		daemon.Close()
	})
	if read {
		go func() {
			var buf []byte
			for {
				typ, id, p, err := readFrame(agent, &buf)
				if err != nil {
					return
				}
				fa.mu.Lock()
				fa.frames = append(fa.frames, frame{typ, id, append([]byte(nil), p...)})
				fa.mu.Unlock()
				select {
				case fa.more <- struct{}{}:
				default:
				}
			}
		}()
	}
	return c, fa
}

// waitFrame waits until the daemon has written a frame of type typ for id.
func (fa *fakeAgent) waitFrame(typ byte, id uint32) frame {
	fa.tb.Helper()
	deadline := time.After(liveness)
	for {
		fa.mu.Lock()
		for _, f := range fa.frames {
			if f.typ == typ && f.id == id {
				fa.mu.Unlock()
				return f
			}
		}
		fa.mu.Unlock()
		select {
		case <-fa.more:
		case <-deadline:
			fa.tb.Fatalf("the daemon never wrote frame type %d for exec %d", typ, id)
		}
	}
}

// received returns the payloads of all frames of type typ for id, joined.
func (fa *fakeAgent) received(typ byte, id uint32) []byte {
	fa.mu.Lock()
	defer fa.mu.Unlock()
	var b []byte
	for _, f := range fa.frames {
		if f.typ == typ && f.id == id {
			b = append(b, f.payload...)
		}
	}
	return b
}

func encodeFrame(typ byte, id uint32, payload []byte) []byte {
	b := []byte{typ}
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// send writes raw bytes as the agent.
func (fa *fakeAgent) send(b []byte) error {
	_, err := fa.conn.Write(b)
	return err
}

func (fa *fakeAgent) mustSend(b []byte) {
	fa.tb.Helper()
	if err := fa.send(b); err != nil {
		fa.tb.Fatalf("agent write: %v", err)
	}
}

type execResult struct {
	code           int
	err            error
	stdout, stderr string
}

// startExec runs Exec in the background; the result arrives on the channel.
func startExec(ctx context.Context, c *Client, s Spec) <-chan execResult {
	var out, errb testutil.SyncBuffer
	if s.Stdout == nil {
		s.Stdout = &out
	}
	if s.Stderr == nil {
		s.Stderr = &errb
	}
	s.Args = []string{"x"}
	done := make(chan execResult, 1)
	go func() {
		code, err := c.Exec(ctx, s)
		done <- execResult{code, err, out.String(), errb.String()}
	}()
	return done
}

func waitResult(tb testing.TB, done <-chan execResult) execResult {
	tb.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(liveness):
		tb.Fatalf("Exec did not return")
		return execResult{}
	}
}

func waitGone(tb testing.TB, c *Client) {
	tb.Helper()
	select {
	case <-c.Gone():
	case <-time.After(liveness):
		tb.Fatalf("the Client did not give up on the agent")
	}
}

// TestHostileFramesIgnored: frames the daemon has no use for (unknown
// types, ids never opened or already finished, short payloads, a second
// exit) change nothing; the command then ends as its first valid exit says.
func TestHostileFramesIgnored(t *testing.T) {
	tests := []struct {
		name   string
		before [][]byte // sent after exec 1 started, before its exit
		after  [][]byte // sent after its exit
		want   execResult
	}{
		{
			name:   "unknown types",
			before: [][]byte{encodeFrame(0, 1, nil), encodeFrame(tStart, 1, []byte("{}")), encodeFrame(tAck, 1, u32(5)), encodeFrame(255, 1, []byte("x"))},
			want:   execResult{code: 7},
		},
		{
			name: "ids never opened",
			before: [][]byte{
				encodeFrame(tStdout, 99, []byte("not mine")), encodeFrame(tExit, 99, u32(1)),
				encodeFrame(tFailed, 0, []byte("no")), encodeFrame(tStderr, 0xffffffff, []byte("x")),
			},
			want: execResult{code: 7},
		},
		{
			name:   "short and long exit payloads",
			before: [][]byte{encodeFrame(tExit, 1, nil), encodeFrame(tExit, 1, []byte{1, 2, 3}), encodeFrame(tExit, 1, []byte{0, 0, 0, 1, 0}), encodeFrame(tStdinAck, 1, []byte{1})},
			want:   execResult{code: 7},
		},
		{
			name:  "exit twice, then failed, then output",
			after: [][]byte{encodeFrame(tExit, 1, u32(3)), encodeFrame(tFailed, 1, []byte("late")), encodeFrame(tStdout, 1, []byte("late"))},
			want:  execResult{code: 7, stdout: "out"},
		},
		{
			name:   "negative exit code",
			before: [][]byte{encodeFrame(tExit, 1, u32(0xffffffff))},
			want:   execResult{code: -1},
		},
		{
			name:   "empty output frames",
			before: [][]byte{encodeFrame(tStdout, 1, nil), encodeFrame(tStderr, 1, nil)},
			want:   execResult{code: 7},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fa := newFakeAgent(t, true)
			done := startExec(context.Background(), c, Spec{})
			fa.waitFrame(tStart, 1)
			for _, b := range tt.before {
				fa.mustSend(b)
			}
			if tt.want.stdout != "" {
				fa.mustSend(encodeFrame(tStdout, 1, []byte(tt.want.stdout)))
			}
			if tt.want.code == 7 || tt.want.stdout != "" {
				fa.mustSend(encodeFrame(tExit, 1, u32(7)))
			}
			got := waitResult(t, done)
			for _, b := range tt.after {
				fa.mustSend(b)
			}
			if got != tt.want {
				t.Errorf("Exec = %+v, want %+v", got, tt.want)
			}
			// The Client still serves the next command, and frames for the
			// finished one do not reach it.
			done2 := startExec(context.Background(), c, Spec{})
			fa.waitFrame(tStart, 2)
			fa.mustSend(encodeFrame(tStdout, 1, []byte("stale")))
			fa.mustSend(encodeFrame(tExit, 1, u32(9)))
			fa.mustSend(encodeFrame(tStdout, 2, []byte("two")))
			fa.mustSend(encodeFrame(tExit, 2, u32(0)))
			if got, want := waitResult(t, done2), (execResult{stdout: "two"}); got != want {
				t.Errorf("next Exec = %+v, want %+v", got, want)
			}
		})
	}
}

// TestHostileFrameTooLarge: a length beyond maxPayload ends the Client
// (the stream cannot be trusted past it) without reading or allocating it.
func TestHostileFrameTooLarge(t *testing.T) {
	for _, n := range []uint32{maxPayload + 1, 0xffffffff} {
		c, fa := newFakeAgent(t, true)
		done := startExec(context.Background(), c, Spec{})
		fa.waitFrame(tStart, 1)
		h := encodeFrame(tStdout, 1, nil)
		binary.BigEndian.PutUint32(h[5:], n)
		fa.mustSend(h)
		got := waitResult(t, done)
		if !errors.Is(got.err, ErrGone) || !strings.Contains(got.err.Error(), "frame too large") {
			t.Errorf("Exec after a frame of %d bytes = %+v, want ErrGone for a frame too large", n, got)
		}
		waitGone(t, c)
		if _, err := c.Exec(context.Background(), Spec{Args: []string{"x"}}); !errors.Is(err, ErrGone) {
			t.Errorf("Exec after the agent was given up = %v, want ErrGone", err)
		}
	}
}

// TestHostileFailedMessageBounded: the reason of a failed start is the
// agent's text; the error carries at most 512 bytes of it.
func TestHostileFailedMessageBounded(t *testing.T) {
	c, fa := newFakeAgent(t, true)
	done := startExec(context.Background(), c, Spec{})
	fa.waitFrame(tStart, 1)
	fa.mustSend(encodeFrame(tFailed, 1, bytes.Repeat([]byte("A"), maxPayload)))
	got := waitResult(t, done)
	if !errors.Is(got.err, ErrStart) || len(got.err.Error()) > len(ErrStart.Error())+2+512 {
		t.Errorf("Exec after a 1 MiB failure message = error of %d bytes (%v), want ErrStart with at most 512 bytes of message", len(got.err.Error()), errors.Is(got.err, ErrStart))
	}
}

// blockedWriter blocks every write until released.
type blockedWriter struct {
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	n       int
}

// newBlockedWriter returns a blocked writer that is released at the end
// of the test at the latest.
func newBlockedWriter(tb testing.TB) *blockedWriter {
	w := &blockedWriter{release: make(chan struct{})}
	tb.Cleanup(w.open)
	return w
}

func (w *blockedWriter) open() { w.once.Do(func() { close(w.release) }) }

func (w *blockedWriter) written() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func (w *blockedWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	w.n += len(p)
	w.mu.Unlock()
	return len(p), nil
}

// queued returns how many output bytes the Client holds for exec id.
func queued(c *Client, id uint32) (n int, ok bool) {
	c.mu.Lock()
	cl := c.calls[id]
	c.mu.Unlock()
	if cl == nil {
		return 0, false
	}
	cl.out.mu.Lock()
	defer cl.out.mu.Unlock()
	for _, it := range cl.out.items {
		n += len(it.b)
	}
	return n, true
}

// TestHostileOutputBeyondWindow: an agent that sends output without
// waiting for acknowledgements, to a caller that is not reading, must not
// make the daemon queue it: the window bounds what the Client holds, and
// an agent that overruns it is given up. Other commands of a well-behaved
// agent are the concern of TestSlowReaderDoesNotStallOthers.
func TestHostileOutputBeyondWindow(t *testing.T) {
	c, fa := newFakeAgent(t, true)
	slow := newBlockedWriter(t)
	done := startExec(context.Background(), c, Spec{Stdout: slow})
	fa.waitFrame(tStart, 1)

	const total = 8 * window
	sent := make(chan error, 1)
	go func() {
		b := encodeFrame(tStdout, 1, make([]byte, chunk))
		for i := 0; i < total/chunk; i++ {
			if err := fa.send(b); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	select {
	case <-c.Gone():
	case err := <-sent:
		// net.Pipe: every frame has been read by the Client.
		n, _ := queued(c, 1)
		t.Fatalf("agent sent %d output bytes without acknowledgement (write error %v); the Client queued %d (window %d) and kept reading", total, err, n, window)
	case <-time.After(liveness):
		t.Fatal("neither the agent's writes ended nor the Client gave up")
	}
	if n, _ := queued(c, 1); n > window {
		t.Errorf("the Client queued %d output bytes, more than the window %d", n, window)
	}
	fa.conn.Close()
	<-sent
	slow.open() // Exec ends once deliver has written what was queued
	got := waitResult(t, done)
	if !errors.Is(got.err, ErrGone) || !strings.Contains(got.err.Error(), "window") {
		t.Errorf("Exec after output beyond the window = %+v, want ErrGone naming the window", got)
	}
}

// TestHostileTinyFrames: empty and one-byte output frames, to a caller
// that is not reading, cost the Client no more than the bytes themselves:
// the number of queued items stays small, and no byte is lost.
func TestHostileTinyFrames(t *testing.T) {
	c, fa := newFakeAgent(t, true)
	slow := newBlockedWriter(t)
	var errb testutil.SyncBuffer
	done := startExec(context.Background(), c, Spec{Stdout: slow, Stderr: &errb})
	fa.waitFrame(tStart, 1)
	const n = 50000
	var frames []byte
	for range n {
		frames = append(frames, encodeFrame(tStdout, 1, nil)...)
		frames = append(frames, encodeFrame(tStdout, 1, []byte("x"))...)
	}
	fa.mustSend(frames)
	fa.mustSend(encodeFrame(0, 1, nil)) // its header read: all the above queued
	c.mu.Lock()
	cl := c.calls[1]
	c.mu.Unlock()
	cl.out.mu.Lock()
	items := len(cl.out.items)
	cl.out.mu.Unlock()
	if limit := window/chunk + 1; items > limit {
		t.Errorf("%d empty and %d one-byte frames are %d queued items, want at most %d", n, n, items, limit)
	}
	fa.mustSend(encodeFrame(tExit, 1, u32(0)))
	slow.open()
	if got := waitResult(t, done); got.err != nil || slow.written() != n {
		t.Errorf("Exec = %+v with %d bytes delivered, want exit 0 and %d", got, slow.written(), n)
	}
}

// TestHostileOutputWithinWindow: output up to the window while the caller
// is not reading is kept and delivered in full once it reads: the bound
// does not cut an agent that keeps to the protocol.
func TestHostileOutputWithinWindow(t *testing.T) {
	c, fa := newFakeAgent(t, true)
	slow := newBlockedWriter(t)
	done := startExec(context.Background(), c, Spec{Stdout: slow})
	fa.waitFrame(tStart, 1)
	for i := 0; i < window/chunk; i++ {
		fa.mustSend(encodeFrame(tStdout, 1, make([]byte, chunk)))
	}
	fa.mustSend(encodeFrame(tExit, 1, u32(0)))
	slow.open()
	got := waitResult(t, done)
	if got.err != nil || got.code != 0 || slow.written() != window {
		t.Errorf("Exec with a full window of output = %+v, %d bytes delivered; want exit 0, %d bytes", got, slow.written(), window)
	}
	// Every byte was acknowledged.
	fa.waitFrame(tAck, 1)
	for deadline := time.After(liveness); ; {
		var acked uint32
		fa.mu.Lock()
		for _, f := range fa.frames {
			if f.typ == tAck && f.id == 1 {
				acked += binary.BigEndian.Uint32(f.payload)
			}
		}
		fa.mu.Unlock()
		if acked == window {
			break
		}
		select {
		case <-fa.more:
		case <-deadline:
			t.Fatalf("acknowledged %d bytes, want %d", acked, window)
		}
	}
}

// TestHostileStdinCredit: acknowledgements of more stdin than was sent
// (each one u32 max, overflowing any sum) neither break the count nor the
// data: stdin arrives whole and in order. Short acknowledgements are
// ignored.
func TestHostileStdinCredit(t *testing.T) {
	c, fa := newFakeAgent(t, true)
	in := bytes.Repeat([]byte("0123456789abcdef"), 4*window/16)
	done := startExec(context.Background(), c, Spec{Stdin: bytes.NewReader(in)})
	fa.waitFrame(tStart, 1)
	fa.mustSend(encodeFrame(tStdinAck, 1, []byte{0xff}))
	acked := 0
	for deadline := time.After(liveness); ; {
		fa.mu.Lock()
		stdin, eof := 0, false
		for _, f := range fa.frames {
			stdin += boolInt(f.typ == tStdin && f.id == 1)
			eof = eof || f.typ == tStdinEOF && f.id == 1
		}
		fa.mu.Unlock()
		if eof {
			break
		}
		for ; acked < stdin; acked++ {
			fa.mustSend(encodeFrame(tStdinAck, 1, u32(0xffffffff)))
		}
		select {
		case <-fa.more:
		case <-deadline:
			t.Fatalf("stdin stalled after %d frames", stdin)
		}
	}
	if got := fa.received(tStdin, 1); !bytes.Equal(got, in) {
		t.Errorf("stdin as the agent got it: %d bytes, want the %d sent, in order", len(got), len(in))
	}
	fa.mustSend(encodeFrame(tExit, 1, u32(0)))
	if got := waitResult(t, done); got.err != nil || got.code != 0 {
		t.Errorf("Exec = %+v, want exit 0", got)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestHostileHalfFrame: a header that promises a payload that never comes
// leaves the Client waiting for the agent, but Exec still ends with its
// context (after killWait), and the Client ends when the pipe does.
func TestHostileHalfFrame(t *testing.T) {
	c, fa := newFakeAgent(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	done := startExec(ctx, c, Spec{})
	fa.waitFrame(tStart, 1)
	fa.mustSend(encodeFrame(tStdout, 1, []byte("hello"))[:headerLen+2])
	cancel()
	fa.waitFrame(tKill, 1)
	if got := waitResult(t, done); !errors.Is(got.err, context.Canceled) {
		t.Errorf("Exec cancelled while the agent is silent = %+v, want context.Canceled", got)
	}
	fa.conn.Close()
	waitGone(t, c)
}

// TestHostileAgentNotReading: an agent that stops reading its input blocks
// every write to it. Exec must still end when its context does, whether it
// was blocked writing the start, an acknowledgement or the kill.
func TestHostileAgentNotReading(t *testing.T) {
	t.Run("never reads", func(t *testing.T) {
		c, _ := newFakeAgent(t, false)
		ctx, cancel := context.WithCancel(context.Background())
		done := startExec(ctx, c, Spec{})
		cancel()
		if got := waitResult(t, done); !errors.Is(got.err, context.Canceled) {
			t.Errorf("Exec = %+v, want context.Canceled", got)
		}
	})
	t.Run("stops after start", func(t *testing.T) {
		daemon, agent := net.Pipe()
		t.Cleanup(func() { daemon.Close(); agent.Close() })
		c := NewClient(daemon, daemon)
		ctx, cancel := context.WithCancel(context.Background())
		done := startExec(ctx, c, Spec{})
		var buf []byte
		if typ, id, _, err := readFrame(agent, &buf); err != nil || typ != tStart || id != 1 {
			t.Fatalf("first frame = type %d id %d, %v; want the start of exec 1", typ, id, err)
		}
		// Output the daemon acknowledges, to an agent no longer reading.
		for range 4 {
			if _, err := agent.Write(encodeFrame(tStdout, 1, []byte("out"))); err != nil {
				t.Fatal(err)
			}
		}
		// A frame of no type: once its header is read, the Client has
		// queued the 4 outputs before it.
		if _, err := agent.Write(encodeFrame(0, 1, nil)); err != nil {
			t.Fatal(err)
		}
		cancel()
		got := waitResult(t, done)
		if !errors.Is(got.err, context.Canceled) {
			t.Errorf("Exec = %+v, want context.Canceled", got)
		}
		// Output the Client read before the cancel reaches the caller:
		// none is lost, none comes after Exec returned.
		if got.stdout != "outoutoutout" {
			t.Errorf("stdout = %q, want the 4 frames read", got.stdout)
		}
	})
}

// TestHostileFloodDoesNotStallOthers: one command flooding its window to
// a caller that does not read leaves another command of the same agent
// unaffected.
func TestHostileFloodDoesNotStallOthers(t *testing.T) {
	c, fa := newFakeAgent(t, true)
	slow := newBlockedWriter(t)
	done1 := startExec(context.Background(), c, Spec{Stdout: slow})
	fa.waitFrame(tStart, 1)
	for i := 0; i < window/chunk; i++ {
		fa.mustSend(encodeFrame(tStdout, 1, make([]byte, chunk)))
	}
	done2 := startExec(context.Background(), c, Spec{})
	fa.waitFrame(tStart, 2)
	fa.mustSend(encodeFrame(tStdout, 2, []byte("two")))
	fa.mustSend(encodeFrame(tExit, 2, u32(0)))
	if got, want := waitResult(t, done2), (execResult{stdout: "two"}); got != want {
		t.Errorf("Exec beside a flooded one = %+v, want %+v", got, want)
	}
	fa.mustSend(encodeFrame(tExit, 1, u32(0)))
	slow.open()
	if got := waitResult(t, done1); got.err != nil {
		t.Errorf("flooded Exec = %+v", got)
	}
}

// checkedWriter collects a command's output and checks, at each write,
// that the Client holds at most the window for the command.
type checkedWriter struct {
	t   testing.TB
	c   *Client
	id  uint32
	buf testutil.SyncBuffer
}

func (w *checkedWriter) Write(p []byte) (int, error) {
	if n, _ := queued(w.c, w.id); n > window {
		w.t.Errorf("the Client queues %d output bytes for exec %d, more than the window %d", n, w.id, window)
	}
	return w.buf.Write(p)
}

// model is what a Client must make of an agent's byte stream for exec ids
// 1..n: per id, the output up to its first exit or failure, and that end.
type model struct {
	stdout, stderr [][]byte
	code           []int
	failed         []bool
	ended          []bool
}

func modelFrames(data []byte, n int) model {
	m := model{stdout: make([][]byte, n+1), stderr: make([][]byte, n+1), code: make([]int, n+1), failed: make([]bool, n+1), ended: make([]bool, n+1)}
	r := bytes.NewReader(data)
	var buf []byte
	for {
		typ, id, p, err := readFrame(r, &buf)
		if err != nil {
			return m
		}
		if id < 1 || int(id) > n || m.ended[id] {
			continue
		}
		switch typ {
		case tStdout:
			m.stdout[id] = append(m.stdout[id], p...)
		case tStderr:
			m.stderr[id] = append(m.stderr[id], p...)
		case tExit:
			if len(p) == 4 {
				m.ended[id], m.code[id] = true, int(int32(binary.BigEndian.Uint32(p)))
			}
		case tFailed:
			m.ended[id], m.failed[id] = true, true
		}
	}
}

// FuzzClientHostileAgent plays an agent that answers three concurrent
// commands with arbitrary bytes, then hangs up. The Client must not panic
// or hang; each command's output must be a prefix of what the agent sent
// for it (all of it if Exec reports the exit), and never more than the
// window may be queued (checked at each write of output).
func FuzzClientHostileAgent(f *testing.F) {
	f.Add(bytes.Join([][]byte{
		encodeFrame(tStdout, 1, []byte("a")), encodeFrame(tStderr, 2, []byte("b")), encodeFrame(tExit, 1, u32(0)),
		encodeFrame(tFailed, 2, []byte("no")), encodeFrame(tExit, 3, u32(0xffffff80)),
	}, nil))
	f.Add(encodeFrame(tStdout, 1, make([]byte, chunk)))
	f.Add(append(encodeFrame(99, 2, nil), encodeFrame(tStdinAck, 3, u32(0xffffffff))...))
	f.Add([]byte{tStdout, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		const n = 3
		daemon, agent := net.Pipe()
		defer daemon.Close()
		c := NewClient(daemon, daemon)
		started := make(chan uint32, n)
		go func() { // the agent's reading side: never leave the daemon blocked
			var buf []byte
			for {
				typ, id, _, err := readFrame(agent, &buf)
				if err != nil {
					return
				}
				if typ == tStart {
					started <- id
				}
			}
		}()
		var outs, errs [n + 1]checkedWriter
		var dones [n + 1]<-chan execResult
		for i := 1; i <= n; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), liveness)
			defer cancel()
			outs[i] = checkedWriter{t: t, c: c, id: uint32(i)}
			errs[i] = checkedWriter{t: t, c: c, id: uint32(i)}
			dones[i] = startExec(ctx, c, Spec{Stdin: strings.NewReader("in"), Stdout: &outs[i], Stderr: &errs[i]})
			if id := <-started; id != uint32(i) {
				t.Fatalf("exec %d started as id %d", i, id)
			}
		}
		wrote := make(chan struct{})
		go func() {
			agent.Write(data) // blocks if the Client gives up on the agent
			close(wrote)
		}()
		select {
		case <-wrote:
		case <-c.Gone():
		case <-time.After(liveness):
			t.Fatal("the Client neither read the agent's bytes nor gave up")
		}
		agent.Close()
		<-wrote
		waitGone(t, c)
		m := modelFrames(data, n)
		for i := 1; i <= n; i++ {
			got := waitResult(t, dones[i])
			if errors.Is(got.err, context.DeadlineExceeded) {
				t.Fatalf("exec %d hung", i)
			}
			stdout, stderr := outs[i].buf.String(), errs[i].buf.String()
			if !strings.HasPrefix(string(m.stdout[i]), stdout) || !strings.HasPrefix(string(m.stderr[i]), stderr) {
				t.Errorf("exec %d delivered %q / %q, not a prefix of what the agent sent, %q / %q", i, stdout, stderr, m.stdout[i], m.stderr[i])
			}
			switch {
			case got.err == nil:
				if !m.ended[i] || m.failed[i] || got.code != m.code[i] || stdout != string(m.stdout[i]) || stderr != string(m.stderr[i]) {
					t.Errorf("exec %d = exit %d with %d+%d bytes; the agent sent exit %d (ended %v) after %d+%d", i, got.code, len(stdout), len(stderr), m.code[i], m.ended[i], len(m.stdout[i]), len(m.stderr[i]))
				}
			case errors.Is(got.err, ErrStart):
				if !m.failed[i] {
					t.Errorf("exec %d = %v, but the agent sent no failure for it first", i, got.err)
				}
			case !errors.Is(got.err, ErrGone):
				t.Errorf("exec %d = %v, want an exit, ErrStart or ErrGone", i, got.err)
			}
		}
	})
}
