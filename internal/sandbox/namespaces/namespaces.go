// Package namespaces runs sandboxes with plain Linux namespaces and a
// seccomp filter: fast to start, for development and for hosts where speed
// matters more than a separate kernel.
//
// This backend is weaker than gvisor. Commands run on the host's kernel:
// every system call the filter lets through reaches it directly, so one
// kernel bug reachable from an unprivileged process is enough to escape.
// gVisor puts its own kernel in between. Use package gvisor where the code
// in the sandbox is not trusted.
//
// Each sandbox gets new mount, PID, IPC, UTS and cgroup namespaces, and the
// network namespace at Spec.NetNS (or a new one with only lo). Its PID 1 is
// the daemon's own executable started again (see Init), which builds the
// filesystem and then forks every command:
//   - the root is an overlay: the host's root filesystem read-only beneath
//     a tmpfs that takes the sandbox's writes and goes away with it; /tmp,
//     /var/tmp and HomeDir are empty tmpfs of their own; /proc is the
//     sandbox's, /dev a minimal one, /sys read-only (see buildRoot). Unix
//     sockets on the host's root filesystem cannot be connected to through
//     the overlay; those under Spec.Mounts can;
//   - once the sandbox is built, the init becomes the sandbox user
//     (Spec.UID/GID, never root) with no capabilities, no_new_privs and the
//     seccomp filter in seccomp.go, and commands, which it forks, inherit
//     all of that, with an empty capability bounding set too;
//   - Delete kills the init, and the kernel kills the rest of the PID
//     namespace with it; the mounts and the layer go with the namespace.
//
// There are no resource limits (no cgroups): a sandbox can use all the
// memory and CPU of the host, and its writes are held in memory.
//
// Inits are started ahead of need (Config.Spares), since starting a large
// Go binary is most of the cost of a Start. An init exits, taking its
// sandbox with it, when the daemon's end of its control socket closes, so a
// daemon that dies leaves nothing behind and this package needs no
// Cleanup. It needs root.
package namespaces

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/standin/standin/internal/sandbox"
)

// DefaultStateDir is Config.StateDir when empty.
const DefaultStateDir = "/run/standin/namespaces"

// Log attribute keys.
const (
	logKeySandbox = "sandbox_id"
	logKeyElapsed = "elapsed"
	logKeyError   = "error"
)

// Config configures a Runtime. The zero value is usable.
type Config struct {
	// StateDir is an empty directory on which each sandbox's init mounts
	// the tmpfs it builds the sandbox in, inside its own mount namespace:
	// nothing is ever written to it on the host. If empty,
	// DefaultStateDir is used.
	StateDir string

	// Spares is how many inits are kept started ahead of Start, each in
	// new namespaces and waiting for a Spec. Starting the executable again
	// is most of the cost of a Start (tens of milliseconds for a large Go
	// binary), so a spare makes Start mostly the cost of its mounts. Each
	// spare is an idle process and an empty network namespace. If zero, 1
	// is used; negative keeps none.
	Spares int

	// Logger receives start and delete events. If nil, slog.Default() is used.
	Logger *slog.Logger
}

// Runtime starts namespace sandboxes. It is safe for concurrent use.
type Runtime struct {
	exe     string // the init's executable: this one
	scratch string
	log     *slog.Logger

	spares chan *process // started inits waiting for a Spec
	refill chan struct{} // wakes the filler
	done   chan struct{} // closed by Close
	closed sync.Once

	ids sandbox.IDs[Instance]
}

var _ sandbox.Runtime = (*Runtime)(nil)

// New checks that sandboxes can be started, prepares the state directory
// and starts the spare inits in the background.
func New(cfg Config) (*Runtime, error) {
	if !initCalled.Load() {
		return nil, fmt.Errorf("%w: namespaces.Init was not called at the start of main (it runs the sandbox's init)", sandbox.ErrUnavailable)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: the namespaces runtime needs root to create namespaces and mounts; running as uid %d: run `sudo standin serve --runtime namespaces`", sandbox.ErrUnavailable, os.Geteuid())
	}
	dir := cfg.StateDir
	if dir == "" {
		dir = DefaultStateDir
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	spares := cfg.Spares
	if spares == 0 {
		spares = 1
	}
	r := &Runtime{
		exe:     "/proc/self/exe",
		scratch: dir,
		log:     cfg.Logger,
		spares:  make(chan *process, max(spares, 0)),
		refill:  make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.log = r.log.With("component", "sandbox")
	if spares > 0 {
		go r.fill()
		r.refill <- struct{}{}
	}
	return r, nil
}

// Name implements sandbox.Runtime.
func (r *Runtime) Name() string { return "namespaces" }

// Close stops keeping spare inits and kills those waiting. Running
// sandboxes are left alone: Delete them first. Start still works after
// Close, without spares.
func (r *Runtime) Close() error {
	r.closed.Do(func() { close(r.done) })
	for {
		select {
		case p := <-r.spares:
			p.kill()
			<-p.exited
		default:
			return nil
		}
	}
}

// fill keeps the spares channel full.
func (r *Runtime) fill() {
	for {
		select {
		case <-r.done:
			return
		case <-r.refill:
		}
		for len(r.spares) < cap(r.spares) {
			p, err := r.launch()
			if err != nil {
				// Start will launch one itself, and report the error.
				r.log.Warn("start spare sandbox init", logKeyError, err)
				break
			}
			select {
			case r.spares <- p:
			default:
				p.kill()
			}
			select {
			case <-r.done:
				r.Close()
				return
			default:
			}
		}
	}
}

// take returns a spare init, or a new one if there is none.
func (r *Runtime) take() (*process, error) {
	// After taking one: the filler stops when the channel is full.
	defer func() {
		if cap(r.spares) > 0 {
			select {
			case r.refill <- struct{}{}:
			default: // already woken
			}
		}
	}()
	for {
		select {
		case p := <-r.spares:
			select {
			case <-p.exited: // killed while it waited
				continue
			default:
				return p, nil
			}
		default:
			return r.launch()
		}
	}
}

// Start implements sandbox.Runtime: it hands the Spec to an init in new
// namespaces and waits until the init has built the sandbox.
func (r *Runtime) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Instance, error) {
	// Reserved while it starts: Cleanup leaves it alone.
	return sandbox.StartInstance(&r.ids, spec, func() (*Instance, error) { return r.start(ctx, spec) })
}

func (r *Runtime) start(ctx context.Context, spec sandbox.Spec) (*Instance, error) {
	began := time.Now()
	cfg, err := config(spec, r.scratch)
	if err != nil {
		return nil, err
	}
	var fds []int
	if spec.NetNS != "" {
		fd, err := openNetNS(spec.NetNS)
		if err != nil {
			return nil, fmt.Errorf("%w: netns %q: %w", sandbox.ErrInvalidSpec, spec.NetNS, err)
		}
		defer unix.Close(fd)
		fds = append(fds, fd)
	}
	p, err := r.take()
	if err != nil {
		return nil, fmt.Errorf("start sandbox %q: %w", spec.ID, err)
	}
	if err := send(p.ctl, cfg, fds...); err != nil {
		p.kill()
		<-p.exited
		return nil, fmt.Errorf("start sandbox %q: send config: %w", spec.ID, err)
	}
	var rep initReply
	stop := context.AfterFunc(ctx, func() { p.ctl.SetReadDeadline(time.Now()) })
	_, err = newReceiver(64<<10).recv(p.ctl, &rep)
	stop()
	if err == nil && rep.Error == "" {
		p.ctl.SetReadDeadline(time.Time{})
		r.log.Info("sandbox started", logKeySandbox, spec.ID, logKeyElapsed, time.Since(began))
		return &Instance{
			process: p,
			rt:      r,
			id:      spec.ID,
			env:     spec.Environ(),
		}, nil
	}

	// Never leave a half-built sandbox behind.
	p.kill()
	<-p.exited
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("start sandbox %q: %w", spec.ID, ctx.Err())
	case err != nil:
		return nil, fmt.Errorf("start sandbox %q: init exited: %s", spec.ID, p.stderr.String())
	case rep.Errno == uintptr(unix.EPERM) || rep.Errno == uintptr(unix.EACCES):
		return nil, fmt.Errorf("%w: start sandbox %q: %s%s", sandbox.ErrUnavailable, spec.ID, rep.Error, hintPrivileges)
	case rep.Errno == uintptr(unix.ENODEV):
		return nil, fmt.Errorf("%w: start sandbox %q: %s (is the overlay filesystem available? `modprobe overlay`)", sandbox.ErrUnavailable, spec.ID, rep.Error)
	}
	return nil, fmt.Errorf("start sandbox %q: %s", spec.ID, rep.Error)
}

// openNetNS opens a network namespace, checking that it is one: joining
// anything else would fail only inside the init.
func openNetNS(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil || typ != unix.CLONE_NEWNET {
		unix.Close(fd)
		return -1, errors.New("not a network namespace")
	}
	return fd, nil
}

// process is a sandbox's init, seen from the runtime.
type process struct {
	cmd    *exec.Cmd
	ctl    *net.UnixConn
	stderr *headBuffer
	exited chan struct{} // closed once the init has been waited for
}

// kill sends SIGKILL to the init; its pidfd makes that safe once it has
// exited. The kernel then kills every other process of its PID namespace.
func (p *process) kill() { p.cmd.Process.Kill() }

// cloneFlags are the namespaces of every init: all new. An init given a
// Spec.NetNS moves its main thread, from which it forks every command,
// into that one.
const cloneFlags = unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS |
	unix.CLONE_NEWCGROUP | unix.CLONE_NEWNET

// launch starts an init, which waits for its config.
func (r *Runtime) launch() (*process, error) {
	ctl, child, err := socketPair()
	if err != nil {
		return nil, err
	}
	childFile := os.NewFile(uintptr(child), "control")
	defer childFile.Close()
	stderr := &headBuffer{max: 4 << 10}
	cmd := &exec.Cmd{
		Path: r.exe,
		Args: []string{initName},
		// Not the daemon's environment, which may hold the master key.
		Env:        []string{},
		Dir:        "/",
		ExtraFiles: []*os.File{childFile},
		Stderr:     stderr,
		SysProcAttr: &syscall.SysProcAttr{
			Setsid:     true, // no signals from the daemon's terminal
			Cloneflags: cloneFlags,
		},
	}
	if err := cmd.Start(); err != nil {
		ctl.Close()
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("%w: create namespaces: %w%s", sandbox.ErrUnavailable, err, hintPrivileges)
		}
		return nil, fmt.Errorf("start init: %w", err)
	}
	p := &process{cmd: cmd, ctl: ctl, stderr: stderr, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		ctl.Close()
		close(p.exited)
	}()
	return p, nil
}

const hintPrivileges = " (the namespaces runtime needs root with CAP_SYS_ADMIN; in a container, run it with `docker run --privileged`)"

func (r *Runtime) forget(id string) {
	r.ids.Forget(id)
}

// headBuffer keeps the start of what the init writes to stderr (a panic,
// or why it could not run at all), for errors.
type headBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *headBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := t.max - len(t.b); room > 0 {
		t.b = append(t.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (t *headBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.b) == 0 {
		return "no output"
	}
	return string(t.b)
}
