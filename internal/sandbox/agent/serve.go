package agent

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Main makes this process the agent when it was started with the single
// argument ArgAgent: it serves on stdin and stdout and exits. Otherwise it
// returns at once. Call it first thing in main (and in TestMain of tests
// whose binary a sandbox runs as its agent).
//
// With the arguments ArgAgent and ArgProtocol it prints Protocol and exits:
// the daemon asks a separate agent binary that way whether it speaks the
// daemon's protocol (see CheckProtocol).
func Main() {
	if len(os.Args) == 3 && os.Args[1] == ArgAgent && os.Args[2] == ArgProtocol {
		fmt.Println(Protocol)
		os.Exit(0)
	}
	if len(os.Args) != 2 || os.Args[1] != ArgAgent {
		return
	}
	err := Serve(os.Stdin, os.Stdout)
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(os.Stderr, "standin agent:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Serve runs commands as r asks and reports on w until r ends.
func Serve(r io.Reader, w io.Writer) error {
	// No ptrace, no /proc/1/mem or /proc/1/fd for the commands, which run
	// as the same user.
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	// PID 1 of a namespace gets only the signals it handles; drop them.
	// (Handled, not ignored: an ignored signal would stay ignored in every
	// command started.)
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for range sigs {
		}
	}()

	a := &server{fw: &frameWriter{w: w}, procs: map[uint32]*proc{}, waiters: map[int]chan syscall.WaitStatus{}}
	// Subscribed before the first command starts: a SIGCHLD that came
	// before it would be lost, and its command never reaped.
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	go a.reap(chld)
	var buf []byte
	for {
		typ, id, p, err := readFrame(r, &buf)
		if err != nil {
			return err
		}
		a.handle(typ, id, p)
	}
}

type server struct {
	fw *frameWriter

	mu    sync.Mutex
	procs map[uint32]*proc

	// reapMu is held across fork and registering the child, and across
	// each reap, so that a child's status never goes unclaimed.
	reapMu  sync.Mutex
	waiters map[int]chan syscall.WaitStatus
}

// reap collects every child that exits, the commands' and orphans'
// (re-parented to PID 1), and hands each command's status to its waiter.
func (a *server) reap(chld <-chan os.Signal) {
	for range chld {
		for {
			a.reapMu.Lock()
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid > 0 {
				if ch := a.waiters[pid]; ch != nil {
					ch <- ws
					delete(a.waiters, pid)
				}
			}
			a.reapMu.Unlock()
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}

func (a *server) get(id uint32) *proc {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.procs[id]
}

func (a *server) handle(typ byte, id uint32, p []byte) {
	switch typ {
	case tStart:
		var req startReq
		if err := json.Unmarshal(p, &req); err != nil {
			a.fw.write(tFailed, id, []byte("bad start request: "+err.Error()))
			return
		}
		a.mu.Lock()
		_, dup := a.procs[id]
		a.mu.Unlock()
		if dup {
			a.fw.write(tFailed, id, []byte("exec id in use"))
			return
		}
		if err := a.start(id, &req); err != nil {
			a.fw.write(tFailed, id, []byte(err.Error()))
		}
	case tStdin:
		if pr := a.get(id); pr != nil {
			pr.stdin.push(append([]byte(nil), p...))
		}
	case tStdinEOF:
		if pr := a.get(id); pr != nil {
			pr.stdin.push(nil)
		}
	case tKill:
		if pr := a.get(id); pr != nil {
			syscall.Kill(-pr.pid, syscall.SIGKILL)
		}
	case tResize:
		if pr := a.get(id); pr != nil && pr.tty != nil && len(p) == 4 {
			ws := &unix.Winsize{Row: binary.BigEndian.Uint16(p), Col: binary.BigEndian.Uint16(p[2:])}
			control(pr.tty, func(fd int) error { return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, ws) })
		}
	case tAck:
		if pr := a.get(id); pr != nil && len(p) == 4 {
			pr.out.give(int(binary.BigEndian.Uint32(p)))
		}
	}
}

// proc is a running command.
type proc struct {
	id    uint32
	pid   int
	tty   *os.File // the pty's primary side, if any
	stdin *queue
	out   *credit // shared by stdout and stderr
	// lastOut is when output last moved (UnixNano), for the drain.
	lastOut atomic.Int64
}

func (a *server) start(id uint32, req *startReq) error {
	if len(req.Args) == 0 || req.Args[0] == "" {
		return errors.New("no command")
	}
	// execve's error would name only the command.
	if fi, err := os.Stat(req.Dir); err != nil {
		return fmt.Errorf("working directory %q: %w", req.Dir, errors.Unwrap(err))
	} else if !fi.IsDir() {
		return fmt.Errorf("working directory %q: %w", req.Dir, syscall.ENOTDIR)
	}
	path, err := lookPath(req.Args[0], req.Env, req.Dir)
	if err != nil {
		return err
	}
	pr := &proc{id: id, stdin: newQueue(), out: newCredit()}
	var (
		childFiles []*os.File // closed in the parent after the fork
		outputs    []*os.File // read ends we copy from
		outTypes   []byte
		stdinW     *os.File
	)
	closeAll := func() {
		for _, f := range childFiles {
			f.Close()
		}
		for _, f := range outputs {
			f.Close()
		}
		if stdinW != nil && stdinW != pr.tty {
			stdinW.Close()
		}
	}
	attr := &syscall.ProcAttr{Dir: req.Dir, Env: req.Env}
	if req.TTY {
		ptm, pts, err := openPTY()
		if err != nil {
			return fmt.Errorf("open pty: %w", err)
		}
		ws := &unix.Winsize{Row: orDefault(req.Rows, 24), Col: orDefault(req.Cols, 80)}
		control(pts, func(fd int) error { return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, ws) })
		pr.tty = ptm
		childFiles = append(childFiles, pts)
		outputs, outTypes = append(outputs, ptm), append(outTypes, tStdout)
		stdinW = ptm
		attr.Files = []uintptr{pts.Fd(), pts.Fd(), pts.Fd()}
		attr.Sys = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	} else {
		files := make([]uintptr, 3)
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		childFiles = append(childFiles, null)
		files[0], files[1], files[2] = null.Fd(), null.Fd(), null.Fd()
		if req.Stdin {
			r, w, err := os.Pipe()
			if err != nil {
				closeAll()
				return err
			}
			childFiles, stdinW = append(childFiles, r), w
			files[0] = r.Fd()
		}
		pipe := func(typ byte) (uintptr, error) {
			r, w, err := os.Pipe()
			if err != nil {
				return 0, err
			}
			childFiles = append(childFiles, w)
			outputs, outTypes = append(outputs, r), append(outTypes, typ)
			return w.Fd(), nil
		}
		if req.Stdout {
			if files[1], err = pipe(tStdout); err != nil {
				closeAll()
				return err
			}
		}
		switch {
		case req.Combined:
			files[2] = files[1]
		case req.Stderr:
			if files[2], err = pipe(tStderr); err != nil {
				closeAll()
				return err
			}
		}
		attr.Files = files
		attr.Sys = &syscall.SysProcAttr{Setpgid: true}
	}

	waited := make(chan syscall.WaitStatus, 1)
	a.reapMu.Lock()
	pid, err := syscall.ForkExec(path, req.Args, attr)
	if err == nil {
		a.waiters[pid] = waited
	}
	a.reapMu.Unlock()
	for _, f := range childFiles {
		f.Close()
	}
	childFiles = nil
	if err != nil {
		closeAll()
		return fmt.Errorf("exec %q: %w", req.Args[0], err)
	}
	pr.pid = pid
	pr.lastOut.Store(time.Now().UnixNano())
	a.mu.Lock()
	a.procs[id] = pr
	a.mu.Unlock()

	var readers sync.WaitGroup
	for i, f := range outputs {
		readers.Add(1)
		go func() {
			defer readers.Done()
			a.copyOut(pr, f, outTypes[i])
		}()
	}
	if stdinW != nil {
		go a.copyIn(pr, stdinW, stdinW != pr.tty)
	} else {
		go a.discardStdin(pr)
	}
	go func() {
		ws := <-waited
		a.drain(pr, outputs, &readers)
		code := ws.ExitStatus()
		if ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		pr.out.close()
		pr.stdin.close()
		a.mu.Lock()
		delete(a.procs, id)
		a.mu.Unlock()
		a.fw.write(tExit, id, binary.BigEndian.AppendUint32(nil, uint32(int32(code))))
	}()
	return nil
}

// drain waits for the output copies to end after the command exited; see
// DrainIdle.
func (a *server) drain(pr *proc, outputs []*os.File, readers *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	deadline := time.Now().Add(DrainMax)
	for {
		select {
		case <-done:
			for _, f := range outputs {
				f.Close()
			}
			return
		case <-time.After(DrainIdle / 4):
		}
		idle := time.Since(time.Unix(0, pr.lastOut.Load())) > DrainIdle && !pr.out.inFlight()
		if idle || time.Now().After(deadline) {
			pr.out.close()
			for _, f := range outputs {
				f.Close() // ends the copies' reads
			}
			<-done
			return
		}
	}
}

// copyOut sends what the command writes to f as frames of type typ.
func (a *server) copyOut(pr *proc, f *os.File, typ byte) {
	buf := make([]byte, chunk)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			pr.lastOut.Store(time.Now().UnixNano())
			if !pr.out.take(n) {
				return
			}
			if a.fw.write(typ, pr.id, buf[:n]) != nil {
				return
			}
			pr.lastOut.Store(time.Now().UnixNano())
		}
		if err != nil {
			return // EOF; EIO from a pty with no replica left; closed by drain
		}
	}
}

// copyIn writes the daemon's stdin frames to the command, acknowledging
// each, and closes w at EOF (closeAtEOF; a pty stays open).
func (a *server) copyIn(pr *proc, w *os.File, closeAtEOF bool) {
	for {
		b, ok := pr.stdin.pop()
		if !ok || b == nil {
			if closeAtEOF {
				w.Close()
			}
			return
		}
		_, err := w.Write(b)
		a.fw.writeU32(tStdinAck, pr.id, uint32(len(b)))
		if err != nil {
			if closeAtEOF {
				w.Close()
			}
			a.discardStdin(pr) // the command closed its stdin: drop the rest
			return
		}
	}
}

// discardStdin acknowledges and drops stdin until EOF, so the daemon's
// copy never waits on a command that stopped reading.
func (a *server) discardStdin(pr *proc) {
	for {
		b, ok := pr.stdin.pop()
		if !ok || b == nil {
			return
		}
		a.fw.writeU32(tStdinAck, pr.id, uint32(len(b)))
	}
}

// queue is stdin waiting to be written: the daemon keeps at most window
// bytes in it. A nil entry is EOF.
type queue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  [][]byte
	closed bool
}

func newQueue() *queue {
	q := &queue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) push(b []byte) {
	q.mu.Lock()
	if !q.closed {
		q.items = append(q.items, b)
	}
	q.mu.Unlock()
	q.cond.Signal()
}

func (q *queue) pop() ([]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.items) == 0 {
		return nil, false
	}
	b := q.items[0]
	q.items = q.items[1:]
	return b, true
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// lookPath finds the command as execve with PATH search would: a name
// with a slash is used as it is (relative to dir), else the first
// executable file of that name in env's PATH.
func lookPath(name string, env []string, dir string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, name)
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && unix.Access(p, unix.X_OK) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec %q: executable file not found in $PATH", name)
}

// openPTY opens a new pseudo-terminal pair.
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
		n, err = unix.IoctlGetUint32(fd, unix.TIOCGPTN)
		return err
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

// control runs fn on f's descriptor without putting it in blocking mode.
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

func orDefault(v, d uint16) uint16 {
	if v == 0 {
		return d
	}
	return v
}
