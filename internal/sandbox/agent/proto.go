// Package agent runs commands inside a sandbox on the daemon's behalf.
//
// Starting a process through the sandbox runtime's own tool (`runsc exec`)
// costs a host process of tens of milliseconds per command. Instead, a
// sandbox's first process is the agent (the standin binary, run with the
// single argument ArgAgent), and the daemon talks to it over the
// sandbox's standard input and output: one pipe each way, carrying frames
// for any number of concurrent commands. Serve is the agent's side, Client
// the daemon's.
//
// The agent is PID 1 of the sandbox: it reaps orphans, and a command's
// exit status reaches only the Exec that started it. It runs as the
// sandbox user with no privileges, like the commands; it makes itself
// non-dumpable, so a command cannot ptrace it or read its memory or file
// descriptors. The daemon treats every frame as untrusted input: a command
// that takes over the agent can only lie about its own sandbox's output.
//
// Frames are [type u8][exec id u32][length u32][payload]. Output and stdin
// are flow controlled per command with acknowledgements (window bytes in
// flight at most), so a slow reader of one command never stalls another,
// and memory stays bounded whatever the command writes.
package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ArgAgent is the argument that makes the standin binary the agent (see
// Main).
const ArgAgent = "__standin-sandbox-agent"

// Protocol is the version of the frames below. Bump it with any change to
// them: a daemon refuses an agent binary that answers another (a
// standin-agent left over from an older build).
const Protocol = 1

// ArgProtocol, after ArgAgent, makes Main print Protocol and exit.
const ArgProtocol = "protocol"

// CheckProtocol runs the agent binary bin on the host to ask for its
// Protocol, and says whether it speaks this one.
func CheckProtocol(ctx context.Context, bin string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, ArgAgent, ArgProtocol)
	cmd.Env = []string{} // nothing of the daemon's environment
	out, err := cmd.Output()
	if got := strings.TrimSpace(string(out)); err != nil || got != strconv.Itoa(Protocol) {
		if err != nil {
			return fmt.Errorf("agent %q does not answer its protocol version (%v): it is not a standin agent of this version", bin, err)
		}
		return fmt.Errorf("agent %q speaks protocol %q, this daemon %d: it is from another build of standin", bin, got, Protocol)
	}
	return nil
}

// Frame types. d→a: daemon to agent; a→d: agent to daemon.
const (
	tStart    byte = 1  // d→a: startReq as JSON
	tStdin    byte = 2  // d→a: bytes for the command's stdin
	tStdinEOF byte = 3  // d→a: stdin ends
	tKill     byte = 4  // d→a: kill the command's process group
	tResize   byte = 5  // d→a: rows u16, cols u16 (TTY)
	tAck      byte = 6  // d→a: u32 output bytes delivered
	tFailed   byte = 16 // a→d: the command could not be started: message
	tStdout   byte = 17 // a→d: output
	tStderr   byte = 18 // a→d: output
	tExit     byte = 19 // a→d: i32 exit code, after all output
	tStdinAck byte = 20 // a→d: u32 stdin bytes written to the command
)

const (
	headerLen  = 9
	maxPayload = 1 << 20
	chunk      = 32 << 10
	// window is how many bytes of one stream may be in flight, unacknowledged.
	window = 256 << 10
)

// After a command has exited, its output is still copied until EOF. A
// process it left in the background (`cmd &`) may hold the output open for
// ever, so copying stops once the output has been idle for DrainIdle, or at
// most DrainMax after the exit. Output written before the exit is never cut
// while it is being delivered (up to DrainMax).
const (
	DrainIdle = 2 * time.Second
	DrainMax  = 30 * time.Second
)

// startReq describes a command to start.
type startReq struct {
	Args []string `json:"args"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
	TTY  bool     `json:"tty,omitempty"`
	Rows uint16   `json:"rows,omitempty"`
	Cols uint16   `json:"cols,omitempty"`
	// Stdin, Stdout and Stderr say whether the daemon has that stream; a
	// missing one is /dev/null. Combined sends stderr as stdout, on one
	// pipe, so their order is kept.
	Stdin    bool `json:"stdin,omitempty"`
	Stdout   bool `json:"stdout,omitempty"`
	Stderr   bool `json:"stderr,omitempty"`
	Combined bool `json:"combined,omitempty"`
}

var errFrameTooLarge = errors.New("agent protocol: frame too large")

// frameWriter writes whole frames; safe for concurrent use.
type frameWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

func (fw *frameWriter) write(typ byte, id uint32, payload []byte) error {
	if len(payload) > maxPayload {
		return errFrameTooLarge
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	fw.buf = append(fw.buf[:0], typ)
	fw.buf = binary.BigEndian.AppendUint32(fw.buf, id)
	fw.buf = binary.BigEndian.AppendUint32(fw.buf, uint32(len(payload)))
	fw.buf = append(fw.buf, payload...)
	_, err := fw.w.Write(fw.buf)
	if cap(fw.buf) > 2*chunk+headerLen {
		fw.buf = nil // a large start request: do not keep its buffer
	}
	return err
}

func (fw *frameWriter) writeU32(typ byte, id, v uint32) error {
	return fw.write(typ, id, binary.BigEndian.AppendUint32(nil, v))
}

// readFrame reads one frame into buf (grown as needed) and returns its
// parts; payload aliases buf.
func readFrame(r io.Reader, buf *[]byte) (typ byte, id uint32, payload []byte, err error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[5:])
	if n > maxPayload {
		return 0, 0, nil, fmt.Errorf("%w: %d bytes", errFrameTooLarge, n)
	}
	if cap(*buf) < int(n) {
		*buf = make([]byte, n)
	}
	p := (*buf)[:n]
	if _, err := io.ReadFull(r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, 0, nil, err
	}
	return h[0], binary.BigEndian.Uint32(h[1:5]), p, nil
}

// credit counts bytes in flight against window.
type credit struct {
	mu     sync.Mutex
	cond   *sync.Cond
	used   int
	closed bool
}

func newCredit() *credit {
	c := &credit{}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// take waits until n more bytes fit in the window; false once closed.
func (c *credit) take(n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.closed && c.used > 0 && c.used+n > window {
		c.cond.Wait()
	}
	if c.closed {
		return false
	}
	c.used += n
	return true
}

func (c *credit) give(n int) {
	c.mu.Lock()
	c.used = max(c.used-n, 0)
	c.mu.Unlock()
	c.cond.Broadcast()
}

func (c *credit) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cond.Broadcast()
}

// inFlight reports whether bytes are waiting for an acknowledgement.
func (c *credit) inFlight() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used > 0
}
