package agent

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/standin/standin/internal/sandbox"
)

// ErrGone means the agent stopped answering: the sandbox was deleted, or
// its first process died.
var ErrGone = errors.New("sandbox agent gone")

// ErrStart means the command could not be started (not found, not
// executable, bad directory); the wrapped message says why.
var ErrStart = errors.New("cannot start command")

// killWait is how long Exec waits for the exit of a command it killed
// because its context ended.
const killWait = 5 * time.Second

// Client is the daemon's side of one sandbox's agent.
type Client struct {
	fw *frameWriter

	mu     sync.Mutex
	calls  map[uint32]*call
	nextID uint32
	err    error // why the agent is gone; set once
	gone   chan struct{}
	// acks holds output bytes delivered but not yet acknowledged, per
	// exec id; writeAcks sends them when ackc says there are some. Apart
	// from deliver, so that an agent that stops reading its input blocks
	// only the acknowledgements, never the output to the caller.
	acks map[uint32]uint32
	ackc chan struct{}
}

// NewClient talks to an agent that reads frames from w and writes them to
// r. It reads r until it ends; then every Exec fails with ErrGone.
func NewClient(r io.Reader, w io.Writer) *Client {
	c := &Client{fw: &frameWriter{w: w}, calls: map[uint32]*call{}, gone: make(chan struct{}),
		acks: map[uint32]uint32{}, ackc: make(chan struct{}, 1)}
	go c.read(r)
	go c.writeAcks()
	return c
}

// Gone is closed when the agent has stopped answering.
func (c *Client) Gone() <-chan struct{} { return c.gone }

// errOverrun: the agent sent more output than the window allows. Only an
// agent that no longer keeps to the protocol does; the daemon would have
// to hold whatever it sends.
var errOverrun = errors.New("agent protocol: output beyond the window")

func (c *Client) read(r io.Reader) {
	var buf []byte
	var err error
frames:
	for {
		var typ byte
		var id uint32
		var p []byte
		typ, id, p, err = readFrame(r, &buf)
		if err != nil {
			break
		}
		c.mu.Lock()
		cl := c.calls[id]
		c.mu.Unlock()
		if cl == nil {
			continue // a command Exec gave up on
		}
		switch typ {
		case tStdout, tStderr:
			if !cl.out.push(typ, p) {
				err = fmt.Errorf("%w: exec %d", errOverrun, id)
				break frames
			}
		case tStdinAck:
			if len(p) == 4 {
				cl.in.give(int(binary.BigEndian.Uint32(p)))
			}
		case tExit:
			if len(p) == 4 {
				cl.finish(int(int32(binary.BigEndian.Uint32(p))), nil)
			}
		case tFailed:
			msg := string(p)
			if len(msg) > 512 {
				msg = msg[:512]
			}
			cl.finish(-1, fmt.Errorf("%w: %s", ErrStart, msg))
		}
	}
	c.mu.Lock()
	c.err = fmt.Errorf("%w: %v", ErrGone, err)
	calls := c.calls
	c.calls = map[uint32]*call{}
	c.mu.Unlock()
	close(c.gone)
	for _, cl := range calls {
		cl.finish(-1, c.err)
	}
}

// Spec is a command to run.
type Spec struct {
	Args []string
	Env  []string // the whole environment
	Dir  string
	TTY  bool
	// Rows and Cols size the TTY; zero means 24 x 80.
	Rows, Cols uint16
	// Stdin, Stdout and Stderr are as in sandbox.ExecSpec: nil is empty
	// input or discarded output; Stdout == Stderr is one combined stream.
	// With TTY all output arrives on Stdout.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Resize, if non-nil, delivers new TTY sizes while the command runs.
	Resize <-chan sandbox.WindowSize
}

// call is one Exec in progress.
type call struct {
	id   uint32
	out  *outQueue
	in   *credit
	done chan struct{}
	once sync.Once
	code int
	err  error
}

func (cl *call) finish(code int, err error) {
	cl.once.Do(func() {
		cl.code, cl.err = code, err
		cl.out.close()
		cl.in.close()
		close(cl.done)
	})
}

// Exec runs a command and waits for it: exit is its exit status (128+n if
// it died of signal n). err is ErrStart if it could not start, ErrGone if
// the sandbox went away, or ctx's error if ctx ended (the command is then
// killed, with its process group).
func (c *Client) Exec(ctx context.Context, s Spec) (exit int, err error) {
	combined := s.Stdout != nil && sameWriter(s.Stdout, s.Stderr)
	req := startReq{
		Args: s.Args, Env: s.Env, Dir: s.Dir, TTY: s.TTY, Rows: s.Rows, Cols: s.Cols,
		Stdin: s.Stdin != nil, Stdout: s.Stdout != nil, Stderr: s.Stderr != nil && !combined, Combined: combined,
	}
	if s.TTY {
		req.Stdout, req.Stderr, req.Combined = true, false, false
	}
	payload, err := json.Marshal(req)
	if err != nil {
		return -1, err
	}

	cl := &call{out: newOutQueue(), in: newCredit(), done: make(chan struct{})}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return -1, c.err
	}
	c.nextID++
	cl.id = c.nextID
	c.calls[cl.id] = cl
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.calls, cl.id)
		c.mu.Unlock()
		cl.finish(-1, ErrGone) // no-op unless Exec returns early
	}()

	stdout, stderr := s.Stdout, s.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil || combined || s.TTY {
		stderr = stdout
	}
	written := make(chan struct{})
	go c.deliver(cl, stdout, stderr, written)

	// An agent that stops reading its input blocks every write to it: the
	// start is written aside, so that Exec still ends with ctx.
	started := make(chan error, 1)
	go func() { started <- c.fw.write(tStart, cl.id, payload) }()
	select {
	case err := <-started:
		if err != nil {
			return -1, fmt.Errorf("%w: %v", ErrGone, err)
		}
	case <-ctx.Done():
		go func() {
			if <-started == nil {
				c.fw.write(tKill, cl.id, nil) // it did start after all
			}
		}()
		cl.finish(-1, ctx.Err())
		<-written
		return -1, ctx.Err()
	}
	if s.Stdin != nil {
		go c.pumpStdin(cl, s.Stdin)
	}
	if s.Resize != nil && s.TTY {
		go func() {
			for {
				select {
				case <-cl.done:
					return
				case sz, ok := <-s.Resize:
					if !ok {
						return
					}
					var p [4]byte
					binary.BigEndian.PutUint16(p[:], sz.Rows)
					binary.BigEndian.PutUint16(p[2:], sz.Cols)
					c.fw.write(tResize, cl.id, p[:])
				}
			}
		}()
	}

	var ctxErr error
	select {
	case <-cl.done:
	case <-ctx.Done():
		ctxErr = ctx.Err()
		go c.fw.write(tKill, cl.id, nil) // may block: see the start
		select {
		case <-cl.done:
		case <-time.After(killWait):
			cl.finish(-1, ctxErr)
		}
	}
	<-written
	if ctxErr != nil {
		return -1, ctxErr
	}
	if cl.err != nil {
		return -1, cl.err
	}
	return cl.code, nil
}

// deliver writes the command's output to the caller's writers in order
// and acknowledges it. A writer that fails is ignored from then on (the
// rest is dropped) so that the command never blocks.
func (c *Client) deliver(cl *call, stdout, stderr io.Writer, written chan<- struct{}) {
	defer close(written)
	var outErr, errErr error
	for {
		typ, b, ok := cl.out.pop()
		if !ok {
			return
		}
		switch {
		case typ == tStderr && errErr == nil:
			_, errErr = stderr.Write(b)
		case typ == tStdout && outErr == nil:
			_, outErr = stdout.Write(b)
		}
		c.ack(cl.id, len(b))
	}
}

// ack notes n bytes of exec id's output as delivered, for writeAcks.
func (c *Client) ack(id uint32, n int) {
	c.mu.Lock()
	c.acks[id] += uint32(n)
	c.mu.Unlock()
	select {
	case c.ackc <- struct{}{}:
	default: // writeAcks has yet to take the last ones: it takes these too
	}
}

// writeAcks acknowledges delivered output until the agent is gone. The
// pending acknowledgements are one sum per exec id, so they take no more
// memory while a write to the agent blocks.
func (c *Client) writeAcks() {
	for {
		select {
		case <-c.ackc:
		case <-c.gone:
			return
		}
		c.mu.Lock()
		acks := c.acks
		c.acks = map[uint32]uint32{}
		c.mu.Unlock()
		for id, n := range acks {
			c.fw.writeU32(tAck, id, n)
		}
	}
}

// pumpStdin sends stdin in chunks, at most window bytes unacknowledged,
// then EOF. It is not waited for: the reader may block long after the
// command has exited.
func (c *Client) pumpStdin(cl *call, r io.Reader) {
	buf := make([]byte, chunk)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if !cl.in.take(n) {
				return
			}
			if c.fw.write(tStdin, cl.id, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			select {
			case <-cl.done:
			default:
				c.fw.write(tStdinEOF, cl.id, nil)
			}
			return
		}
	}
}

// outQueue holds output frames until deliver writes them. The agent sends
// at most window bytes ahead of the acknowledgements, and deliver
// acknowledges only what it took from the queue, so an agent keeping to the
// protocol never has more than window bytes in it; push refuses more.
type outQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []outItem
	size   int // bytes in items
	closed bool
}

type outItem struct {
	typ byte
	b   []byte
}

func newOutQueue() *outQueue {
	q := &outQueue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// push queues a copy of b; false if the queue would then hold more than
// window bytes. Empty frames are dropped, and small ones join the last item
// of their type, so that the count of items (each with its overhead) stays
// bounded too whatever sizes the agent chooses.
func (q *outQueue) push(typ byte, b []byte) bool {
	q.mu.Lock()
	defer q.cond.Signal()
	defer q.mu.Unlock()
	if q.closed || len(b) == 0 {
		return true
	}
	if q.size+len(b) > window {
		return false
	}
	q.size += len(b)
	if n := len(q.items); n > 0 && q.items[n-1].typ == typ && len(q.items[n-1].b)+len(b) <= chunk {
		q.items[n-1].b = append(q.items[n-1].b, b...)
		return true
	}
	q.items = append(q.items, outItem{typ, append([]byte(nil), b...)})
	return true
}

// pop returns the next item; after close, the items left, then false.
func (q *outQueue) pop() (byte, []byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.items) == 0 {
		return 0, nil, false
	}
	it := q.items[0]
	q.items[0] = outItem{} // no reference left behind in the array
	q.items = q.items[1:]
	q.size -= len(it.b)
	return it.typ, it.b, true
}

func (q *outQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// sameWriter reports whether a and b are the same writer; writers of
// types that cannot be compared are different.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}
