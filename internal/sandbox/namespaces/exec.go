package namespaces

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/standin/standin/internal/sandbox"
)

// After a command has exited, Exec keeps copying its output until EOF.
// Output normally ends when the command exits, but a process it left in the
// background (`cmd &`) may hold stdout open for ever, so Exec gives up once
// the output has been idle for drainIdle, or at most drainMax after the
// exit. Output the command wrote before it exited is never cut: it sits in
// the pipe until delivered (up to drainMax, for a stalled reader).
const (
	drainIdle = 2 * time.Second
	drainMax  = 30 * time.Second
)

// killTimeout is how long Exec waits for the exit of a command killed
// because its context is done.
const killTimeout = 5 * time.Second

// Instance is a running namespace sandbox.
type Instance struct {
	*process // the init
	rt       *Runtime
	id       string
	env      []string // Spec.Environ

	gone atomic.Bool // Delete has begun
}

var _ sandbox.Instance = (*Instance)(nil)

// ID implements sandbox.Instance.
func (in *Instance) ID() string { return in.id }

// Delete implements sandbox.Instance. It kills the init, whose end makes
// the kernel kill every other process of the PID namespace (running Execs
// return ErrNotFound), and waits until all of them are gone. The mounts,
// the writable layer and a new network namespace go with the last one.
func (in *Instance) Delete(ctx context.Context) error {
	if in.gone.Swap(true) {
		return nil
	}
	defer in.rt.forget(in.id)
	in.kill()
	select {
	case <-in.exited:
	case <-ctx.Done():
		// Killed, but processes in uninterruptible sleep take their time.
		return fmt.Errorf("delete sandbox %q: %w", in.id, ctx.Err())
	}
	in.rt.log.Info("sandbox deleted", logKeySandbox, in.id)
	return nil
}

// Exec implements sandbox.Instance: the init forks the command, with the
// streams the runtime passes it.
func (in *Instance) Exec(ctx context.Context, spec sandbox.ExecSpec) (int, error) {
	if err := spec.Validate(); err != nil {
		return -1, err
	}
	if in.gone.Load() {
		return -1, fmt.Errorf("exec in %q: %w", in.id, sandbox.ErrNotFound)
	}
	code, err := in.exec(ctx, spec)
	switch {
	case err == nil:
		return code, nil
	case in.gone.Load():
		return -1, fmt.Errorf("exec in %q: %w", in.id, sandbox.ErrNotFound)
	case errors.Is(err, errTooLarge):
		return -1, fmt.Errorf("%w: exec in %q: arguments and environment too large", sandbox.ErrInvalidSpec, in.id)
	}
	if errors.Is(err, errLost) {
		// The init went away, or is going: say why, if it said.
		select {
		case <-in.exited:
			return -1, fmt.Errorf("exec in %q: sandbox init exited: %s", in.id, in.stderr.String())
		case <-time.After(killTimeout):
		}
	}
	return -1, fmt.Errorf("exec in %q: %w", in.id, err)
}

// errLost marks an Exec that lost its connection to the init.
var errLost = errors.New("lost the sandbox init")

func (in *Instance) exec(ctx context.Context, spec sandbox.ExecSpec) (int, error) {
	spec = spec.WithDefaults(in.env)
	req := &execRequest{Args: spec.Args, Env: spec.Env, Dir: spec.Dir, TTY: spec.TTY}
	if spec.TTY {
		req.Rows, req.Cols = spec.Rows, spec.Cols
	}

	conn, theirs, err := socketPair()
	if err != nil {
		return -1, err
	}
	defer conn.Close()
	st := &stdio{}
	if !spec.TTY {
		if st, err = pipeStdio(spec); err != nil {
			unix.Close(theirs)
			return -1, err
		}
	}
	err = send(in.ctl, req, append([]int{theirs}, st.childFDs()...)...)
	unix.Close(theirs)
	st.closeChildEnds()
	if err != nil {
		st.abort()
		if errors.Is(err, errTooLarge) {
			return -1, err
		}
		return -1, fmt.Errorf("%w: %w", errLost, err)
	}

	// The init kills the command when our side of the exec socket shuts.
	stop := context.AfterFunc(ctx, func() {
		conn.CloseWrite()
		conn.SetReadDeadline(time.Now().Add(killTimeout))
	})
	defer stop()
	rcv := newReceiver(64 << 10)
	var started execReply
	fds, err := rcv.recv(conn, &started)
	if err != nil || started.Error != "" {
		st.abort()
		closeAll(fds)
		switch {
		case ctx.Err() != nil:
			return -1, ctx.Err()
		case err != nil:
			return -1, fmt.Errorf("%w: %w", errLost, err)
		}
		return -1, errors.New(started.Error)
	}
	if spec.TTY {
		if len(fds) != 1 {
			closeAll(fds)
			return -1, fmt.Errorf("init sent %d descriptors for the terminal, want 1", len(fds))
		}
		ptm := os.NewFile(uintptr(fds[0]), "ptm")
		st = ttyStdio(ptm, spec)
		if spec.Resize != nil {
			stopResize := make(chan struct{})
			defer close(stopResize)
			go resizeTTY(ptm, spec.Resize, stopResize)
		}
	} else {
		closeAll(fds)
	}

	var done execReply
	_, err = rcv.recv(conn, &done)
	st.drain(drainIdle, drainMax)
	switch {
	case ctx.Err() != nil:
		return -1, ctx.Err()
	case err != nil:
		return -1, fmt.Errorf("%w: %w", errLost, err)
	case done.Exit == nil:
		return -1, errors.New("init sent no exit status")
	}
	return *done.Exit, nil
}

// stdio is the plumbing between an ExecSpec's streams and the command's
// standard files.
type stdio struct {
	child  []*os.File // the command's ends, closed once passed to the init
	copies []*outCopy
}

// outCopy copies one output stream.
type outCopy struct {
	r       *os.File
	done    chan struct{}
	writing atomic.Bool // inside the caller's Write
}

// childFDs returns the descriptors to pass, in blocking mode as a command
// expects its standard files to be.
func (s *stdio) childFDs() []int {
	fds := make([]int, len(s.child))
	for i, f := range s.child {
		fds[i] = int(f.Fd())
	}
	return fds
}

func (s *stdio) closeChildEnds() {
	for _, f := range s.child {
		f.Close()
	}
	s.child = nil
}

// abort closes everything, for a command that did not start.
func (s *stdio) abort() {
	s.closeChildEnds()
	s.closeReaders()
}

func (s *stdio) closeReaders() {
	for _, c := range s.copies {
		c.r.Close()
	}
}

// drain waits for the output copies to end after the command has exited.
// It stops them when idle for idle, or after max: see drainIdle.
func (s *stdio) drain(idle, max time.Duration) {
	defer s.closeReaders()
	deadline := time.Now().Add(max)
	for _, c := range s.copies {
		for waiting := true; waiting; {
			select {
			case <-c.done:
				waiting = false
			case <-time.After(idle):
				if time.Now().Before(deadline) && (c.writing.Load() || pending(c.r) > 0) {
					continue // still delivering what was written
				}
				s.closeReaders()
				<-c.done
				waiting = false
			}
		}
	}
}

// pending returns how many bytes are waiting to be read from f.
func pending(f *os.File) int {
	var n int
	if err := control(f, func(fd int) (err error) {
		n, err = unix.IoctlGetInt(fd, unix.TIOCINQ) // FIONREAD
		return err
	}); err != nil {
		return 0
	}
	return n
}

// copyOut copies from r to w until EOF or r is closed. A w that fails is
// ignored from then on (the rest is read and dropped) so that the command
// never blocks on a full pipe.
func (s *stdio) copyOut(w io.Writer, r *os.File) {
	c := &outCopy{r: r, done: make(chan struct{})}
	s.copies = append(s.copies, c)
	go func() {
		defer close(c.done)
		buf := make([]byte, 32<<10)
		var werr error
		for {
			n, err := r.Read(buf)
			if n > 0 && werr == nil {
				c.writing.Store(true)
				_, werr = w.Write(buf[:n])
				c.writing.Store(false)
			}
			if err != nil {
				return // EOF; EIO from a pty whose other side is closed; or closed by drain
			}
		}
	}()
}

func pipeStdio(spec sandbox.ExecSpec) (*stdio, error) {
	s := &stdio{}
	if spec.Stdin == nil {
		null, err := os.Open(os.DevNull)
		if err != nil {
			return nil, err
		}
		s.child = append(s.child, null)
	} else {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		s.child = append(s.child, r)
		go func() {
			// Not waited for: the reader may block long after the
			// command has exited.
			io.Copy(w, spec.Stdin)
			w.Close()
		}()
	}
	stdout, err := s.output(spec.Stdout)
	if err != nil {
		s.abort()
		return nil, err
	}
	s.child = append(s.child, stdout)
	stderr := stdout
	if !sameWriter(spec.Stdout, spec.Stderr) {
		// One writer for both (a buffer for combined output) gets one pipe,
		// as with os/exec: two copies into it would race.
		if stderr, err = s.output(spec.Stderr); err != nil {
			s.abort()
			return nil, err
		}
	}
	s.child = append(s.child, stderr)
	return s, nil
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

// output returns the file the command writes a stream to: /dev/null if w
// is nil, else a pipe copied to w. The caller owns the file.
func (s *stdio) output(w io.Writer) (*os.File, error) {
	if w == nil {
		return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s.copyOut(w, r)
	return pw, nil
}

// ttyStdio copies between the primary side of the command's terminal and
// the ExecSpec's streams.
func ttyStdio(ptm *os.File, spec sandbox.ExecSpec) *stdio {
	s := &stdio{}
	out := spec.Stdout
	if out == nil {
		out = io.Discard
	}
	s.copyOut(out, ptm)
	if spec.Stdin != nil {
		// The primary side is closed by drain, which ends this copy too.
		go io.Copy(ptm, spec.Stdin)
	}
	return s
}

// resizeTTY gives the command's terminal each size received until done;
// the kernel sends SIGWINCH to the terminal's foreground process group.
// The primary side may be closed by drain meanwhile: the ioctl then fails,
// and there is nothing left to resize.
func resizeTTY(ptm *os.File, sizes <-chan sandbox.WindowSize, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case sz, ok := <-sizes:
			if !ok {
				return
			}
			control(ptm, func(fd int) error {
				return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Rows, Col: sz.Cols})
			})
		}
	}
}

// control runs fn on f's descriptor.
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var fnErr error
	if err := rc.Control(func(fd uintptr) { fnErr = fn(int(fd)) }); err != nil {
		return err
	}
	return fnErr
}
