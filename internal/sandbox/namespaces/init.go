package namespaces

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// initName is argv[0] of a sandbox's init: the running executable started
// again by Start. It is also what `ps` shows as PID 1 inside.
const initName = "standin-sandbox-init"

// initCalled records that main called Init, without which Start's init
// would run main instead.
var initCalled atomic.Bool

func isInit() bool { return len(os.Args) == 1 && os.Args[0] == initName }

func init() {
	if isInit() {
		// Keep main on the main thread. The init forks every command from
		// it, and some state belongs to threads: the capability bounding
		// set is emptied on this one, and it alone joins Spec.NetNS.
		runtime.LockOSThread()
	}
}

// Init runs a sandbox's init and exits, if this process was started as one
// by Runtime.Start; otherwise it returns at once. Start runs the daemon's
// own executable again (/proc/self/exe) as PID 1 of the new namespaces, so
// main must call Init before doing anything else, and so must TestMain in
// tests that start sandboxes. New refuses to work if Init was not called.
func Init() {
	initCalled.Store(true)
	if !isInit() {
		return
	}
	os.Exit(runInit())
}

// runInit is the init's main: build the sandbox, then start commands for
// the runtime until it goes away.
func runInit() int {
	ctl, err := fileConn(3)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: not started by the standin namespaces runtime: %v\n", initName, err)
		return 2
	}
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	// A spare waits here until a Start needs it.
	var cfg initConfig
	fds, err := newReceiver(1<<20).recv(ctl, &cfg)
	if errors.Is(err, errClosed) {
		return 0 // never used
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: read config: %v\n", initName, err)
		return 1
	}
	// Before any command runs: SIGCHLD is how commands are waited for.
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, syscall.SIGCHLD)
	// The commands run as the init's user, so they may signal it. As PID 1
	// of its namespace it gets only signals it handles: all are handled,
	// and dropped. (Handled, not ignored: an ignored signal would stay
	// ignored in every command.)
	others := make(chan os.Signal, 16)
	signal.Notify(others)
	go func() {
		for range others {
		}
	}()

	if err := setup(&cfg, fds); err != nil {
		rep := initReply{Error: err.Error()}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			rep.Errno = uintptr(errno)
		}
		send(ctl, rep)
		return 1
	}
	if err := send(ctl, initReply{}); err != nil {
		return 1
	}
	s := &server{ctl: ctl, procs: map[int]chan syscall.WaitStatus{}}
	go s.reap(sigchld)
	s.serve()
	// The runtime is gone. Exiting kills every process in the namespace.
	return 0
}

// setup builds the sandbox around the init, then makes the init the
// sandbox user, under the seccomp filter. fds holds the network namespace
// to join, if any.
func setup(cfg *initConfig, fds []int) error {
	defer closeAll(fds)
	if len(fds) > 1 {
		return fmt.Errorf("got %d descriptors with the config, want at most 1", len(fds))
	}
	if len(fds) == 1 {
		// Only this thread joins it (namespaces belong to threads): the
		// one that mounts /sys and forks every command. The runtime's
		// other threads stay in the new, empty namespace.
		if err := unix.Setns(fds[0], unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("join network namespace: %w", err)
		}
	}
	unix.Umask(0)
	if err := buildRoot(cfg); err != nil {
		return err
	}
	unix.Umask(0o022) // inherited by commands
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	if cfg.NewNet {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	if err := raiseNoFile(); err != nil {
		return err
	}
	if err := installFilter(); err != nil {
		return err
	}
	return dropPrivileges(cfg.UID, cfg.GID)
}

// noFile is RLIMIT_NOFILE inside the sandbox; build tools open many files.
const noFile = 1 << 16

// raiseNoFile sets RLIMIT_NOFILE to noFile, or to the hard limit if the
// host does not allow raising that.
func raiseNoFile() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("get RLIMIT_NOFILE: %w", err)
	}
	if lim.Max < noFile {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: noFile, Max: noFile}); err == nil {
			return nil
		}
	}
	lim.Cur = min(lim.Max, noFile)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("set RLIMIT_NOFILE: %w", err)
	}
	return nil
}

// loopbackUp brings lo up in a new network namespace, where it starts down.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}

// dropPrivileges makes the init the sandbox user, with no capabilities,
// before it runs anything for the runtime: the commands it forks inherit
// that, and the init itself has nothing more than they have. (It does not
// need more: commands run as the user it is, it signals only its own
// processes, and its terminals are its own.)
func dropPrivileges(uid, gid uint32) error {
	// The bounding set belongs to threads; this is the main one (see
	// init), from which every command is forked.
	for c := 0; ; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			if errors.Is(err, unix.EINVAL) && c > unix.CAP_SETUID {
				break // past the last capability this kernel knows
			}
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	// These change every thread of the process (Go does it itself, or
	// through libc with cgo), and leaving uid 0 clears each thread's
	// capabilities.
	if err := syscall.Setgroups([]int{}); err != nil {
		return fmt.Errorf("drop supplementary groups: %w", err)
	}
	if err := syscall.Setgid(int(gid)); err != nil {
		return fmt.Errorf("set gid %d: %w", gid, err)
	}
	if err := syscall.Setuid(int(uid)); err != nil {
		return fmt.Errorf("set uid %d: %w", uid, err)
	}
	// Changing uid already made the process not dumpable; stay so: no
	// /proc/1/mem, /proc/1/fd or ptrace for the commands, which now run as
	// the same user.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("set not dumpable: %w", err)
	}
	return nil
}

// server starts and waits for commands in the init.
type server struct {
	ctl *net.UnixConn

	// mu orders forks against reaping, so that a command's exit status is
	// never taken by reap before its pid is in procs.
	mu    sync.Mutex
	procs map[int]chan syscall.WaitStatus // running commands
}

// serve handles exec requests until the control socket ends. It runs on
// the main thread: every command is forked from there.
func (s *server) serve() {
	rcv := newReceiver(maxMessage + 1)
	for {
		var req execRequest
		fds, err := rcv.recv(s.ctl, &req)
		switch {
		case err == nil:
			s.start(&req, fds)
		case errors.Is(err, errTooLarge) || errors.Is(err, errBadMessage):
			// The runtime checks sizes first; without the exec socket
			// there is no one to answer.
			fmt.Fprintf(os.Stderr, "%s: bad request: %v\n", initName, err)
		default:
			return
		}
	}
}

// start runs one command. fds are its exec socket and, without a TTY, its
// stdin, stdout and stderr.
func (s *server) start(req *execRequest, fds []int) {
	if len(fds) == 0 {
		return
	}
	conn, err := fileConn(fds[0])
	stdio := fds[1:]
	defer closeAll(stdio)
	if err != nil {
		return
	}
	pid, ptm, ch, err := s.fork(req, stdio)
	if err != nil {
		send(conn, execReply{Error: err.Error()})
		conn.Close()
		return
	}
	if ptm >= 0 {
		send(conn, execReply{Pid: pid}, ptm)
		unix.Close(ptm)
	} else {
		send(conn, execReply{Pid: pid})
	}
	go func() {
		// Any end of the runtime's side (shutdown for a cancelled
		// context, or closed) kills the command.
		var b [64]byte
		conn.Read(b[:])
		s.kill(pid)
	}()
	go func() {
		exit := exitCode(<-ch)
		send(conn, execReply{Exit: &exit})
		conn.Close()
	}()
}

// fork starts a command as the sandbox user in a session of its own.
// With a TTY it returns the terminal's primary side, for the runtime. The
// command's exit status arrives on ch.
func (s *server) fork(req *execRequest, stdio []int) (pid, ptm int, ch chan syscall.WaitStatus, err error) {
	ptm = -1
	if len(req.Args) == 0 {
		return 0, -1, nil, errors.New("no command")
	}
	if fi, err := os.Stat(req.Dir); err != nil || !fi.IsDir() {
		return 0, -1, nil, fmt.Errorf("working directory %q: not a directory", req.Dir)
	}
	path, err := lookPath(req.Args[0], req.Env, req.Dir)
	if err != nil {
		return 0, -1, nil, err
	}
	files := make([]uintptr, 3)
	if req.TTY {
		var pts int
		ptm, pts, err = openPTY(req.Rows, req.Cols)
		if err != nil {
			return 0, -1, nil, err
		}
		defer unix.Close(pts)
		files[0], files[1], files[2] = uintptr(pts), uintptr(pts), uintptr(pts)
	} else {
		if len(stdio) != 3 {
			return 0, -1, nil, fmt.Errorf("got %d standard files, want 3", len(stdio))
		}
		for i, fd := range stdio {
			files[i] = uintptr(fd)
		}
	}
	attr := &syscall.ProcAttr{
		Dir:   req.Dir,
		Env:   req.Env,
		Files: files,
		// The command runs as the init's user, with its groups (none).
		Sys: &syscall.SysProcAttr{
			Setsid:  true, // a process group to kill
			Setctty: req.TTY,
			Ctty:    0,
		},
	}
	s.mu.Lock()
	pid, err = syscall.ForkExec(path, req.Args, attr)
	if err == nil {
		ch = make(chan syscall.WaitStatus, 1)
		s.procs[pid] = ch
	}
	s.mu.Unlock()
	if err != nil {
		if ptm >= 0 {
			unix.Close(ptm)
		}
		return 0, -1, nil, fmt.Errorf("exec %q: %w", req.Args[0], err)
	}
	return pid, ptm, ch, nil
}

// kill kills a command that is still running, with its process group.
// (It may: the command runs as the init's user.)
func (s *server) kill(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.procs[pid]; ok { // else reaped: the pid may be reused
		unix.Kill(-pid, unix.SIGKILL)
		unix.Kill(pid, unix.SIGKILL)
	}
}

// reap waits for every child, as PID 1 must: commands, and the processes
// they left behind, which the kernel re-parents to the init.
func (s *server) reap(sigchld <-chan os.Signal) {
	for range sigchld {
		s.mu.Lock()
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil || pid <= 0 {
				break
			}
			if ch, ok := s.procs[pid]; ok {
				ch <- ws
				delete(s.procs, pid)
			}
		}
		s.mu.Unlock()
	}
}

// exitCode is the status a shell would report: 128+n for signal n.
func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// lookPath finds a command in the PATH of its environment, as the shell
// would. Names with a slash are left to execve.
func lookPath(file string, env []string, dir string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, d := range filepath.SplitList(path) {
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		p := filepath.Join(d, file)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec %q: executable file not found in $PATH", file)
}

// openPTY opens a terminal in the sandbox's own devpts, so that its name
// (/dev/pts/N) means the same inside; it belongs to the sandbox user, who
// opens it. The primary side is non-blocking, so that the runtime can poll
// it.
func openPTY(rows, cols uint16) (ptm, pts int, err error) {
	ptm, err = unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, -1, fmt.Errorf("open pty: %w", err)
	}
	fail := func(what string, err error) (int, int, error) {
		unix.Close(ptm)
		return -1, -1, fmt.Errorf("%s: %w", what, err)
	}
	if err := unix.IoctlSetPointerInt(ptm, unix.TIOCSPTLCK, 0); err != nil {
		return fail("unlock pty", err)
	}
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(ptm), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		return fail("open pty replica", errno)
	}
	pts = int(r)
	if err := unix.IoctlSetWinsize(pts, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		unix.Close(pts)
		return fail("set pty size", err)
	}
	return ptm, pts, nil
}
