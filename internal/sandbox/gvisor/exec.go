package gvisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
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

// killTimeout is how long Exec waits for a command killed because its
// context is done before giving up on runsc.
const killTimeout = 5 * time.Second

// execFailed is runsc exec's exit status when it could not run the command
// (not found, sandbox gone); the reason is written to --log-fd.
const execFailed = 128

// Instance is a running gVisor sandbox.
type Instance struct {
	rt     *Runtime
	id     string
	bundle string
	user   ociUser
	env    []string // defaults and Spec.Env

	seq  atomic.Int64 // names per-exec files in the bundle
	gone atomic.Bool  // Delete has begun
}

var _ sandbox.Instance = (*Instance)(nil)

// ID implements sandbox.Instance.
func (in *Instance) ID() string { return in.id }

// Delete implements sandbox.Instance. It kills every process in the sandbox
// (running Execs return an error), waits until runsc's processes are gone
// and removes the bundle with the writable layer.
func (in *Instance) Delete(ctx context.Context) error {
	if in.gone.Swap(true) {
		return nil
	}
	err := in.rt.remove(ctx, in.id)
	// Forget it even if runsc failed: Cleanup then retries.
	in.rt.forget(in.id)
	if err != nil {
		return err
	}
	in.rt.log.Info("sandbox deleted", logKeySandbox, in.id)
	return nil
}

// Exec implements sandbox.Instance with `runsc exec --process`: the command's
// environment goes in a 0600 file rather than on runsc's command line, where
// any host user could read it in /proc.
func (in *Instance) Exec(ctx context.Context, spec sandbox.ExecSpec) (int, error) {
	if len(spec.Args) == 0 || spec.Args[0] == "" {
		return -1, fmt.Errorf("%w: exec: no command", sandbox.ErrInvalidSpec)
	}
	if err := validateEnv(spec.Env); err != nil {
		return -1, err
	}
	if in.gone.Load() {
		return -1, fmt.Errorf("exec in %q: %w", in.id, sandbox.ErrNotFound)
	}
	code, err := in.exec(ctx, spec)
	if err != nil && in.gone.Load() {
		// The bundle went, or runsc lost the sandbox, under Delete.
		return -1, fmt.Errorf("exec in %q: %w", in.id, sandbox.ErrNotFound)
	}
	if err != nil {
		return -1, fmt.Errorf("exec in %q: %w", in.id, err)
	}
	return code, nil
}

func (in *Instance) exec(ctx context.Context, spec sandbox.ExecSpec) (int, error) {
	n := in.seq.Add(1)
	procPath := filepath.Join(in.bundle, fmt.Sprintf("exec-%d.json", n))
	pidPath := filepath.Join(in.bundle, fmt.Sprintf("exec-%d.pid", n))
	defer os.Remove(procPath)
	defer os.Remove(pidPath)
	proc := in.process(spec)
	if err := writeJSON(procPath, proc); err != nil {
		return -1, err
	}

	// runsc reports why it could not run the command on --log-fd, as JSON;
	// its stderr is the command's.
	logR, logW, err := os.Pipe()
	if err != nil {
		return -1, err
	}
	defer logR.Close()
	cmd := in.rt.command(context.WithoutCancel(ctx), "--log-fd=3", "exec",
		"--process="+procPath, "--internal-pid-file="+pidPath, in.id)
	cmd.ExtraFiles = []*os.File{logW}
	var logBuf bytes.Buffer
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		io.Copy(&logBuf, io.LimitReader(logR, 64<<10))
		io.Copy(io.Discard, logR)
	}()

	var st *stdio
	if spec.TTY {
		st, err = ttyStdio(cmd, spec, *proc.ConsoleSize)
	} else {
		st, err = pipeStdio(cmd, spec)
	}
	if err != nil {
		logW.Close()
		return -1, err
	}
	startErr := cmd.Start()
	logW.Close()
	st.closeChildEnds()
	if startErr != nil {
		st.abort()
		return -1, fmt.Errorf("run runsc: %w", startErr)
	}

	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var waitErr, ctxErr error
	select {
	case waitErr = <-waited:
	case <-ctx.Done():
		ctxErr = ctx.Err()
		waitErr = in.killAndWait(pidPath, cmd, waited)
	}
	st.drain(drainIdle, drainMax)
	<-logDone

	if ctxErr != nil {
		return -1, ctxErr
	}
	code := cmd.ProcessState.ExitCode()
	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) {
		return -1, fmt.Errorf("wait for runsc: %w", waitErr)
	}
	msg := runscError(logBuf.Bytes())
	switch {
	case in.gone.Load() && (msg != "" || code >= execFailed):
		return -1, errors.New("killed by delete") // Exec makes it ErrNotFound
	case msg != "" && (code == execFailed || code == 1):
		return -1, errors.New(msg)
	case code < 0:
		return -1, fmt.Errorf("runsc: %w", waitErr)
	}
	return code, nil
}

// process returns the OCI process of a command.
func (in *Instance) process(spec sandbox.ExecSpec) *ociProcess {
	p := &ociProcess{
		Terminal:        spec.TTY,
		User:            in.user,
		Args:            spec.Args,
		Env:             mergeEnv(in.env, spec.Env),
		Cwd:             spec.Dir,
		Capabilities:    noCaps(),
		Rlimits:         []ociRlimit{{Type: "RLIMIT_NOFILE", Hard: noFile, Soft: noFile}},
		NoNewPrivileges: true,
	}
	if p.Cwd == "" {
		p.Cwd = sandbox.HomeDir
	}
	if spec.TTY {
		if !hasKey(p.Env, "TERM") {
			p.Env = append(p.Env, "TERM=xterm-256color")
		}
		p.ConsoleSize = &ociBox{Height: uint(orDefault(spec.Rows, 24)), Width: uint(orDefault(spec.Cols, 80))}
	}
	return p
}

// killAndWait kills a command whose context is done and waits for runsc
// exec. The command is killed inside the sandbox: killing runsc exec would
// leave it running. Its pid is known once runsc has written pidPath.
func (in *Instance) killAndWait(pidPath string, cmd *exec.Cmd, waited <-chan error) error {
	deadline := time.After(killTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	killed := false
	for {
		if !killed {
			killed = in.kill(pidPath)
		}
		select {
		case err := <-waited:
			return err
		case <-deadline:
			cmd.Process.Kill()
			return <-waited
		case <-tick.C:
		}
	}
}

// kill sends SIGKILL to the process whose sandbox pid is in pidPath. It
// reports false if the file is not written yet.
func (in *Instance) kill(pidPath string) bool {
	b, err := os.ReadFile(pidPath)
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return false // partly written
	}
	ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
	defer cancel()
	_ = in.rt.command(ctx, "kill", "--pid="+strconv.Itoa(pid), in.id, "KILL").Run()
	return true
}

// runscError returns the message of the error runsc wrote as JSON on its
// log fd, or "".
func runscError(log []byte) string {
	var last string
	for _, line := range bytes.Split(log, []byte("\n")) {
		var e struct {
			Msg   string `json:"msg"`
			Level string `json:"level"`
		}
		if json.Unmarshal(line, &e) == nil && e.Level == "error" && e.Msg != "" {
			last = e.Msg
		}
	}
	return last
}

// stdio is the plumbing between an ExecSpec's streams and runsc exec's
// standard files. runsc hands those files to the sandbox as they are, so
// they are always pipes or a pty of ours: a regular file of the caller
// would be written by the Sentry at offsets it tracks itself.
type stdio struct {
	child  []*os.File // runsc's ends, closed once it has started
	copies []*outCopy
}

// outCopy copies one output stream.
type outCopy struct {
	r       *os.File
	done    chan struct{}
	writing atomic.Bool // inside the caller's Write
}

func (s *stdio) closeChildEnds() {
	for _, f := range s.child {
		f.Close()
	}
	s.child = nil
}

// abort closes everything, for a runsc that did not start.
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

// copyIn copies stdin into w, then closes w. It is not waited for: the
// reader may block long after the command has exited.
func copyIn(w *os.File, stdin io.Reader) {
	go func() {
		io.Copy(w, stdin)
		w.Close()
	}()
}

func pipeStdio(cmd *exec.Cmd, spec sandbox.ExecSpec) (*stdio, error) {
	s := &stdio{}
	if spec.Stdin == nil {
		null, err := os.Open(os.DevNull)
		if err != nil {
			return nil, err
		}
		s.child = append(s.child, null)
		cmd.Stdin = null
	} else {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		s.child = append(s.child, r)
		cmd.Stdin = r
		copyIn(w, spec.Stdin)
	}
	stdout, err := s.output(spec.Stdout)
	if err != nil {
		s.abort()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = stdout, stdout
	if !sameWriter(spec.Stdout, spec.Stderr) {
		// One writer for both (a buffer for combined output) gets one pipe,
		// as with os/exec: two copies into it would race.
		if cmd.Stderr, err = s.output(spec.Stderr); err != nil {
			s.abort()
			return nil, err
		}
	}
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

// output returns the file runsc writes a stream to: /dev/null if w is nil,
// else a pipe copied to w.
func (s *stdio) output(w io.Writer) (*os.File, error) {
	if w == nil {
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err == nil {
			s.child = append(s.child, null)
		}
		return null, err
	}
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s.child = append(s.child, pw)
	s.copyOut(w, r)
	return pw, nil
}

// ttyStdio runs runsc exec on the replica side of a new pseudo-terminal;
// runsc gives that terminal to the command (process.terminal), and we copy
// between the primary side and the ExecSpec's streams.
func ttyStdio(cmd *exec.Cmd, spec sandbox.ExecSpec, size ociBox) (*stdio, error) {
	ptm, pts, err := openPTY()
	if err != nil {
		return nil, fmt.Errorf("open pty: %w", err)
	}
	ws := &unix.Winsize{Row: uint16(size.Height), Col: uint16(size.Width)}
	if err := control(pts, func(fd int) error { return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, ws) }); err != nil {
		ptm.Close()
		pts.Close()
		return nil, fmt.Errorf("set pty size: %w", err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	s := &stdio{child: []*os.File{pts}}
	out := spec.Stdout
	if out == nil {
		out = io.Discard
	}
	s.copyOut(out, ptm)
	if spec.Stdin != nil {
		// The primary side is closed by drain, which ends this copy too.
		go io.Copy(ptm, spec.Stdin)
	}
	return s, nil
}

// openPTY opens a new pseudo-terminal pair. The ioctls go through
// SyscallConn: File.Fd would put the primary side in blocking mode, and
// drain could then not interrupt a Read by closing it.
func openPTY() (ptm, pts *os.File, err error) {
	ptm, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	var n uint32
	err = control(ptm, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return fmt.Errorf("unlock pty: %w", err)
		}
		var err error
		if n, err = unix.IoctlGetUint32(fd, unix.TIOCGPTN); err != nil {
			return fmt.Errorf("pty number: %w", err)
		}
		return nil
	})
	if err != nil {
		ptm.Close()
		return nil, nil, err
	}
	pts, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		ptm.Close()
		return nil, nil, err
	}
	return ptm, pts, nil
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

func hasKey(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

func orDefault(v, d uint16) uint16 {
	if v == 0 {
		return d
	}
	return v
}
